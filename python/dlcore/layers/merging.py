"""Merging layers: combine a list of tensors into one (Keras' ``Add``, ``Concatenate``,
``Dot``, ...), and their functional forms (``layers.add([a, b])``)."""

from __future__ import annotations

import functools

from dlcore import functional as F

from .base import Layer, registry

__all__ = [
    "Add",
    "Average",
    "Concatenate",
    "Dot",
    "Maximum",
    "Minimum",
    "Multiply",
    "Subtract",
    "add",
    "average",
    "concatenate",
    "dot",
    "maximum",
    "minimum",
    "multiply",
    "subtract",
]


def _check_list(layer, input_shape, exactly=None):
    if not isinstance(input_shape, list) or len(input_shape) < 2:
        raise ValueError(
            f"{layer.name}: a {type(layer).__name__} layer takes a list of at least 2 "
            f"tensors, got {input_shape!r}"
        )
    if exactly is not None and len(input_shape) != exactly:
        raise ValueError(
            f"{layer.name}: a {type(layer).__name__} layer takes exactly {exactly} tensors, "
            f"got {len(input_shape)}"
        )


class _Merge(Layer):
    """An element-wise merge: the inputs must have one shape (batch and size-1
    dimensions may broadcast)."""

    _exactly = None

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape, self._exactly)
        return _broadcast_shapes(self, input_shape)

    def call(self, inputs):
        return functools.reduce(self._op, inputs[1:], inputs[0])


def _broadcast_shapes(layer, shapes):
    ranks = {len(s) for s in shapes}
    if len(ranks) != 1:
        raise ValueError(
            f"{layer.name}: inputs of a {type(layer).__name__} layer must have the same "
            f"rank, got shapes {shapes}"
        )
    out = []
    for dims in zip(*shapes):
        sizes = {d for d in dims if d is not None and d != 1}
        if len(sizes) > 1:
            raise ValueError(
                f"{layer.name}: inputs of a {type(layer).__name__} layer must have the same "
                f"shape, got shapes {shapes}"
            )
        out.append(sizes.pop() if sizes else (None if None in dims else 1))
    return tuple(out)


@registry.register()
class Add(_Merge):
    """The sum of the inputs."""

    _op = staticmethod(F.add)


@registry.register()
class Subtract(_Merge):
    """inputs[0] - inputs[1]."""

    _op = staticmethod(F.sub)
    _exactly = 2


@registry.register()
class Multiply(_Merge):
    """The element-wise product of the inputs."""

    _op = staticmethod(F.mul)


@registry.register()
class Maximum(_Merge):
    _op = staticmethod(F.maximum)


@registry.register()
class Minimum(_Merge):
    _op = staticmethod(F.minimum)


@registry.register()
class Average(_Merge):
    """The mean of the inputs."""

    _op = staticmethod(F.add)

    def call(self, inputs):
        return super().call(inputs) * (1.0 / len(inputs))


@registry.register()
class Concatenate(Layer):
    """Joins the inputs along ``axis`` (the other dimensions must match)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise ValueError(f"{self.name}: axis must be an int, got {axis!r}")
        self.axis = axis

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape)
        ranks = {len(s) for s in input_shape}
        if len(ranks) != 1 or not -len(input_shape[0]) <= self.axis < len(input_shape[0]):
            raise ValueError(
                f"{self.name}: Concatenate(axis={self.axis}) needs inputs of one rank with "
                f"that axis, got shapes {input_shape}"
            )
        axis = self.axis % len(input_shape[0])
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            for i, (a, b) in enumerate(zip(out, shape)):
                if i == axis:
                    out[i] = None if a is None or b is None else a + b
                elif a is not None and b is not None and a != b:
                    raise ValueError(
                        f"{self.name}: Concatenate(axis={self.axis}) needs the other "
                        f"dimensions to match, got shapes {input_shape}"
                    )
                elif a is None:
                    out[i] = b
        return tuple(out)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, inputs):
        return F.concatenate(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@registry.register()
class Dot(Layer):
    """The dot product of two tensors along ``axes`` (an int for both, or a pair), per
    sample; with ``normalize`` the inputs are L2-normalised first (cosine similarity)."""

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = (axes, axes) if isinstance(axes, int) else tuple(axes)
        if len(pair) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in pair):
            raise ValueError(f"{self.name}: axes must be an int or a pair of ints, got {axes!r}")
        self.axes, self.normalize = axes, bool(normalize)

    def _axes(self, input_shape):
        pair = (self.axes, self.axes) if isinstance(self.axes, int) else tuple(self.axes)
        return tuple(a % len(s) for a, s in zip(pair, input_shape))

    def compute_output_shape(self, input_shape):
        _check_list(self, input_shape, 2)
        a, b = input_shape
        ia, ib = self._axes(input_shape)
        if 0 in (ia, ib):
            raise ValueError(f"{self.name}: Dot cannot reduce the batch axis")
        if a[ia] is not None and b[ib] is not None and a[ia] != b[ib]:
            raise ValueError(
                f"{self.name}: Dot needs dimension {ia} of {a} to equal dimension {ib} of {b}"
            )
        out = [d for i, d in enumerate(a) if i != ia] + [
            d for i, d in enumerate(b) if i not in (0, ib)
        ]
        return tuple(out) if len(out) > 1 else (out[0], 1)

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, inputs):
        a, b = inputs
        ia, ib = self._axes([a.shape, b.shape])
        if self.normalize:
            a, b = _l2_normalize(a, ia), _l2_normalize(b, ib)
        # Move the contracted axis last in a and first (after the batch) in b, then one
        # batched matrix product over the flattened remaining axes.
        rest_a = [i for i in range(1, a.ndim) if i != ia]
        rest_b = [i for i in range(1, b.ndim) if i != ib]
        n = a.shape[0]
        a2 = F.transpose(a, (0, *rest_a, ia)).reshape(n, -1, a.shape[ia])
        b2 = F.transpose(b, (0, ib, *rest_b)).reshape(n, b.shape[ib], -1)
        out = F.matmul(a2, b2)
        shape = [a.shape[i] for i in rest_a] + [b.shape[i] for i in rest_b]
        return out.reshape(n, *shape) if shape else out.reshape(n, 1)

    def get_config(self):
        axes = list(self.axes) if isinstance(self.axes, (list, tuple)) else self.axes
        return {**super().get_config(), "axes": axes, "normalize": self.normalize}


def _l2_normalize(x, axis):
    norm = F.sqrt(F.maximum(F.sum(x * x, axis=axis, keepdims=True), 1e-12))
    return x / norm


def _functional_form(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = f"``{cls.__name__}(**kwargs)(inputs)``."
    return merge


add = _functional_form(Add)
subtract = _functional_form(Subtract)
multiply = _functional_form(Multiply)
average = _functional_form(Average)
maximum = _functional_form(Maximum)
minimum = _functional_form(Minimum)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """``Dot(axes, normalize, **kwargs)(inputs)``."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
