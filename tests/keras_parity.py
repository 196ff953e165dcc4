"""Keras 3 as a reference: imported on its JAX backend, or the test is skipped."""

import os
import warnings

import pytest


def import_keras():
    """The keras module on the JAX backend; skips the calling test without it."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jax and keras warn on import (TPU probing, ...)
        keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("the Keras parity tests run on Keras' JAX backend")
    return keras
