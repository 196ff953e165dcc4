"""``keras.ops`` for code written against Keras 3: the common tensor operations under
Keras' names and arguments, on dlcore Tensors (``from dlcore import keras;
keras.ops.mean(x, axis=-1)`` in a custom layer, loss or metric).

Differentiable where Keras' are: the arithmetic, maths, reductions, shapes and
activations record their gradients through :mod:`dlcore.functional`. Comparisons,
``argmax``/``argmin``, ``one_hot``, ``sign``, rounding, ``ones_like``/``zeros_like``
and the constructors give Tensors without a gradient, as they have none in Keras.

``dlcore.ops`` (NumPy in, NumPy out) is another module: the C++ kernels. With ``import
dlcore as keras``, ``keras.ops`` is that one; take this one as ``dlcore.keras.ops``.
"""

from __future__ import annotations

import numpy as np

from dlcore import functional as F
from dlcore.functional.elementwise import astype as _astype
from dlcore.functional.elementwise import unbroadcast as _unbroadcast
from dlcore.functional.shape import expand_dims as _expand_dims
from dlcore.functional.shape import squeeze as _squeeze
from dlcore.tensor import Tensor, as_tensor, record

__all__ = [
    "abs", "absolute", "add", "all", "any", "arange", "argmax", "argmin", "cast", "ceil",
    "clip", "concatenate", "convert_to_numpy", "convert_to_tensor", "divide", "dot", "elu",
    "equal", "exp", "expand_dims", "floor", "full", "gelu", "greater", "greater_equal",
    "hard_sigmoid", "leaky_relu", "less", "less_equal", "log", "log1p", "log_softmax",
    "logical_and", "logical_not", "logical_or", "logsumexp", "matmul", "max", "maximum",
    "mean", "min", "minimum", "multiply", "negative", "not_equal", "one_hot", "ones",
    "ones_like", "power", "relu", "relu6", "repeat", "reshape", "round", "selu", "shape",
    "sigmoid", "sign", "silu", "softmax", "softplus", "softsign", "sqrt", "square",
    "squeeze", "stack", "std", "subtract", "sum", "swish", "tanh", "transpose",
    "true_divide", "var", "where", "zeros", "zeros_like",
]  # fmt: skip


