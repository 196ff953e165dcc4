"""Weight constraints (Keras' MaxNorm, NonNeg, UnitNorm, MinMaxNorm), applied to a
weight after each optimizer update: ``layers.Dense(64, kernel_constraint=MaxNorm(3))``,
the max-norm recipe that goes with dropout. A constraint maps the weight's array to its
constrained values; ``axis`` is the axis its norms are taken over (0: each output unit's
incoming weights of a Dense kernel, as in Keras)."""

from __future__ import annotations

import weakref

import numpy as np

from dlcore.registry import Registry

__all__ = [
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "UnitNorm",
    "apply",
    "attach",
    "deserialize",
    "get",
    "registry",
    "serialize",
]

registry = Registry("constraint")

EPSILON = 1e-7  # Keras' backend epsilon, added to the norms it divides by


class Constraint:
    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _norms(w, axis):
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


@registry.register(aliases=("max_norm",))
class MaxNorm(Constraint):
    """Scales each weight vector (over ``axis``) whose L2 norm exceeds ``max_value`` down
    to that norm."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = float(max_value), axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms)).astype(w.dtype)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@registry.register(aliases=("non_neg",))
class NonNeg(Constraint):
    """Sets negative weights to zero."""

    def __call__(self, w):
        return w * (w >= 0).astype(w.dtype)


@registry.register(aliases=("unit_norm",))
class UnitNorm(Constraint):
    """Scales each weight vector (over ``axis``) to unit L2 norm."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        return w / (EPSILON + _norms(w, self.axis)).astype(w.dtype)

    def get_config(self):
        return {"axis": self.axis}


@registry.register(aliases=("min_max_norm",))
class MinMaxNorm(Constraint):
    """Moves each weight vector's norm into [min_value, max_value], by the fraction
    ``rate`` of the way (1: all of it)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.rate, self.axis = float(rate), axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = (
            self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        )
        return w * (desired / (EPSILON + norms)).astype(w.dtype)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}  # fmt: skip


def get(identifier):
    """A constraint from None, a name ('max_norm', 'non_neg', ...), a config, an instance
    or a callable(array) -> array."""
    if identifier is None:
        return None
    return registry.get(identifier, base=Constraint)


def serialize(constraint):
    return None if constraint is None else registry.serialize(constraint)


def deserialize(config, custom_objects=None):
    """The object of a config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)


# The constraints attached to weights: id -> (a weak reference to the weight, constraint).
_attached = {}


def attach(weight, constraint):
    """Makes the optimizers apply ``constraint`` to ``weight`` after each update."""
    key = id(weight)
    _attached[key] = (weakref.ref(weight, lambda _, key=key: _attached.pop(key, None)), constraint)


def apply(weights):
    """Applies the attached constraints to ``weights`` (Tensors), in place."""
    if not _attached:
        return
    for w in weights:
        entry = _attached.get(id(w))
        if entry is not None and entry[0]() is w:
            w.data[...] = entry[1](w.data)
