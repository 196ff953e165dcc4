"""Reverse-mode automatic differentiation over NumPy arrays.

A :class:`Tensor` wraps an array. Every operation on tensors that need gradients
records a :class:`Node`: the inputs and a function from the gradients of the node's
outputs to the gradients of its inputs. ``backward()`` sorts the recorded graph
topologically (iteratively, so deep graphs have no recursion limit) and sweeps it in
reverse; gradients accumulate on the leaves' ``.grad`` until cleared.

Elementwise maths runs in NumPy; matrix products go through :mod:`dlcore.ops`.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from dlcore import ops

__all__ = ["Tensor", "Node", "no_grad", "enable_grad", "is_grad_enabled", "as_tensor"]

_state = threading.local()


def is_grad_enabled():
    """False inside ``no_grad()`` (per thread)."""
    return getattr(_state, "grad_enabled", True)


@contextmanager
def _grad_mode(enabled):
    before = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = before


def no_grad():
    """Context manager: operations inside record no graph (inference, weight updates)."""
    return _grad_mode(False)


def enable_grad():
    """Context manager: re-enables recording inside a ``no_grad()`` block."""
    return _grad_mode(True)


class Node:
    """One recorded operation: its input tensors, how many outputs it made, and
    ``backward(output_grads) -> input_grads`` (one entry per input, None for none)."""

    __slots__ = ("inputs", "backward", "n_outputs", "name")

    def __init__(self, inputs, backward, n_outputs=1, name=""):
        self.inputs = inputs
        self.backward = backward
        self.n_outputs = n_outputs
        self.name = name


def _default_dtype(array):
    """Python floats become float32, the default dtype; arrays keep their own."""
    return array.astype(np.float32) if array.dtype == np.float64 else array


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Args:
        data: array_like. NumPy arrays keep their dtype; Python numbers and lists of
            floats become float32 (the default dtype), of ints int64.
        requires_grad: record operations on this tensor so ``backward()`` can
            compute its gradient into ``.grad``. Needs a floating-point dtype.
        dtype: convert the data to this dtype first.
    """

    __slots__ = (
        "data",
        "grad",
        "requires_grad",
        "_node",
        "_index",
        "_logits",
        "name",
        "__weakref__",
    )
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected method

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            array = np.asarray(data, dtype=dtype)
        elif isinstance(data, np.ndarray):
            array = data
        elif isinstance(data, np.generic):  # a NumPy scalar (0-d results) keeps its dtype
            array = np.asarray(data)
        else:
            array = np.asarray(data)
            if array.dtype == np.float64:
                array = array.astype(np.float32)
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"Tensor: requires_grad needs a floating-point dtype, got {array.dtype}"
            )
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        self._index = 0
        self._logits = None  # (kind, pre-activation tensor) for fused losses
        self.name = None

    # ------------------------------------------------------------ basics
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def is_leaf(self):
        return self._node is None

    def numpy(self):
        """The data as a NumPy array (shared, not copied)."""
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __len__(self):
        return len(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __bool__(self):
        return bool(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self.data.dtype}{grad})"

    # ------------------------------------------------------------ autograd
    def backward(self, grad=None):
        """Accumulates d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires
        grad. ``grad`` defaults to 1 for a single-element tensor."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be omitted only for a single-element tensor, "
                    f"this one has shape {self.shape}"
                )
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, expected {self.shape}")
        if self._node is None:
            _accumulate_leaf(self, grad, owned=False)
            return
        handed_out = set()  # ids of arrays already given to a leaf or a pending slot
        pending = {id(self._node): [None] * self._node.n_outputs}
        pending[id(self._node)][self._index] = grad
        for node in reversed(_topological_order(self._node)):
            out_grads = pending.pop(id(node), None)
            if out_grads is None:
                continue
            in_grads = node.backward(out_grads)
            for t, g in zip(node.inputs, in_grads):
                if g is None or not t.requires_grad:
                    continue
                owned = id(g) not in handed_out
                handed_out.add(id(g))
                if t._node is None:
                    _accumulate_leaf(t, g, owned)
                else:
                    slot = pending.setdefault(id(t._node), [None] * t._node.n_outputs)
                    prev = slot[t._index]
                    slot[t._index] = g if prev is None else prev + g

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __pow__(self, exponent):
        return power(self, exponent)

    def __rpow__(self, base):
        return power(base, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self

    def __getitem__(self, index):
        return getitem(self, index)

    # comparisons record nothing: their result has no gradient
    def _compare(self, other, op):
        return Tensor(op(self.data, other.data if isinstance(other, Tensor) else other))

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__

    # ------------------------------------------------------------ methods
    def sum(self, axis=None, keepdims=False):
        return sum_(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return max_(self, axis, keepdims)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return reshape(self, shape)

    def flatten(self):
        return reshape(self, (-1,))

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    @property
    def T(self):
        return transpose(self, None)

    def exp(self):
        return exp(self)

    def log(self):
        return log(self)

    def sqrt(self):
        return sqrt(self)

    def abs(self):
        return abs_(self)

    def relu(self):
        return relu(self)

    def sigmoid(self):
        return sigmoid(self)

    def tanh(self):
        return tanh(self)

    def softmax(self, axis=-1):
        return softmax(self, axis)

    def log_softmax(self, axis=-1):
        return log_softmax(self, axis)

    def clip(self, low, high):
        return clip(self, low, high)

    def astype(self, dtype):
        return astype(self, dtype)


# ---------------------------------------------------------------- engine helpers


def _accumulate_leaf(t, g, owned):
    """Adds g to t.grad. A fresh array nobody else holds (owned, owning its memory,
    writeable, of t's dtype) becomes t.grad itself instead of being copied."""
    if g.shape != t.data.shape:
        g = np.broadcast_to(g, t.data.shape)
    if t.grad is None:
        take = (
            owned
            and g.dtype == t.data.dtype
            and g.flags.owndata
            and g.flags.writeable
            and g.flags.c_contiguous
        )
        t.grad = g if take else np.array(g, dtype=t.data.dtype, copy=True)
    else:
        t.grad += g


def _topological_order(root):
    """Nodes reachable from root, every node after the nodes it consumes."""
    order, seen = [], {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        node, inputs = stack[-1]
        for t in inputs:
            child = t._node
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def as_tensor(x):
    """x as a Tensor (a constant unless it already is one)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _operand(x, like):
    """A constant operand of a binary op: Python numbers take the tensor's dtype."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Tensor(np.asarray(x, dtype=like.data.dtype))
    return Tensor(np.asarray(x))


def record(outputs, inputs, backward, name=""):
    """Makes the output array(s) of an operation into Tensors, recording a Node when
    gradients are enabled and some input requires them.

    outputs: an array, or a tuple of arrays for a multi-output operation.
    backward(output_grads) -> input_grads, where output_grads is a list with one entry
    per output (None for an output no gradient reached) and input_grads has one entry
    per input.
    """
    multi = isinstance(outputs, tuple)
    arrays = outputs if multi else (outputs,)
    tensors = tuple(Tensor(a) for a in arrays)
    if is_grad_enabled() and any(t.requires_grad for t in inputs):
        node = Node(tuple(inputs), backward, len(arrays), name)
        for i, t in enumerate(tensors):
            if t.data.dtype.kind == "f":
                t.requires_grad = True
                t._node = node
                t._index = i
    return tensors if multi else tensors[0]


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


# ---------------------------------------------------------------- elementwise


def add(a, b):
    a, b = (_operand(a, b), b) if not isinstance(a, Tensor) else (a, _operand(b, a))
    sa, sb = a.shape, b.shape
    return record(
        a.data + b.data, (a, b), lambda g: (unbroadcast(g[0], sa), unbroadcast(g[0], sb)), "add"
    )


def sub(a, b):
    a, b = (_operand(a, b), b) if not isinstance(a, Tensor) else (a, _operand(b, a))
    sa, sb = a.shape, b.shape
    return record(
        a.data - b.data, (a, b), lambda g: (unbroadcast(g[0], sa), unbroadcast(-g[0], sb)), "sub"
    )


def mul(a, b):
    a, b = (_operand(a, b), b) if not isinstance(a, Tensor) else (a, _operand(b, a))
    ad, bd = a.data, b.data

    def backward(g):
        return (
            unbroadcast(g[0] * bd, ad.shape) if a.requires_grad else None,
            unbroadcast(g[0] * ad, bd.shape) if b.requires_grad else None,
        )

    return record(ad * bd, (a, b), backward, "mul")


def div(a, b):
    a, b = (_operand(a, b), b) if not isinstance(a, Tensor) else (a, _operand(b, a))
    ad, bd = a.data, b.data
    out = ad / bd

    def backward(g):
        return (
            unbroadcast(g[0] / bd, ad.shape) if a.requires_grad else None,
            unbroadcast(-g[0] * out / bd, bd.shape) if b.requires_grad else None,
        )

    return record(out, (a, b), backward, "div")


def neg(a):
    return record(-a.data, (a,), lambda g: (-g[0],), "neg")


def power(a, b):
    a, b = (_operand(a, b), b) if not isinstance(a, Tensor) else (a, _operand(b, a))
    ad, bd = a.data, b.data
    out = ad**bd

    def backward(g):
        ga = gb = None
        if a.requires_grad:
            ga = unbroadcast(g[0] * bd * ad ** (bd - 1), ad.shape)
        if b.requires_grad:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = unbroadcast(
                    g[0] * out * np.where(ad > 0, np.log(np.where(ad > 0, ad, 1)), 0), bd.shape
                )
        return ga, gb

    return record(out, (a, b), backward, "pow")


def exp(a):
    out = np.exp(a.data)
    return record(out, (a,), lambda g: (g[0] * out,), "exp")


def log(a):
    ad = a.data
    return record(np.log(ad), (a,), lambda g: (g[0] / ad,), "log")


def sqrt(a):
    out = np.sqrt(a.data)
    return record(out, (a,), lambda g: (g[0] / (2 * out),), "sqrt")


def abs_(a):
    ad = a.data
    return record(np.abs(ad), (a,), lambda g: (g[0] * np.sign(ad),), "abs")


def clip(a, low, high):
    ad = a.data
    inside = None if not a.requires_grad else (ad >= low) & (ad <= high)
    return record(np.clip(ad, low, high), (a,), lambda g: (g[0] * inside,), "clip")


def astype(a, dtype):
    src = a.data.dtype
    return record(a.data.astype(dtype), (a,), lambda g: (g[0].astype(src),), "astype")


def relu(a):
    if a.dtype not in (np.float32, np.float64):
        ad = a.data
        return record(np.maximum(ad, 0), (a,), lambda g: (g[0] * (ad > 0),), "relu")
    out = ops.relu(a.data)  # one parallel pass each way, instead of NumPy's three
    return record(out, (a,), lambda g: (ops.relu_backward(g[0], out),), "relu")


def _sigmoid(x):
    # Split by sign so exp never overflows.
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1 / (1 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1 + e)
    return out


def sigmoid(a):
    out = _sigmoid(a.data)
    t = record(out, (a,), lambda g: (g[0] * out * (1 - out),), "sigmoid")
    t._logits = ("sigmoid", a)
    return t


def tanh(a):
    out = np.tanh(a.data)
    return record(out, (a,), lambda g: (g[0] * (1 - out * out),), "tanh")


def softmax(a, axis=-1):
    z = a.data - a.data.max(axis=axis, keepdims=True)
    e = np.exp(z)
    out = e / e.sum(axis=axis, keepdims=True)

    def backward(g):
        gy = g[0] * out
        return (gy - out * gy.sum(axis=axis, keepdims=True),)

    t = record(out, (a,), backward, "softmax")
    if axis in (-1, a.ndim - 1):
        t._logits = ("softmax", a)
    return t


def log_softmax(a, axis=-1):
    z = a.data - a.data.max(axis=axis, keepdims=True)
    out = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))

    def backward(g):
        return (g[0] - np.exp(out) * g[0].sum(axis=axis, keepdims=True),)

    return record(out, (a,), backward, "log_softmax")


