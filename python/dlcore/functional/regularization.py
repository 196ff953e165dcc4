"""Random regularisation in training: dropout."""

from __future__ import annotations

import numpy as np

from dlcore import random as _random
from dlcore.tensor import as_tensor, record

__all__ = ["dropout"]


def dropout(x, rate, training=True, noise_shape=None, seed=None):
    """Zeroes a fraction ``rate`` of x and scales the rest by 1 / (1 - rate), in
    training only (identity otherwise)."""
    x = as_tensor(x)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    if not training or rate == 0:
        return x
    rng = _random.generator() if seed is None else np.random.default_rng(seed)
    shape = x.shape if noise_shape is None else noise_shape
    mask = (rng.random(shape, dtype=np.float32) >= rate).astype(x.dtype) / x.dtype.type(1 - rate)
    return record(x.data * mask, (x,), lambda g: (g[0] * mask,), "dropout")
