"""Activation functions as differentiable ops, with Keras 3's formulas and parameters.
The element-wise ones run on the C++ activation kernels (one vectorised pass each way).

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
    "elu",
    "exponential",
    "gelu",
    "hard_sigmoid",
    "hard_silu",
    "leaky_relu",
    "log_softmax",
    "log_softmax_array",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "sigmoid_array",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "swish",
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


def _kernel_activation(x, kind, name=None, tensor_type=None, **params):
    """``kind`` element-wise on the activation kernels; the backward reads x or the
    output, whichever the kind's derivative needs."""
    x = as_tensor(x)
    xd = x.data
    y = ops.activation_forward(xd, kind, **params)
    from_output = _BACKWARD_READS_OUTPUT.get(kind)
    if from_output is None:
        from_output = _BACKWARD_READS_OUTPUT[kind] = ops.activation_backward_needs(kind) == "y"
    saved = {"y": y} if from_output else {"x": xd}

    def backward(g):
        return (ops.activation_backward(g[0], kind, **saved, **params),)

    if tensor_type is None:
        return record(y, (x,), backward, name or kind)
    return _activated(y, x, backward, name or kind)


_BACKWARD_READS_OUTPUT = {}  # kind -> whether its backward reads y (else x)


def relu(a, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0); with Keras' parameters, ``x`` above ``threshold`` (clipped to
    ``max_value``) and ``negative_slope * (x - threshold)`` below it."""
    a = as_tensor(a)
    if negative_slope or max_value is not None or threshold:
        return _kernel_activation(a, "relu", negative_slope=negative_slope,
                                  max_value=max_value, threshold=threshold)  # fmt: skip
    if a.dtype not in (np.float32, np.float64):
        ad = a.data
        return record(np.maximum(ad, 0), (a,), lambda g: (g[0] * (ad > 0),), "relu")
    out = ops.relu(a.data)  # one parallel pass each way, instead of NumPy's three
    return record(out, (a,), lambda g: (ops.relu_backward(g[0], out),), "relu")


def relu6(x):
    """min(max(x, 0), 6)."""
    return _kernel_activation(x, "relu6")


def elu(x, alpha=1.0):
    """x for x > 0, alpha (e^x - 1) otherwise."""
    return _kernel_activation(x, "elu", alpha=alpha)


def selu(x):
    """Scaled ELU with the self-normalising constants (alpha 1.67326..., scale 1.05070...)."""
    return _kernel_activation(x, "selu")


def gelu(x, approximate=False):
    """x Phi(x), Phi the standard normal CDF; ``approximate=True``: the tanh formula."""
    return _kernel_activation(x, "gelu", approximate=approximate)


def silu(x):
    """x sigmoid(x), also called swish."""
    return _kernel_activation(x, "silu")


swish = silu


def softplus(x):
    """log(1 + e^x), without overflow."""
    return _kernel_activation(x, "softplus")


def softsign(x):
    """x / (1 + |x|)."""
    return _kernel_activation(x, "softsign")


def hard_sigmoid(x):
    """relu6(x + 3) / 6 (Keras 3's definition)."""
    return _kernel_activation(x, "hard_sigmoid")


def hard_silu(x):
    """x hard_sigmoid(x), also called hard_swish."""
    return _kernel_activation(x, "hard_silu")


def mish(x):
    """x tanh(softplus(x))."""
    return _kernel_activation(x, "mish")


def exponential(x):
    """e^x."""
    from .elementwise import exp

    return exp(x)


def prelu(x, alpha):
    """x for x > 0, alpha * x otherwise, with a learned ``alpha`` broadcast against x
    (Keras' PReLU: relu(x) - alpha relu(-x))."""
    x, alpha = as_tensor(x), as_tensor(alpha)
    xd, ad = x.data, alpha.data
    positive = xd > 0
    negative = np.where(positive, 0, xd).astype(np.result_type(xd, ad), copy=False)

    def backward(g):
        dy = g[0]
        return (
            np.where(positive, dy, dy * ad) if x.requires_grad else None,
            _sum_to(dy * negative, ad.shape) if alpha.requires_grad else None,
        )

    return record(np.where(positive, xd, ad * xd), (x, alpha), backward, "prelu")


def _sum_to(g, shape):
    """g summed over the axes it was broadcast along to reach its shape from ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g


def leaky_relu(x, negative_slope=0.2):
    x = as_tensor(x)
    xd = x.data
    slope = np.where(xd > 0, 1, negative_slope).astype(xd.dtype)
    return record(xd * slope, (x,), lambda g: (g[0] * slope,), "leaky_relu")


def sigmoid(a):
    return _kernel_activation(a, "sigmoid", tensor_type=ActivatedTensor)


def tanh(a):
    return _kernel_activation(a, "tanh")


def softmax(a, axis=-1):
    a = as_tensor(a)
    last = a.ndim > 0 and axis in (-1, a.ndim - 1)
    if last:  # the kernels: one pass over each row each way
        out = ops.softmax_forward(a.data)

        def backward(g):
            return (ops.softmax_backward(g[0], out),)

    else:
        e = np.exp(a.data - a.data.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)

        def backward(g):
            gy = g[0] * out
            return (gy - out * gy.sum(axis=axis, keepdims=True),)

    return _activated(out, a, backward, "softmax", axis_ok=last)


def log_softmax(a, axis=-1):
    a = as_tensor(a)
    out = log_softmax_array(a.data, axis)

    def backward(g):
        return (g[0] - np.exp(out) * g[0].sum(axis=axis, keepdims=True),)

    return record(out, (a,), backward, "log_softmax")
