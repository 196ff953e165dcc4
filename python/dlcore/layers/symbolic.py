"""Symbolic tensors for the functional API, as Keras 3's ``KerasTensor``.

``Input(shape)`` returns a :class:`KerasTensor`: a shape (batch dimension None), a
dtype and where it came from. Calling a layer on KerasTensors builds the layer for
their shapes and records a :class:`Node` — the layer, its symbolic arguments and its
symbolic outputs — instead of computing; ``Model(inputs, outputs)`` walks those nodes
back from the outputs to make the graph it then runs on real data.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KerasTensor", "Node", "flatten", "is_symbolic", "pack_like"]


class KerasTensor:
    """The symbolic output of a layer: ``shape`` (None where unknown, the batch
    dimension always), ``dtype``, ``name``, and ``history`` = (layer, node index,
    output index)."""

    __slots__ = ("dtype", "history", "name", "shape")

    def __init__(self, shape, dtype="float32", name=None, history=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.history = history

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def node(self):
        layer, node_index, _ = self.history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        layer = self.history[0].name if self.history else None
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, from={layer!r}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "a KerasTensor is symbolic: it has no values until the model runs on data. "
            "Build a Model(inputs, outputs) and call it, or use its predict()"
        )

    def _no_arithmetic(self, *args, **kwargs):
        raise TypeError(
            "KerasTensors are combined with layers in dlcore's functional API, e.g. "
            "layers.Add()([a, b]), layers.Multiply()([a, b]), layers.Concatenate()([a, b]); "
            "for other maths write a small Layer subclass"
        )

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _no_arithmetic
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = _no_arithmetic
    __neg__ = __getitem__ = _no_arithmetic

    def __bool__(self):
        raise TypeError("a KerasTensor has no truth value: it is symbolic")


class Node:
    """One call of a layer on symbolic inputs: ``args`` and ``kwargs`` as given (nested
    structures holding KerasTensors), and its ``outputs`` structure."""

    __slots__ = ("args", "kwargs", "layer", "outputs")

    def __init__(self, layer, args, kwargs, outputs):
        self.layer, self.args, self.kwargs, self.outputs = layer, args, kwargs, outputs

    @property
    def input_tensors(self):
        return [t for t in flatten((self.args, self.kwargs)) if isinstance(t, KerasTensor)]

    @property
    def output_tensors(self):
        return flatten(self.outputs)

    @property
    def is_input(self):
        return not self.input_tensors


def _sorted_keys(d):
    """A dict's keys in Keras' order (its ``tree.flatten``): sorted, where they can be."""
    try:
        return sorted(d)
    except TypeError:  # keys of kinds that do not compare
        return list(d)


def flatten(structure):
    """The leaves of nested lists, tuples and dicts; a dict's in the order of its sorted
    keys, as Keras flattens them (so a model's dict outputs, their weights and files line
    up with Keras' whatever order they were written in)."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    if isinstance(structure, dict):
        return [leaf for k in _sorted_keys(structure) for leaf in flatten(structure[k])]
    return [structure]


def pack_like(structure, leaves):
    """``leaves`` (an iterator or list, in :func:`flatten`'s order) put back into the
    shape of ``structure``; a dict keeps its own key order."""
    it = iter(leaves)

    def pack(s):
        if isinstance(s, list):
            return [pack(item) for item in s]
        if isinstance(s, tuple):
            return tuple(pack(item) for item in s)
        if isinstance(s, dict):
            packed = {k: pack(s[k]) for k in _sorted_keys(s)}
            return {k: packed[k] for k in s}
        return next(it)

    return pack(structure)


def is_symbolic(*structures):
    """True when any leaf of the structures is a KerasTensor."""
    return any(isinstance(leaf, KerasTensor) for s in structures for leaf in flatten(s))
