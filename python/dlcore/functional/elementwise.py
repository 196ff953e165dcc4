"""Element-wise arithmetic and maths with NumPy broadcasting, and the dtype rules of
mixed operands.

Promotion: two Tensors (or a Tensor and an array) follow NumPy's rules. A Python
number follows PyTorch's where NumPy's would surprise: it never lowers a Tensor's
floating dtype (``float32 * 2.5`` stays float32, as in both), and a Python float
meeting an integer or bool Tensor makes a float32 result (dlcore's default float;
NumPy would cast the float to the integer dtype's kind ``float64``, old NumPy to the
integer itself). A Python int or bool takes an integer Tensor's dtype.
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


def _scalar_array(x, like):
    """A Python number as an array of the dtype it takes beside the Tensor ``like``."""
    kind = like.data.dtype.kind
    if kind in "fc":
        return np.asarray(x, dtype=like.data.dtype)
    if isinstance(x, float):
        return np.asarray(x, dtype=np.float32)
    if kind == "b" and not isinstance(x, bool):  # bool Tensor and a Python int
        return np.asarray(x, dtype=np.int64)
    return np.asarray(x, dtype=like.data.dtype)


def _operands(a, b):
    """(a, b) as Tensors, constants typed by the promotion rules above."""
    if not isinstance(a, Tensor):
        b = as_tensor(b)
        a = Tensor(_scalar_array(a, b)) if isinstance(a, (int, float)) else Tensor(np.asarray(a))
    elif not isinstance(b, Tensor):
        b = Tensor(_scalar_array(b, a)) if isinstance(b, (int, float)) else Tensor(np.asarray(b))
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
