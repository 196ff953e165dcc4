"""dlcore: a small, fast deep-learning core for CPUs.

The kernels (GEMM, conv2d, max-pool, LSTM) are C++ on Eigen and OpenMP, reached through
:mod:`dlcore.ops`; everything else is a thin Python layer over them: an autograd
:class:`Tensor`, Keras-style layers and models, PyTorch-style custom loops.
"""

import warnings as _warnings

from dlcore import ops
from dlcore._core import __version__
from dlcore._core import _build_info as build_info  # a dict; build_info() returns it too

if not build_info["openmp"]:
    _warnings.warn(
        "dlcore was built without OpenMP: every kernel runs on one thread",
        RuntimeWarning,
        stacklevel=2,
    )

from dlcore import (
    activations,
    callbacks,
    constraints,
    datasets,
    explain,
    export,
    functional,
    info,
    initializers,
    keras,
    layers,
    losses,
    metrics,
    model_selection,
    models,
    optimizers,
    regularizers,
    saving,
    trainers,
    tuning,
    utils,
)
from dlcore.layers import Input
from dlcore.models import Model, Sequential
from dlcore.profiler import profile
from dlcore.random import set_random_seed
from dlcore.tensor import Tensor, enable_grad, is_grad_enabled, no_grad


def constant(value, dtype=None):
    """A Tensor holding ``value`` (what ``tf.constant`` is used for in tutorials)."""
    return Tensor(value, dtype=dtype)


__all__ = [
    "Input",
    "Model",
    "Sequential",
    "constant",
    "keras",
    "__version__",
    "build_info",
    "ops",
    "Tensor",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_random_seed",
    "profile",
    "activations",
    "callbacks",
    "datasets",
    "explain",
    "export",
    "constraints",
    "functional",
    "info",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "model_selection",
    "models",
    "optimizers",
    "regularizers",
    "saving",
    "trainers",
    "tuning",
    "utils",
]
