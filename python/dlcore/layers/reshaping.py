"""Reshaping layers: Flatten, Reshape."""

from __future__ import annotations

import math

from .base import Layer, registry

__all__ = ["Flatten", "Reshape"]


@registry.register()
class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], -1)

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
