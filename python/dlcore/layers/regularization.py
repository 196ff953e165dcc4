"""Regularization layers, active in training only: Dropout, SpatialDropout2D,
GaussianNoise."""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlcore import functional as F
from dlcore.functional.regularization import check_dropout_rate, dropout_mask

from .base import Layer, registry

__all__ = ["Dropout", "GaussianNoise", "SpatialDropout2D"]


@registry.register()
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs in training (scaling the rest by
    1 / (1 - rate)); the identity in inference."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        rate = _rate(rate, "rate", "Dropout")
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
        self.rate, self.noise_shape = rate, noise_shape
        self.seed, self._rng = _seeded(seed, "Dropout")

    def call(self, inputs, training=False):
        return F.dropout(inputs, self.rate, training=training, noise_shape=self.noise_shape,
                         seed=self._rng)  # fmt: skip

    def _inference_fn(self):
        return lambda x: x  # identity outside training

    def _training_fn(self, activate=True):
        def step(x, need_dx, trained):
            check_dropout_rate(self.rate)
            if self.rate == 0:
                return x, lambda g: g if need_dx else None
            mask = dropout_mask(x.shape, x.dtype, self.rate, self.noise_shape, self._rng)
            return x * mask, lambda g: g * mask if need_dx else None

        return step

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }


def _rate(value, arg, owner):
    """A dropout rate as a float in [0, 1); a TypeError or ValueError naming ``arg``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {arg} must be a number in [0, 1), got {value!r}")
    if not (math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"{owner}: {arg} must be in [0, 1), got {value!r}")
    return float(value)


def _seeded(seed, owner):
    """(seed, its generator): a seeded layer draws its own sequence of random numbers,
    as Keras' seeded layers do; None draws from dlcore's generator."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"{owner}: seed must be an int or None, got {seed!r}")
    return seed, None if seed is None else np.random.default_rng(seed)


@registry.register()
class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training, each channel of each sample of
    (batch, rows, cols, channels) is zeroed with probability ``rate`` (the rest scaled by
    1 / (1 - rate)), the same for every pixel."""

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"SpatialDropout2D: dlcore is channels-last; data_format={data_format!r} is "
                f"not supported"
            )
        super().__init__(rate, seed=seed, **kwargs)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.name}: SpatialDropout2D needs inputs (batch, rows, cols, channels), "
                f"got shape {tuple(input_shape)}"
            )

    def call(self, inputs, training=False):
        N, _, _, C = inputs.shape
        return F.dropout(inputs, self.rate, training=training, noise_shape=(N, 1, 1, C),
                         seed=self._rng)  # fmt: skip

    def get_config(self):
        # Keras' own keys: its SpatialDropout2D takes no trainable or noise_shape
        config = super().get_config()
        keep = ("name", "dtype", "rate", "seed", "input_shape")
        return {**{k: config[k] for k in keep if k in config}, "data_format": "channels_last"}


@registry.register()
class GaussianNoise(Layer):
    """Adds zero-mean normal noise of standard deviation ``stddev`` (in [0, 1], as Keras
    takes it) in training; the identity in inference."""

    supports_masking = True

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, numbers.Real):
            raise TypeError(f"GaussianNoise: stddev must be a number in [0, 1], got {stddev!r}")
        if not 0 <= stddev <= 1:
            raise ValueError(f"GaussianNoise: stddev must be in [0, 1], got {stddev!r}")
        self.stddev = float(stddev)
        self.seed, self._rng = _seeded(seed, "GaussianNoise")

    def call(self, inputs, training=False):
        return F.gaussian_noise(inputs, self.stddev, training=training, seed=self._rng)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
