"""Regularization layers, active in training only: Dropout."""

from __future__ import annotations

from dlcore import functional as F

from .base import Layer, registry

__all__ = ["Dropout"]


@registry.register()
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs in training (scaling the rest by
    1 / (1 - rate)); the identity in inference."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=False):
        return F.dropout(inputs, self.rate, training=training, noise_shape=self.noise_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }
