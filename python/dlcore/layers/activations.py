"""Activation layers: LeakyReLU."""

from __future__ import annotations

from dlcore import functional as F

from .base import Layer, registry

__all__ = ["LeakyReLU"]


@registry.register()
class LeakyReLU(Layer):
    """x for x > 0, negative_slope * x otherwise (Keras' default slope 0.3)."""

    supports_masking = True

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope if alpha is None else alpha)

    def call(self, inputs, training=False):
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
