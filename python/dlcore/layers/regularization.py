"""Regularization layers, active in training only: Dropout."""

from __future__ import annotations

import math
import numbers

import numpy as np

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
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
            raise TypeError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        if not (math.isfinite(rate) and 0 <= rate < 1):
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        if noise_shape is not None:
            try:
                noise_shape = tuple(noise_shape)
            except TypeError:
                noise_shape = (noise_shape,)
            if not all(d is None or (isinstance(d, int) and d >= 1) for d in noise_shape):
                raise ValueError(
                    f"Dropout: noise_shape must be a tuple of positive ints or None, got "
                    f"{noise_shape!r}"
                )
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"Dropout: seed must be an int or None, got {seed!r}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        # a seeded layer draws its own sequence of masks, as Keras' seeded Dropout
        self._rng = None if seed is None else np.random.default_rng(seed)

    def call(self, inputs, training=False):
        return F.dropout(inputs, self.rate, training=training, noise_shape=self.noise_shape,
                         seed=self._rng)  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }
