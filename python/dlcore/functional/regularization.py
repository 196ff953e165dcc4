"""Random regularisation in training: dropout and additive Gaussian noise."""

from __future__ import annotations

import numpy as np

from dlcore import random as _random
from dlcore.tensor import as_tensor, record

__all__ = ["dropout", "gaussian_noise"]


def dropout(x, rate, training=True, noise_shape=None, seed=None):
    """Zeroes a fraction ``rate`` of x and scales the rest by 1 / (1 - rate), in
    training only (identity otherwise). ``seed``: an int (the same mask every call) or a
    ``numpy.random.Generator`` to draw from (default: dlcore's generator)."""
    x = as_tensor(x)
    check_dropout_rate(rate)
    if not training or rate == 0:
        return x
    mask = dropout_mask(x.shape, x.dtype, rate, noise_shape, seed)
    return record(x.data * mask, (x,), lambda g: (g[0] * mask,), "dropout")


def check_dropout_rate(rate):
    """A ValueError unless 0 <= rate < 1."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")


def dropout_mask(shape, dtype, rate, noise_shape=None, seed=None):
    """The scaled keep-mask dropout multiplies inputs of this shape and dtype by:
    1 / (1 - rate) where kept, 0 where dropped (of noise_shape, when given, to
    broadcast); ``seed`` as :func:`dropout`'s."""
    rng = _generator(seed)
    shape = shape if noise_shape is None else _noise_shape(noise_shape, shape)
    return (rng.random(shape, dtype=np.float32) >= rate).astype(dtype) / dtype.type(1 - rate)


def _noise_shape(noise_shape, shape):
    """Keras' noise_shape: one entry per axis of x, each x's size (None: take it) or 1
    (the same mask along that axis)."""
    dims = tuple(noise_shape)
    resolved = tuple(n if d is None else d for d, n in zip(dims, shape))
    if len(dims) != len(shape) or any(d not in (n, 1) for d, n in zip(resolved, shape)):
        raise ValueError(
            f"dropout: noise_shape {dims} does not fit inputs of shape {shape}; give one "
            f"entry per axis, each the input's size, None or 1"
        )
    return resolved


def gaussian_noise(x, stddev, training=True, seed=None):
    """x plus zero-mean normal noise of standard deviation ``stddev``, in training only
    (identity otherwise); ``seed`` as dropout's. The gradient passes unchanged."""
    x = as_tensor(x)
    if not stddev >= 0:
        raise ValueError(f"gaussian_noise: stddev must be >= 0, got {stddev}")
    if not training or stddev == 0:
        return x
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    noise = _generator(seed).standard_normal(x.shape, dtype=dtype)
    noise *= dtype(stddev)
    return record(x.data + noise, (x,), lambda g: (g[0],), "gaussian_noise")


def _generator(seed):
    """dlcore's generator (None), a fresh one from an int, or the Generator given."""
    if seed is None:
        return _random.generator()
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