def _data(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _constant(array):
    """A Tensor without a gradient (an op that has none)."""
    return Tensor(np.asarray(array))


# ---------------------------------------------------------------- conversions
def convert_to_tensor(x, dtype=None, sparse=None):
    t = as_tensor(x)
    return t if dtype is None else cast(t, dtype)


def convert_to_numpy(x):
    return np.array(_data(x))


def cast(x, dtype):
    """x in ``dtype``: differentiable between floating dtypes, a constant otherwise."""
    x = as_tensor(x)
    return _astype(x, np.dtype(dtype)) if x.data.dtype != np.dtype(dtype) else x


def shape(x):
    return tuple(np.shape(_data(x)))


# ---------------------------------------------------------------- arithmetic
add, subtract, multiply, divide, power = F.add, F.sub, F.mul, F.div, F.power
true_divide = divide
matmul = F.matmul
maximum, minimum = F.maximum, F.minimum


def negative(x):
    return -as_tensor(x)


def dot(x1, x2):
    return F.matmul(x1, x2)


# ---------------------------------------------------------------- unary maths
exp, log, sqrt, square = F.exp, F.log, F.sqrt, F.square
abs = absolute = F.abs


def log1p(x):
    return F.log(as_tensor(x) + 1.0)


def clip(x, x_min, x_max):
    return F.clip(x, x_min, x_max)


def sign(x):
    return _constant(np.sign(_data(x)))


def floor(x):
    return _constant(np.floor(_data(x)))


def ceil(x):
    return _constant(np.ceil(_data(x)))


def round(x, decimals=0):
    return _constant(np.round(_data(x), decimals))


# ---------------------------------------------------------------- reductions
def sum(x, axis=None, keepdims=False):
    return F.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return F.mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False, initial=None):
    if initial is not None:
        return F.maximum(F.max(x, axis=axis, keepdims=keepdims), initial)
    return F.max(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False, initial=None):
    if initial is not None:
        return F.minimum(F.min(x, axis=axis, keepdims=keepdims), initial)
    return F.min(x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims=False):
    x = as_tensor(x)
    centred = x - F.mean(x, axis=axis, keepdims=True)
    return F.mean(centred * centred, axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return F.sqrt(var(x, axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    x = as_tensor(x)
    top = np.max(x.data, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = F.log(F.sum(F.exp(x - top), axis=axis, keepdims=True)) + top
    if keepdims:
        return out
    return _squeeze(out, axis) if axis is not None else F.reshape(out, ())


def argmax(x, axis=None, keepdims=False):
    return _constant(np.argmax(_data(x), axis=axis, keepdims=keepdims))


def argmin(x, axis=None, keepdims=False):
    return _constant(np.argmin(_data(x), axis=axis, keepdims=keepdims))


def any(x, axis=None, keepdims=False):
    return _constant(np.any(_data(x), axis=axis, keepdims=keepdims))


def all(x, axis=None, keepdims=False):
    return _constant(np.all(_data(x), axis=axis, keepdims=keepdims))


# ---------------------------------------------------------------- comparisons, logic
def _compare(fn):
    return lambda x1, x2: _constant(fn(_data(x1), _data(x2)))


equal, not_equal = _compare(np.equal), _compare(np.not_equal)
greater, greater_equal = _compare(np.greater), _compare(np.greater_equal)
less, less_equal = _compare(np.less), _compare(np.less_equal)
logical_and, logical_or = _compare(np.logical_and), _compare(np.logical_or)


def logical_not(x):
    return _constant(np.logical_not(_data(x)))


def where(condition, x1=None, x2=None):
    """x1 where condition holds, else x2 (each differentiable); with the condition alone,
    the indices where it holds."""
    cond = np.asarray(_data(condition)).astype(bool)
    if x1 is None and x2 is None:
        return tuple(_constant(i) for i in np.nonzero(cond))
    a, b = as_tensor(x1), as_tensor(x2)
    out = np.where(cond, a.data, b.data)
    out = out.astype(np.result_type(a.data, b.data), copy=False)

    def backward(g):
        g = g[0]
        return (_unbroadcast(np.where(cond, g, 0), a.shape),
                _unbroadcast(np.where(cond, 0, g), b.shape))  # fmt: skip

    return record(out, (a, b), backward, "where")


# ---------------------------------------------------------------- shapes
reshape, transpose, concatenate, stack, repeat = (
    F.reshape,
    F.transpose,
    F.concatenate,
    F.stack,
    F.repeat,
)


def expand_dims(x, axis):
    return _expand_dims(x, axis)


def squeeze(x, axis=None):
    return _squeeze(x, axis)


# ---------------------------------------------------------------- constructors
def ones(shape, dtype="float32"):
    return _constant(np.ones(shape, dtype))


def zeros(shape, dtype="float32"):
    return _constant(np.zeros(shape, dtype))


def full(shape, fill_value, dtype=None):
    return _constant(np.full(shape, fill_value, dtype or "float32"))


def ones_like(x, dtype=None):
    return _constant(np.ones_like(_data(x), dtype=dtype))


def zeros_like(x, dtype=None):
    return _constant(np.zeros_like(_data(x), dtype=dtype))


def arange(start, stop=None, step=1, dtype=None):
    return _constant(np.arange(start, stop, step, dtype=dtype))


def one_hot(x, num_classes, axis=-1, dtype="float32"):
    labels = np.asarray(_data(x)).astype(np.int64)
    out = (labels[..., None] == np.arange(int(num_classes))).astype(dtype)
    return _constant(np.moveaxis(out, -1, axis) if axis != -1 else out)


# ---------------------------------------------------------------- activations
relu, sigmoid, tanh, elu, selu = F.relu, F.sigmoid, F.tanh, F.elu, F.selu
silu = swish = F.silu
softplus, softsign, relu6, hard_sigmoid = F.softplus, F.softsign, F.relu6, F.hard_sigmoid
leaky_relu = F.leaky_relu


def gelu(x, approximate=True):
    """Keras' ops.gelu: the tanh approximation by default (the activation 'gelu' is
    exact by default, in Keras as here)."""
    return F.gelu(x, approximate=approximate)


def softmax(x, axis=-1):
    return F.softmax(x, axis=axis)


def log_softmax(x, axis=-1):
    return F.log_softmax(x, axis=axis)
