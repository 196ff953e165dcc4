"""``keras.random`` for code written against Keras 3 (a VAE's sampling layer, noise in a
custom layer): draws from dlcore's generator (``keras.utils.set_random_seed``), or from
one of its own for an int ``seed``. The results are Tensors without a gradient."""

from __future__ import annotations

import numpy as np

from dlcore import random as _random
from dlcore.tensor import Tensor

__all__ = ["normal", "truncated_normal", "uniform", "randint", "shuffle"]


def _generator(seed):
    if seed is None:
        return _random.generator()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.default_rng(int(seed))
    raise TypeError(f"keras.random: seed must be an int or None, got {seed!r}")


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    values = _generator(seed).normal(mean, stddev, size=tuple(shape))
    return Tensor(values.astype(dtype or "float32"))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal values redrawn until within two standard deviations of the mean."""
    rng = _generator(seed)
    values = rng.normal(0.0, 1.0, size=tuple(shape))
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.normal(0.0, 1.0, size=int(outside.sum()))
        outside = np.abs(values) > 2
    return Tensor((values * stddev + mean).astype(dtype or "float32"))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    values = _generator(seed).uniform(minval, maxval, size=tuple(shape))
    return Tensor(values.astype(dtype or "float32"))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    return Tensor(_generator(seed).integers(minval, maxval, size=tuple(shape)).astype(dtype))


def shuffle(x, axis=0, seed=None):
    data = np.asarray(x.data if isinstance(x, Tensor) else x)
    order = _generator(seed).permutation(data.shape[axis])
    return Tensor(np.take(data, order, axis=axis))
