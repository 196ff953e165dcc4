"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, and the channels-last
image ones: UpSampling2D, ZeroPadding2D, Cropping2D."""

from __future__ import annotations

import math

from dlcore import functional as F
from dlcore.functional.image import INTERPOLATIONS
from dlcore.functional.window import int_tuple

from .base import Layer, positive_int, registry

__all__ = [
    "Cropping2D",
    "Flatten",
    "Permute",
    "RepeatVector",
    "Reshape",
    "UpSampling2D",
    "ZeroPadding2D",
]


@registry.register()
class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"Flatten: dlcore is channels-last; data_format={data_format!r} is not supported"
            )

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], -1)

    def _inference_fn(self):
        return lambda x: x.reshape(x.shape[0], -1)

    def _training_fn(self, activate=True):
        def step(x, need_dx, trained):
            shape = x.shape
            return x.reshape(shape[0], -1), lambda g: g.reshape(shape) if need_dx else None

        return step

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(math.prod(rest)))


@registry.register()
class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = _target_shape(target_shape, self.name)

    def call(self, inputs):
        size = math.prod(inputs.shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if size % known if -1 in self.target_shape else size != known:
            raise ValueError(
                f"{self.name}: cannot reshape samples of shape {inputs.shape[1:]} ({size} "
                f"values) to {self.target_shape}"
            )
        return inputs.reshape(inputs.shape[0], *self.target_shape)

    def compute_output_shape(self, input_shape):
        shape = list(self.target_shape)
        if -1 in shape and None not in input_shape[1:]:
            known = math.prod(d for d in shape if d != -1)
            shape[shape.index(-1)] = math.prod(input_shape[1:]) // known
        return (input_shape[0], *shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


def _target_shape(value, owner):
    dims = (value,) if isinstance(value, int) else value
    try:
        dims = tuple(dims)
    except TypeError:
        dims = None
    ok = dims is not None and all(
        isinstance(d, int) and not isinstance(d, bool) and (d >= 1 or d == -1) for d in dims
    )
    if not ok or dims.count(-1) > 1:
        raise ValueError(
            f"{owner}: target_shape must be a tuple of positive ints with at most one -1, "
            f"got {value!r}"
        )
    return dims


@registry.register()
class Permute(Layer):
    """Permutes the axes after the batch: ``dims`` (1-based, as Keras) is a permutation
    of 1..rank, e.g. ``Permute((2, 1))`` swaps the two axes of (batch, T, F)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(dims)
        except TypeError:
            dims = None
        if dims is None or sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(
                f"Permute: dims must be a permutation of 1..rank (axis 0 is the batch), "
                f"got {dims!r}"
            )
        self.dims = tuple(int(d) for d in dims)

    def build(self, input_shape):
        _check_rank(self, input_shape, len(self.dims) + 1, f"rank {len(self.dims) + 1}")

    def call(self, inputs):
        _check_rank(self, inputs.shape, len(self.dims) + 1, f"rank {len(self.dims) + 1}")
        return F.transpose(inputs, (0, *self.dims))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


@registry.register()
class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated n times."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"RepeatVector: n must be an int, got {n!r}")
        self.n = positive_int(n, "n", "RepeatVector")

    def build(self, input_shape):
        _check_rank(self, input_shape, 2, "(batch, features)")

    def call(self, inputs):
        _check_rank(self, inputs.shape, 2, "(batch, features)")
        return F.repeat(inputs.reshape(inputs.shape[0], 1, inputs.shape[1]), self.n, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class _Image2D(Layer):
    """A channels-last (batch, rows, cols, channels) reshaping layer."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"{type(self).__name__}: dlcore is channels-last; data_format="
                f"{data_format!r} is not supported"
            )

    def build(self, input_shape):
        _check_rank(self, input_shape, 4, "(batch, rows, cols, channels)")

    def _checked(self, inputs):
        _check_rank(self, inputs.shape, 4, "(batch, rows, cols, channels)")
        return inputs

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


@registry.register()
class UpSampling2D(_Image2D):
    """Repeats rows ``size[0]`` times and columns ``size[1]`` times (``'nearest'``), or
    interpolates between pixel centres (``'bilinear'``)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format, **kwargs)
        self.size = int_tuple(size, 2, "size", "UpSampling2D")
        mode = interpolation.lower() if isinstance(interpolation, str) else None
        if mode not in INTERPOLATIONS:
            raise ValueError(
                f"UpSampling2D: interpolation must be one of "
                f"{', '.join(map(repr, INTERPOLATIONS))}, got {interpolation!r}"
            )
        self.interpolation = mode

    def call(self, inputs):
        return F.upsample2d(self._checked(inputs), self.size, self.interpolation)

    def compute_output_shape(self, input_shape):
        rows, cols = (None if n is None else n * k for n, k in zip(input_shape[1:3], self.size))
        return (input_shape[0], rows, cols, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size),
                "interpolation": self.interpolation}  # fmt: skip


def _two_pairs(value, name, owner):
    """Keras' ((top, bottom), (left, right)) from an int, a pair of ints (symmetric) or a
    pair of pairs; every size >= 0."""
    try:
        pairs = (value, value) if isinstance(value, int) else tuple(value)
        if len(pairs) != 2:
            raise ValueError
        return tuple(int_tuple(p, 2, name, owner, minimum=0) for p in pairs)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: {name} must be an int, a tuple of 2 ints or a tuple of 2 tuples of "
            f"2 ints ((top, bottom), (left, right)), each >= 0; got {value!r}"
        ) from None


@registry.register()
class ZeroPadding2D(_Image2D):
    """Adds rows and columns of zeros: ``padding`` is an int, (rows, cols) or
    ((top, bottom), (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.padding = _two_pairs(padding, "padding", "ZeroPadding2D")

    def call(self, inputs):
        return F.pad(self._checked(inputs), ((0, 0), *self.padding, (0, 0)))

    def compute_output_shape(self, input_shape):
        rows, cols = (None if n is None else n + sum(p)
                      for n, p in zip(input_shape[1:3], self.padding))  # fmt: skip
        return (input_shape[0], rows, cols, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding]}


@registry.register()
class Cropping2D(_Image2D):
    """Removes rows and columns at the edges: ``cropping`` is an int, (rows, cols) or
    ((top, bottom), (left, right)); at least one row and column must remain."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.cropping = _two_pairs(cropping, "cropping", "Cropping2D")

    def build(self, input_shape):
        _check_rank(self, input_shape, 4, "(batch, rows, cols, channels)")
        self._check_size(input_shape)  # before the base build records the output's shape
        super().build(input_shape)

    def _check_size(self, shape):
        for n, (a, b), what in zip(shape[1:3], self.cropping, ("rows", "cols")):
            if n is not None and a + b >= n:
                raise ValueError(
                    f"{self.name}: cropping {self.cropping} leaves no {what} of inputs of "
                    f"shape {tuple(shape)}"
                )

    def call(self, inputs):
        self._check_size(self._checked(inputs).shape)
        (top, bottom), (left, right) = self.cropping
        _, H, W, _ = inputs.shape
        return inputs[:, top : H - bottom, left : W - right, :]

    def compute_output_shape(self, input_shape):
        self._check_size(input_shape)
        rows, cols = (None if n is None else n - sum(c)
                      for n, c in zip(input_shape[1:3], self.cropping))  # fmt: skip
        return (input_shape[0], rows, cols, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping]}


def _check_rank(layer, shape, rank, form):
    if len(shape) != rank:
        raise ValueError(
            f"{layer.name}: {type(layer).__name__} needs inputs {form}, got shape {tuple(shape)}"
        )
