"""The Tensor's operators and methods. Each is the functional op of the same meaning,
so the Tensor class holds no maths of its own; :func:`install` attaches them when
:mod:`dlcore.functional` is imported (which ``import dlcore`` does)."""

from __future__ import annotations

from . import activations, elementwise, linalg, reductions, shape


def _reflected(op):
    def method(self, other):
        return op(other, self)

    method.__name__ = f"r{op.__name__}"
    return method


def _shape_args(args):
    """``t.reshape(2, 3)`` and ``t.reshape((2, 3))`` alike."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def reshape(self, *shape_):
    return shape.reshape(self, _shape_args(shape_))


def transpose(self, *axes):
    return shape.transpose(self, _shape_args(axes) or None)


def flatten(self):
    return shape.reshape(self, (-1,))


def _pos(self):
    return self


METHODS = {
    "__add__": elementwise.add,
    "__radd__": _reflected(elementwise.add),
    "__sub__": elementwise.sub,
    "__rsub__": _reflected(elementwise.sub),
    "__mul__": elementwise.mul,
    "__rmul__": _reflected(elementwise.mul),
    "__truediv__": elementwise.div,
    "__rtruediv__": _reflected(elementwise.div),
    "__pow__": elementwise.power,
    "__rpow__": _reflected(elementwise.power),
    "__matmul__": linalg.matmul,
    "__rmatmul__": _reflected(linalg.matmul),
    "__neg__": elementwise.neg,
    "__pos__": _pos,
    "__abs__": elementwise.abs,
    "__getitem__": shape.getitem,
    "__lt__": elementwise.less,
    "__le__": elementwise.less_equal,
    "__gt__": elementwise.greater,
    "__ge__": elementwise.greater_equal,
    "__eq__": elementwise.equal,
    "__ne__": elementwise.not_equal,
    "sum": reductions.sum,
    "mean": reductions.mean,
    "max": reductions.max,
    "min": reductions.min,
    "reshape": reshape,
    "flatten": flatten,
    "transpose": transpose,
    "T": property(lambda self: shape.transpose(self, None)),
    "exp": elementwise.exp,
    "log": elementwise.log,
    "sqrt": elementwise.sqrt,
    "abs": elementwise.abs,
    "clip": elementwise.clip,
    "astype": elementwise.astype,
    "relu": activations.relu,
    "sigmoid": activations.sigmoid,
    "tanh": activations.tanh,
    "softmax": activations.softmax,
    "log_softmax": activations.log_softmax,
}


def install(tensor_class):
    """Attaches :data:`METHODS` to ``tensor_class``."""
    for name, fn in METHODS.items():
        setattr(tensor_class, name, fn)
