"""Activation functions as differentiable ops.

``sigmoid`` and ``softmax`` return an :class:`ActivatedTensor`, which remembers the
logits it came from: a cross-entropy loss given one computes from the logits (exact,
and its gradient is the familiar ``p - y``) instead of from clipped probabilities.
Any further op on it gives a plain Tensor again.
"""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore.tensor import Tensor, as_tensor, record

__all__ = [
    "ActivatedTensor",
    "leaky_relu",
    "log_softmax",
    "log_softmax_array",
    "relu",
    "sigmoid",
    "sigmoid_array",
    "softmax",
    "tanh",
]


class ActivatedTensor(Tensor):
    """The output of ``sigmoid`` or of a last-axis ``softmax``: ``activation`` names
    which, ``logits`` is the input Tensor."""

    __slots__ = ("activation", "logits")

    def __init__(self, data, requires_grad=False, dtype=None):
        super().__init__(data, requires_grad, dtype)
        self.activation = None
        self.logits = None

    @classmethod
    def _of(cls, array):
        t = super()._of(array)
        t.activation = t.logits = None
        return t


def _activated(out, a, backward, name, axis_ok=True):
    t = record(out, (a,), backward, name, tensor_type=ActivatedTensor if axis_ok else None)
    if axis_ok:
        t.activation, t.logits = name, a
    return t


# ---------------------------------------------------------------- arrays


def sigmoid_array(x):
    """1 / (1 + exp(-x)), split by sign so that exp never overflows."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1 + e)
    return out


def log_softmax_array(z, axis=-1):
    """z - logsumexp(z) along ``axis``, shifted by the max for range."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- ops


def relu(a):
    a = as_tensor(a)
    if a.dtype not in (np.float32, np.float64):
        ad = a.data
        return record(np.maximum(ad, 0), (a,), lambda g: (g[0] * (ad > 0),), "relu")
    out = ops.relu(a.data)  # one parallel pass each way, instead of NumPy's three
    return record(out, (a,), lambda g: (ops.relu_backward(g[0], out),), "relu")


def leaky_relu(x, negative_slope=0.2):
    x = as_tensor(x)
    xd = x.data
    slope = np.where(xd > 0, 1, negative_slope).astype(xd.dtype)
    return record(xd * slope, (x,), lambda g: (g[0] * slope,), "leaky_relu")


def sigmoid(a):
    a = as_tensor(a)
    out = sigmoid_array(a.data)
    return _activated(out, a, lambda g: (g[0] * out * (1 - out),), "sigmoid")


def tanh(a):
    a = as_tensor(a)
    out = np.tanh(a.data)
    return record(out, (a,), lambda g: (g[0] * (1 - out * out),), "tanh")


def softmax(a, axis=-1):
    a = as_tensor(a)
    e = np.exp(a.data - a.data.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)

    def backward(g):
        gy = g[0] * out
        return (gy - out * gy.sum(axis=axis, keepdims=True),)

    return _activated(out, a, backward, "softmax", axis_ok=axis in (-1, a.ndim - 1))


def log_softmax(a, axis=-1):
    a = as_tensor(a)
    out = log_softmax_array(a.data, axis)

    def backward(g):
        return (g[0] - np.exp(out) * g[0].sum(axis=axis, keepdims=True),)

    return record(out, (a,), backward, "log_softmax")
