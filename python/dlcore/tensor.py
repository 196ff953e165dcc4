"""Reverse-mode automatic differentiation over NumPy arrays: the Tensor and the engine.

A :class:`Tensor` wraps an array. Every operation on tensors that need gradients
records a :class:`Node` through :func:`record`: the inputs and a function from the
gradients of the node's outputs to the gradients of its inputs. ``backward()`` sorts
the recorded graph topologically (iteratively, so deep graphs have no recursion limit)
and sweeps it in reverse; gradients accumulate on the leaves' ``.grad`` until cleared.
The engine owns every gradient buffer it writes: an array passed to ``backward`` is
never kept or modified.

The operations themselves live in :mod:`dlcore.functional`, one implementation each,
which also gives the Tensor its operators and methods (``+``, ``@``, ``.sum()``,
``.reshape()``, ``.relu()``, ...): see ``dlcore/functional/methods.py``.
"""

from __future__ import annotations

import threading
from contextlib import ContextDecorator

import numpy as np

from dlcore import _core

__all__ = ["Node", "Tensor", "as_tensor", "enable_grad", "is_grad_enabled", "no_grad", "record"]

_state = threading.local()


def is_grad_enabled():
    """False inside ``no_grad()`` (per thread)."""
    return getattr(_state, "grad_enabled", True)


class _grad_mode(ContextDecorator):
    """Sets whether operations record a graph, in this thread, until the block ends
    (a class rather than a generator: predict and the optimizers enter one every step)."""

    def __init__(self, enabled):
        self.enabled = enabled
        # the modes to restore, a stack per thread: one instance may be entered again
        # inside its own block, or by several threads at once
        self._before = {}

    def __enter__(self):
        self._before.setdefault(threading.get_ident(), []).append(is_grad_enabled())
        _state.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        thread = threading.get_ident()
        stack = self._before[thread]
        _state.grad_enabled = stack.pop()
        if not stack:
            del self._before[thread]
        return False

    def _recreate_cm(self):  # each decorated call gets its own
        return _grad_mode(self.enabled)


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


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Args:
        data: array_like. NumPy arrays keep their dtype; Python numbers and lists of
            floats become float32 (the default dtype), of ints int64.
        requires_grad: record operations on this tensor so ``backward()`` can
            compute its gradient into ``.grad``. Needs a floating-point dtype.
        dtype: convert the data to this dtype first.
    """

    __slots__ = ("__weakref__", "_index", "_node", "data", "grad", "name", "requires_grad")
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
        self.name = None

    @classmethod
    def _of(cls, array):
        """A Tensor of an array an op just made (no conversion, no checks): the engine's
        fast path for every op's output."""
        t = object.__new__(cls)
        t.data, t.grad, t.requires_grad, t._node, t._index, t.name = (
            array,
            None,
            False,
            None,
            0,
            None,
        )
        return t

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

    # Keras 3's Variable face, for weights and metric state written against it
    @property
    def value(self):
        return self

    @property
    def path(self):
        return self.name

    def assign(self, value):
        """Sets the values in place (the weight keeps its identity: an optimizer's state
        for it stays); ``value`` of this shape, or one that broadcasts to it."""
        new = np.asarray(value.data if isinstance(value, Tensor) else value)
        try:
            self.data[...] = new
        except ValueError:
            raise ValueError(
                f"assign: a value of shape {new.shape} for {self.name or 'a Tensor'} of "
                f"shape {self.data.shape}; expected that shape (or one that broadcasts)"
            ) from None
        return self

    def assign_add(self, delta):
        return self.assign(
            self.data + np.asarray(delta.data if isinstance(delta, Tensor) else delta)
        )

    def assign_sub(self, delta):
        return self.assign(
            self.data - np.asarray(delta.data if isinstance(delta, Tensor) else delta)
        )

    def __array__(self, dtype=None, copy=None):
        data = self.data
        if type(data) is not np.ndarray:  # a reduction's NumPy scalar: NumPy wants an array
            data = np.asarray(data)
        if dtype is not None and dtype != data.dtype:
            return data.astype(dtype)
        return data.copy() if copy else data

    def __len__(self):
        return len(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def __bool__(self):
        return bool(self.data)

    __hash__ = object.__hash__  # == is elementwise (functional), identity hashes

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
        # ids of arrays a leaf must not adopt: the caller's grad (an op's backward may
        # hand it straight through) and every array already given to a leaf or a slot
        handed_out = {id(grad)}
        root = self._node
        pending = {root: [None] * root.n_outputs}  # node -> gradients of its outputs
        pending[root][self._index] = grad
        for node in reversed(_topological_order(root)):
            out_grads = pending.pop(node, None)
            if out_grads is None:
                continue
            for t, g in zip(node.inputs, node.backward(out_grads)):
                if g is None or not t.requires_grad:
                    continue
                key = id(g)
                owned = key not in handed_out
                handed_out.add(key)
                producer = t._node
                if producer is None:
                    _accumulate_leaf(t, g, owned)
                    continue
                slot = pending.get(producer)
                if slot is None:
                    slot = pending[producer] = [None] * producer.n_outputs
                prev = slot[t._index]
                slot[t._index] = g if prev is None else prev + g


# ---------------------------------------------------------------- engine helpers


def _owns_memory(a):
    """True when a's memory is its own: NumPy's, or a block the kernels' array cache lent
    it (its base is then the _ArrayBlock that gives the block back)."""
    return a.flags.owndata or isinstance(a.base, _core._ArrayBlock)


def _accumulate_leaf(t, g, owned):
    """Adds g to t.grad. A fresh array nobody else holds (owned, owning its memory,
    writeable, of t's dtype) becomes t.grad itself instead of being copied."""
    if g.shape != t.data.shape:
        g = np.broadcast_to(g, t.data.shape)
    if t.grad is None:
        take = (
            owned
            and g.dtype == t.data.dtype
            and _owns_memory(g)
            and g.flags.writeable
            and g.flags.c_contiguous
        )
        t.grad = g if take else np.array(g, dtype=t.data.dtype, copy=True)
    else:
        t.grad += g


def _topological_order(root):
    """Nodes reachable from root, every node after the nodes it consumes."""
    order, seen = [], {root}
    stack = [(root, iter(root.inputs))]
    while stack:
        node, inputs = stack[-1]
        for t in inputs:
            child = t._node
            if child is not None and child not in seen:
                seen.add(child)
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


def as_tensor(x):
    """x as a Tensor (a constant unless it already is one)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def record(outputs, inputs, backward, name="", tensor_type=None):
    """Makes the output array(s) of an operation into Tensors, recording a Node when
    gradients are enabled and some input requires them.

    outputs: an array, or a tuple of arrays for a multi-output operation.
    backward(output_grads) -> input_grads, where output_grads is a list with one entry
    per output (None for an output no gradient reached) and input_grads has one entry
    per input.
    tensor_type: a Tensor subclass to make the outputs of (default Tensor).
    """
    cls = tensor_type or Tensor
    multi = type(outputs) is tuple
    tensors = tuple(cls._of(a) for a in outputs) if multi else (cls._of(outputs),)
    if not getattr(_state, "grad_enabled", True):
        return tensors if multi else tensors[0]
    for t in inputs:
        if t.requires_grad:
            break
    else:
        return tensors if multi else tensors[0]
    node = Node(tuple(inputs), backward, len(tensors), name)
    for i, t in enumerate(tensors):
        if t.data.dtype.kind == "f":
            t.requires_grad = True
            t._node = node
            t._index = i
    return tensors if multi else tensors[0]
