"""Reductions over axes: sum, mean, max, min, with gradients broadcast back."""

from __future__ import annotations

import numpy as np

from dlcore.tensor import as_tensor, record

__all__ = ["max", "mean", "min", "sum"]


def _expand(g, shape, axis, keepdims):
    """Broadcasts a reduced gradient back to the input's shape."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else axis
        g = np.expand_dims(g, tuple(ax % len(shape) for ax in axes))
    return np.broadcast_to(g, shape)


def sum(a, axis=None, keepdims=False):
    a = as_tensor(a)
    shape = a.shape
    return record(
        np.asarray(a.data.sum(axis=axis, keepdims=keepdims)),
        (a,),
        lambda g: (_expand(g[0], shape, axis, keepdims),),
        "sum",
    )


def mean(a, axis=None, keepdims=False):
    a = as_tensor(a)
    shape = a.shape
    out = np.asarray(a.data.mean(axis=axis, keepdims=keepdims))
    count = a.data.size // (out.size or 1) if a.data.size else 1
    return record(out, (a,), lambda g: (_expand(g[0] / count, shape, axis, keepdims),), "mean")


def _extreme(a, axis, keepdims, reduce, name):
    a = as_tensor(a)
    ad = a.data
    out = np.asarray(reduce(ad, axis=axis, keepdims=keepdims))

    def backward(g):
        full = _expand(out, ad.shape, axis, keepdims)
        mask = ad == full
        # Ties share the gradient equally.
        count = _expand(
            np.asarray(mask.sum(axis=axis, keepdims=keepdims)), ad.shape, axis, keepdims
        )
        return (_expand(g[0], ad.shape, axis, keepdims) * mask / count,)

    return record(out, (a,), backward, name)


def max(a, axis=None, keepdims=False):
    return _extreme(a, axis, keepdims, np.max, "max")


def min(a, axis=None, keepdims=False):
    return _extreme(a, axis, keepdims, np.min, "min")
