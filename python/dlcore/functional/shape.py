"""Shape operations: reshape, transpose, indexing, concatenation, stacking, repetition
and zero padding."""

from __future__ import annotations

import numpy as np

from dlcore.tensor import Tensor, as_tensor, record

__all__ = [
    "concatenate",
    "expand_dims",
    "getitem",
    "pad",
    "repeat",
    "reshape",
    "squeeze",
    "stack",
    "transpose",
]


def reshape(a, shape):
    a = as_tensor(a)
    src = a.shape
    return record(a.data.reshape(shape), (a,), lambda g: (g[0].reshape(src),), "reshape")


def expand_dims(a, axis):
    return reshape(a, np.expand_dims(as_tensor(a).data, axis).shape)


def squeeze(a, axis=None):
    return reshape(a, np.squeeze(as_tensor(a).data, axis).shape)


def transpose(a, axes=None):
    a = as_tensor(a)
    inverse = None if axes is None else tuple(np.argsort(axes))
    return record(
        np.transpose(a.data, axes), (a,), lambda g: (np.transpose(g[0], inverse),), "transpose"
    )


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def getitem(a, index):
    a = as_tensor(a)
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    shape, dtype = a.shape, a.dtype
    basic = _is_basic_index(index)

    def backward(g):
        out = np.zeros(shape, dtype)
        if basic:
            out[index] = g[0]
        else:
            np.add.at(out, index, g[0])  # repeated indices accumulate
        return (out,)

    return record(a.data[index], (a,), backward, "getitem")


def concatenate(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    sizes = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return record(
        np.concatenate([t.data for t in tensors], axis=axis),
        tuple(tensors),
        lambda g: tuple(np.split(g[0], sizes, axis=axis)),
        "concatenate",
    )


def stack(tensors, axis=0):
    tensors = [as_tensor(t) for t in tensors]
    n = len(tensors)
    return record(
        np.stack([t.data for t in tensors], axis=axis),
        tuple(tensors),
        lambda g: tuple(np.take(g[0], i, axis=axis) for i in range(n)),
        "stack",
    )


def repeat(a, repeats, axis):
    """Each element repeated ``repeats`` times along ``axis`` (numpy.repeat with an int):
    (..., n, ...) -> (..., n * repeats, ...); the gradient sums each run of copies."""
    a = as_tensor(a)
    axis = axis % a.ndim
    shape = a.shape

    def backward(g):
        runs = g[0].reshape(*shape[:axis], shape[axis], repeats, *shape[axis + 1 :])
        return (runs.sum(axis=axis + 1),)

    return record(np.repeat(a.data, repeats, axis=axis), (a,), backward, "repeat")


def pad(a, pad_width):
    """Zeros added around ``a``: ``pad_width`` is one (before, after) pair per axis, as
    numpy.pad takes it; the gradient is the inner part."""
    a = as_tensor(a)
    inner = tuple(slice(before, before + n) for (before, _), n in zip(pad_width, a.shape))
    return record(np.pad(a.data, pad_width), (a,), lambda g: (g[0][inner],), "pad")
