"""Small helpers with Keras' names."""

import numpy as np

from dlcore.random import set_random_seed

__all__ = ["to_categorical", "set_random_seed"]


def to_categorical(y, num_classes=None, dtype="float32"):
    """Integer class labels (N,) -> one-hot rows (N, num_classes)."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and (y.min() < 0 or np.any(y != np.round(y))):
        raise ValueError("to_categorical: labels must be non-negative integers")
    y = y.astype(np.int64)
    k = int(y.max()) + 1 if num_classes is None else num_classes
    if y.size and y.max() >= k:
        raise ValueError(f"to_categorical: label {y.max()} does not fit num_classes={k}")
    out = np.zeros((*y.shape, k), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out
