"""Activation layers: ReLU, LeakyReLU, ELU, PReLU, Softmax."""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlcore import functional as F
from dlcore import initializers, regularizers

from .base import Layer, registry

__all__ = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]


def _real(value, name, owner, allow_none=False, low=None):
    """``value`` as a finite float (>= low where given), or None where allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    if not math.isfinite(value) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ValueError(f"{owner}: {name} must be a finite number{bound}, got {value!r}")
    return float(value)


@registry.register()
class ReLU(Layer):
    """Keras' ReLU: x above ``threshold`` (clipped to ``max_value`` when given), and
    ``negative_slope * (x - threshold)`` below it; all three >= 0."""

    supports_masking = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _real(max_value, "max_value", "ReLU", allow_none=True, low=0)
        self.negative_slope = _real(negative_slope, "negative_slope", "ReLU", low=0)
        self.threshold = _real(threshold, "threshold", "ReLU", low=0)

    def call(self, inputs):
        return F.relu(inputs, negative_slope=self.negative_slope, max_value=self.max_value,
                      threshold=self.threshold)  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }


@registry.register()
class ELU(Layer):
    """x for x > 0, alpha (e^x - 1) otherwise."""

    supports_masking = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _real(alpha, "alpha", "ELU")

    def call(self, inputs):
        return F.elu(inputs, alpha=self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@registry.register()
class PReLU(Layer):
    """x for x > 0, alpha * x otherwise, with a learned ``alpha`` of the input's
    per-sample shape (size 1 along each of ``shared_axes``), zeros by default.

    Input shape: (batch, ...), sizes known. Output shape: the input's.
    """

    supports_masking = True

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, shared_axes=None,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is not None:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in axes):
                raise ValueError(
                    f"PReLU: shared_axes must be axes >= 1 (axis 0 is the batch), got "
                    f"{shared_axes!r}"
                )
            shared_axes = axes
        self.shared_axes = shared_axes
        self.alpha = None

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or []:
            if a > len(shape):
                raise ValueError(
                    f"{self.name}: shared axis {a} is not an axis of inputs of shape "
                    f"{tuple(input_shape)}"
                )
            shape[a - 1] = 1
        if None in shape:
            raise ValueError(
                f"{self.name}: PReLU needs the sizes of the axes it does not share; got inputs "
                f"of shape {tuple(input_shape)} (share the unknown axes with shared_axes)"
            )
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer,
                                     self.alpha_regularizer)  # fmt: skip

    def call(self, inputs):
        expected = self.alpha.shape
        if inputs.ndim != len(expected) + 1 or any(
            a != 1 and a != n for a, n in zip(expected, inputs.shape[1:])
        ):
            raise ValueError(
                f"{self.name}: expected inputs of shape {self.input_shape}, got {inputs.shape}"
            )
        return F.prelu(inputs, self.alpha)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "shared_axes": self.shared_axes,
        }


_LARGE_NEGATIVE = -1e9  # a masked position's logit, as Keras' Softmax sets it


@registry.register()
class Softmax(Layer):
    """Softmax over ``axis`` (an int, or a list of axes normalised together). A mask
    (True: keep; broadcast against the inputs from the right) gives the masked positions
    probability 0, as Keras' does."""

    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        items = axis if isinstance(axis, (list, tuple)) else [axis]
        if not items or not all(isinstance(a, int) and not isinstance(a, bool) for a in items):
            raise TypeError(f"Softmax: axis must be an int or a list of ints, got {axis!r}")
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else axis

    def call(self, inputs, mask=None):
        axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        for a in axis if isinstance(axis, tuple) else (axis,):
            if not -inputs.ndim <= a < inputs.ndim:
                raise ValueError(
                    f"{self.name}: axis {a} is out of range for inputs of shape {inputs.shape}"
                )
        if mask is None:
            return F.softmax(inputs, axis=axis)
        keep = self._keep(np.asarray(mask), inputs.shape).astype(inputs.dtype)
        out = F.softmax(inputs * keep + (keep - 1) * -_LARGE_NEGATIVE, axis=axis)
        return out * keep

    def _keep(self, mask, shape):
        ok = mask.ndim <= len(shape) and all(
            m in (1, n) for m, n in zip(mask.shape[::-1], shape[::-1])
        )
        if not ok:
            raise ValueError(
                f"{self.name}: the mask of shape {mask.shape} does not broadcast against inputs "
                f"of shape {shape} (each mask dimension 1 or the input's, from the right)"
            )
        return mask > 0.5 if mask.dtype != bool else mask

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@registry.register()
class LeakyReLU(Layer):
    """x for x > 0, negative_slope * x otherwise (Keras' default slope 0.3)."""

    supports_masking = True

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        slope = negative_slope if alpha is None else alpha
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real):
            raise TypeError(f"LeakyReLU: negative_slope must be a number >= 0, got {slope!r}")
        if not (math.isfinite(slope) and slope >= 0):  # Keras refuses a negative slope too
            raise ValueError(f"LeakyReLU: negative_slope must be a number >= 0, got {slope!r}")
        self.negative_slope = float(slope)

    def call(self, inputs, training=False):
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
