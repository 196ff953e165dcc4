"""Element-wise arithmetic and maths with NumPy broadcasting, and the dtype rules of
mixed operands.

Promotion: two Tensors (or a Tensor and an array) follow NumPy's rules. A Python
number follows PyTorch's where NumPy's would surprise: it never lowers a Tensor's
floating dtype (``float32 * 2.5`` stays float32, as in both), and a Python float
meeting an integer or bool Tensor makes a float32 result (dlcore's default float, as PyTorch;
NumPy 2 would give ``float64`` for the wider integers, old NumPy the integer itself).
A Python int or bool takes an integer Tensor's dtype; a Python int meeting a bool
Tensor is int64. The operation then follows NumPy: ``int64 / 2`` is float64.
"""

from __future__ import annotations

import numpy as np

from dlcore.tensor import Tensor, as_tensor, record

__all__ = [
    "abs",
    "add",
    "astype",
    "clip",
    "div",
    "equal",
    "exp",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "log",
    "maximum",
    "minimum",
    "mul",
    "neg",
    "not_equal",
    "power",
    "sqrt",
    "square",
    "sub",
    "unbroadcast",
]


def _with_number(t, x):
    """The Tensor ``t`` and the Python number ``x`` as two Tensors typed by the rules
    above: (t, x as t's dtype), or both float32 when a Python float meets an integer
    or bool Tensor (which records no graph, so it is replaced by its float32 copy)."""
    kind = t.data.dtype.kind
    if kind in "fc":
        return t, Tensor(np.asarray(x, dtype=t.data.dtype))
    if isinstance(x, float):
        return Tensor(t.data.astype(np.float32)), Tensor(np.asarray(x, dtype=np.float32))
    if kind == "b" and not isinstance(x, bool):  # bool Tensor and a Python int
        return t, Tensor(np.asarray(x, dtype=np.int64))
    return t, Tensor(np.asarray(x, dtype=t.data.dtype))


def _operands(a, b):
    """(a, b) as Tensors, constants typed by the promotion rules above."""
    if not isinstance(a, Tensor):
        b = as_tensor(b)
        if isinstance(a, (int, float)):
            b, a = _with_number(b, a)
        else:
            a = Tensor(np.asarray(a))
    elif not isinstance(b, Tensor):
        if isinstance(b, (int, float)):
            a, b = _with_number(a, b)
        else:
            b = Tensor(np.asarray(b))
    return a, b


def unbroadcast(grad, shape):
    """Sums grad over the axes that broadcasting expanded to get from ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    out = grad.sum(axis=axes, keepdims=True) if axes else grad
    return out.reshape(shape)


# ---------------------------------------------------------------- arithmetic


def add(a, b):
    a, b = _operands(a, b)
    sa, sb = a.shape, b.shape
    return record(
        a.data + b.data,
        (a, b),
        lambda g: (unbroadcast(g[0], sa), unbroadcast(g[0], sb)),
        "add",
    )


def sub(a, b):
    a, b = _operands(a, b)
    sa, sb = a.shape, b.shape
    return record(
        a.data - b.data,
        (a, b),
        lambda g: (unbroadcast(g[0], sa), unbroadcast(-g[0], sb)),
        "sub",
    )


def mul(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (
            unbroadcast(g[0] * bd, ad.shape) if a.requires_grad else None,
            unbroadcast(g[0] * ad, bd.shape) if b.requires_grad else None,
        )

    return record(ad * bd, (a, b), backward, "mul")


def div(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    out = ad / bd

    def backward(g):
        return (
            unbroadcast(g[0] / bd, ad.shape) if a.requires_grad else None,
            unbroadcast(-g[0] * out / bd, bd.shape) if b.requires_grad else None,
        )

    return record(out, (a, b), backward, "div")


def neg(a):
    a = as_tensor(a)
    return record(-a.data, (a,), lambda g: (-g[0],), "neg")


def power(a, b):
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    out = ad**bd

    def backward(g):
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g[0] * bd * ad ** (bd - 1), ad.shape)
        if b.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(ad > 0, np.log(np.where(ad > 0, ad, 1)), 0)
                gb = unbroadcast(g[0] * out * log_a, bd.shape)
        return ga, gb

    return record(out, (a, b), backward, "pow")


def maximum(a, b):
    """Element-wise max; where the two are equal the gradient goes to ``a``."""
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    pick_a = ad >= bd

    def backward(g):
        return (
            unbroadcast(g[0] * pick_a, ad.shape) if a.requires_grad else None,
            unbroadcast(g[0] * ~pick_a, bd.shape) if b.requires_grad else None,
        )

    return record(np.maximum(ad, bd), (a, b), backward, "maximum")


def minimum(a, b):
    """Element-wise min; where the two are equal the gradient goes to ``a``."""
    a, b = _operands(a, b)
    ad, bd = a.data, b.data
    pick_a = ad <= bd

    def backward(g):
        return (
            unbroadcast(g[0] * pick_a, ad.shape) if a.requires_grad else None,
            unbroadcast(g[0] * ~pick_a, bd.shape) if b.requires_grad else None,
        )

    return record(np.minimum(ad, bd), (a, b), backward, "minimum")


# ---------------------------------------------------------------- unary maths


def exp(a):
    a = as_tensor(a)
    out = np.exp(a.data)
    return record(out, (a,), lambda g: (g[0] * out,), "exp")


def log(a):
    a = as_tensor(a)
    ad = a.data
    return record(np.log(ad), (a,), lambda g: (g[0] / ad,), "log")


def sqrt(a):
    a = as_tensor(a)
    out = np.sqrt(a.data)
    return record(out, (a,), lambda g: (g[0] / (2 * out),), "sqrt")


def square(a):
    a = as_tensor(a)
    ad = a.data
    return record(ad * ad, (a,), lambda g: (2 * g[0] * ad,), "square")


def abs(a):
    a = as_tensor(a)
    ad = a.data
    return record(np.abs(ad), (a,), lambda g: (g[0] * np.sign(ad),), "abs")


def clip(a, low, high):
    a = as_tensor(a)
    ad = a.data
    inside = None if not a.requires_grad else (ad >= low) & (ad <= high)
    return record(np.clip(ad, low, high), (a,), lambda g: (g[0] * inside,), "clip")


def astype(a, dtype):
    a = as_tensor(a)
    src = a.data.dtype
    return record(a.data.astype(dtype), (a,), lambda g: (g[0].astype(src),), "astype")


# ---------------------------------------------------------------- comparisons
# They record nothing: their result has no gradient.


def _compare(op):
    def compare(a, b):
        a, b = _operands(a, b)
        return Tensor(op(a.data, b.data))

    compare.__name__ = op.__name__
    compare.__doc__ = f"Element-wise {op.__name__} (no gradient)."
    return compare


less = _compare(np.less)
less_equal = _compare(np.less_equal)
greater = _compare(np.greater)
greater_equal = _compare(np.greater_equal)
equal = _compare(np.equal)
not_equal = _compare(np.not_equal)
