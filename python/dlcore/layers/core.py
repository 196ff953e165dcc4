"""Core layers: Dense, Activation, Masking, and the Input declaration."""

from __future__ import annotations

import numpy as np

from dlcore import activations
from dlcore import functional as F

from .base import (
    InputLayer,
    Layer,
    kernel_bias_config,
    kernel_bias_options,
    positive_int,
    registry,
)

__all__ = ["Activation", "Dense", "Input", "Masking"]


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """A symbolic input tensor, the start of a functional model (Keras' ``keras.Input``):
    ``x = Input(shape=(28, 28, 1)); y = layers.Dense(10)(layers.Flatten()(x));
    model = Model(inputs=x, outputs=y)``. It also opens a Sequential model."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                       batch_shape=batch_shape)  # fmt: skip
    return layer.output


@registry.register()
class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis.

    Input shape: (batch, ..., input_dim). Output shape: (batch, ..., units).
    """

    supports_masking = True

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units", "Dense")
        kernel_bias_options(
            self,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
        )

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: Dense needs inputs (batch, ..., features) with a "
                f"known last dimension, got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            "kernel",
            (input_shape[-1], self.units),
            self.kernel_initializer,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.units,), self.bias_initializer, self.bias_regularizer
            )

    def call(self, inputs, training=False):
        if inputs.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"{self.name}: expected inputs with {self.kernel.shape[0]} "
                f"features on the last axis, got shape {inputs.shape}"
            )
        return self.activation(F.linear(inputs, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, **kernel_bias_config(self)}


@registry.register()
class Masking(Layer):
    """Masks the steps of a sequence whose features all equal ``mask_value``: they are
    set to zero, and the layers after it that take a mask (LSTM, GRU, SimpleRNN,
    Bidirectional, ...) skip them.

    Input shape: (batch, timesteps, features). Output: the same, with the mask
    (batch, timesteps), True where a step has a feature other than ``mask_value``.
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value

    def _keep(self, inputs):
        return np.any(inputs.data != self.mask_value, axis=-1)

    def call(self, inputs):
        return inputs * self._keep(inputs)[..., None].astype(inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return self._keep(inputs)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


@registry.register()
class Activation(Layer):
    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs, training=False):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}