# ---------------------------------------------------------------- reductions


def _expand(g, shape, axis, keepdims):
    """Broadcasts a reduced gradient back to the input's shape."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else axis
        g = np.expand_dims(g, tuple(ax % len(shape) for ax in axes))
    return np.broadcast_to(g, shape)


def sum_(a, axis=None, keepdims=False):
    shape = a.shape
    return record(
        np.asarray(a.data.sum(axis=axis, keepdims=keepdims)),
        (a,),
        lambda g: (_expand(g[0], shape, axis, keepdims),),
        "sum",
    )


def mean(a, axis=None, keepdims=False):
    shape = a.shape
    out = np.asarray(a.data.mean(axis=axis, keepdims=keepdims))
    count = a.data.size // max(out.size, 1) if a.data.size else 1
    return record(out, (a,), lambda g: (_expand(g[0] / count, shape, axis, keepdims),), "mean")


def max_(a, axis=None, keepdims=False):
    ad = a.data
    out = np.asarray(ad.max(axis=axis, keepdims=keepdims))

    def backward(g):
        full = _expand(out, ad.shape, axis, keepdims)
        mask = ad == full
        # Ties share the gradient equally.
        count = _expand(
            np.asarray(mask.sum(axis=axis, keepdims=keepdims)), ad.shape, axis, keepdims
        )
        return (_expand(g[0], ad.shape, axis, keepdims) * mask / count,)

    return record(out, (a,), backward, "max")


# ---------------------------------------------------------------- shape


def reshape(a, shape):
    src = a.shape
    return record(a.data.reshape(shape), (a,), lambda g: (g[0].reshape(src),), "reshape")


def transpose(a, axes=None):
    inverse = None if axes is None else tuple(np.argsort(axes))
    return record(
        np.transpose(a.data, axes), (a,), lambda g: (np.transpose(g[0], inverse),), "transpose"
    )


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def getitem(a, index):
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


# ---------------------------------------------------------------- products


def matmul(a, b):
    """a @ b. 2-D products (and (..., K) @ (K, N)) run on the GEMM kernel."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim >= 2 and b.ndim == 2:
        lead = a.shape[:-1]
        a2 = a.data.reshape(-1, a.shape[-1])
        out = ops.gemm(a2, b.data).reshape(*lead, b.shape[1])

        def backward(g):
            da, db = ops.gemm_backward(
                g[0].reshape(-1, b.shape[1]),
                a2,
                b.data,
                need_da=a.requires_grad,
                need_db=b.requires_grad,
            )
            return (None if da is None else da.reshape(a.shape), db)

        return record(
            out.astype(np.result_type(a.dtype, b.dtype), copy=False), (a, b), backward, "matmul"
        )
    ad, bd = a.data, b.data

    def backward(g):
        gy = g[0]
        a2 = ad[None, :] if ad.ndim == 1 else ad
        b2 = bd[:, None] if bd.ndim == 1 else bd
        g2 = gy
        if ad.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if bd.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = g2 @ np.swapaxes(b2, -1, -2)
        db = np.swapaxes(a2, -1, -2) @ g2
        if ad.ndim == 1:
            da = da[..., 0, :]
        if bd.ndim == 1:
            db = db[..., 0]
        return unbroadcast(da, ad.shape), unbroadcast(db, bd.shape)

    return record(np.matmul(ad, bd), (a, b), backward, "matmul")
