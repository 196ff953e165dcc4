"""Normalisation layers: BatchNormalization, LayerNormalization (fused C++ kernels)."""

from __future__ import annotations

import math
import numbers

import numpy as np

from dlcore import functional as F
from dlcore import initializers, ops, regularizers

from .base import Layer, registry, trains

__all__ = ["BatchNormalization", "LayerNormalization"]


def _number(value, name, owner, low=None, high=None):
    """``value`` as a finite float in [low, high] (either bound may be absent)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (low is None or value >= low) and (high is None or value <= high)):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: {name} must be a finite number {bounds}, got {value!r}")
    return float(value)


def _axis(value, owner, allow_list=False):
    if isinstance(value, (list, tuple)) and allow_list and value:
        return [_axis(v, owner) for v in value]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        what = "an int or a list of ints" if allow_list else "an int"
        raise TypeError(f"{owner}: axis must be {what}, got {value!r}")
    return int(value)


def _check_axes(axes, input_shape, owner):
    """The axes as non-negative positions of input_shape (never the batch axis), each of
    known size; a ValueError naming the shape otherwise."""
    ndim = len(input_shape)
    out = []
    for a in axes if isinstance(axes, list) else [axes]:
        if not -ndim <= a < ndim or a % ndim == 0 or input_shape[a] is None:
            raise ValueError(
                f"{owner}: axis {a} is not a feature axis of known size of inputs of shape "
                f"{tuple(input_shape)} (axis 0 is the batch)"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{owner}: axis {axes} names an axis twice")
    return out


class _AffineNorm(Layer):
    """What both normalisations share: ``center``/``scale`` with beta and gamma,
    their initializers and regularizers."""

    supports_masking = True

    def _affine_options(self, epsilon, center, scale, beta_initializer, gamma_initializer,
                        beta_regularizer, gamma_regularizer):  # fmt: skip
        self.epsilon = _number(epsilon, "epsilon", self.name, low=0)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = None

    def _add_affine(self, shape):
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer,
                                         self.gamma_regularizer)  # fmt: skip
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer,
                                        self.beta_regularizer)  # fmt: skip

    def _check_features(self, inputs):
        if inputs.ndim != len(self.input_shape) or any(
            inputs.shape[a] != self.input_shape[a] for a in self._axes
        ):
            raise ValueError(
                f"{self.name}: expected inputs of shape {self.input_shape} (the sizes of axis "
                f"{self.axis} fixed by the weights), got {inputs.shape}"
            )

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
        }


@registry.register()
class BatchNormalization(_AffineNorm):
    """Normalises each channel of ``axis`` by the batch's mean and variance in training
    and by the moving statistics in inference, then scales by gamma and shifts by beta.

    Training (``fit``, ``train_on_batch``, ``layer(x, training=True)``) also moves the
    statistics toward the batch's: ``moving = moving * momentum + batch * (1 -
    momentum)``, the variance biased. A layer with ``trainable = False`` runs in
    inference mode even in training, as Keras 3's does (frozen: its statistics never
    move). Weights, in Keras' order: gamma, beta (trainable), moving_mean,
    moving_variance (not trainable), each (channels,).

    Input shape: any, with the channel axis of known size. Output shape: the input's.
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if synchronized:
            raise ValueError(
                f"{self.name}: synchronized=True (statistics over the devices of a "
                f"distribution strategy) is not supported; each batch's own are used"
            )
        self.axis = _axis(axis, self.name)
        self.momentum = _number(momentum, "momentum", self.name, low=0, high=1)
        self._affine_options(epsilon, center, scale, beta_initializer, gamma_initializer,
                             beta_regularizer, gamma_regularizer)  # fmt: skip
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        (channel_axis,) = self._axes = _check_axes(self.axis, input_shape, self.name)
        shape = (input_shape[channel_axis],)
        self._add_affine(shape)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer,
                                           trainable=False)  # fmt: skip
        self.moving_variance = self.add_weight("moving_variance", shape,
                                               self.moving_variance_initializer, trainable=False)  # fmt: skip

    def call(self, inputs, training=False, mask=None):
        self._check_features(inputs)
        return F.batch_norm(
            inputs,
            self.moving_mean,
            self.moving_variance,
            self.gamma,
            self.beta,
            training=bool(training) and trains(self),
            momentum=self.momentum,
            epsilon=self.epsilon,
            axis=self._axes[0],
            mask=mask,
        )

    def _inference_fn(self):
        if self._axes[0] != len(self.input_shape) - 1:
            return None  # the channels are moved last by the layer's own call

        def run(x):
            gamma, beta = self.gamma, self.beta
            return ops.batch_norm_inference(
                x, self.moving_mean.data, self.moving_variance.data,
                None if gamma is None else gamma.data, None if beta is None else beta.data,
                epsilon=self.epsilon,
            )  # fmt: skip

        return run

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
        }


@registry.register()
class LayerNormalization(_AffineNorm):
    """Normalises each sample over ``axis`` (an int or a list of axes) by its own mean
    and variance, then scales by gamma and shifts by beta, of the shape of those axes.

    Input shape: any, with the normalised axes of known size. Output shape: the input's.
    """

    def __init__(
        self,
        axis=-1,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.axis = _axis(axis, self.name, allow_list=True)
        self._affine_options(epsilon, center, scale, beta_initializer, gamma_initializer,
                             beta_regularizer, gamma_regularizer)  # fmt: skip

    def build(self, input_shape):
        self._axes = sorted(_check_axes(self.axis, input_shape, self.name))
        self._add_affine(tuple(input_shape[a] for a in self._axes))

    def call(self, inputs):
        self._check_features(inputs)
        return F.layer_norm(inputs, self.gamma, self.beta, axis=self._axes, epsilon=self.epsilon)
