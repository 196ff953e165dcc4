"""Core layers: Dense, Activation, Embedding, Masking, and the Input declaration."""

from __future__ import annotations

import warnings

import numpy as np

from dlcore import activations, initializers, ops, regularizers
from dlcore import functional as F
from dlcore.functional.embedding import embedding_indices
from dlcore.functional.linalg import linear_backward_data, linear_data

from .base import (
    InputLayer,
    Layer,
    activate_data,
    kernel_bias_back,
    kernel_bias_config,
    kernel_bias_options,
    positive_int,
    registry,
)

__all__ = ["Activation", "Dense", "Embedding", "Input", "Masking"]


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

    def _inference_fn(self):
        def run(x):
            bias = self.bias
            y = linear_data(x, self.kernel.data, None if bias is None else bias.data)
            return activate_data(self.activation, y)

        return run

    def _training_fn(self, activate=True):
        activation = self.activation if activate else activations.linear
        relu = activation is activations.relu
        if not relu and activation is not activations.linear:
            return None

        def step(x, need_dx, trained):
            kernel, bias = self.kernel, self.bias
            z = linear_data(x, kernel.data, None if bias is None else bias.data)
            y = ops.relu(z) if relu else z

            def grads(g, need_dk, need_db):
                if relu:
                    g = ops.relu_backward(g, y)
                return linear_backward_data(g, x, kernel.data, need_dx, need_dk, need_db)

            return y, kernel_bias_back(kernel, bias, trained, need_dx, grads)

        return step

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

    def _inference_fn(self):
        return lambda x: activate_data(self.activation, x)

    def _training_fn(self, activate=True):
        activation = self.activation if activate else activations.linear
        if activation is activations.linear:
            return lambda x, need_dx, trained: (x, lambda g: g if need_dx else None)
        if activation is not activations.relu:
            return None

        def step(x, need_dx, trained):
            y = ops.relu(x)
            return y, lambda g: ops.relu_backward(g, y) if need_dx else None

        return step

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@registry.register()
class Embedding(Layer):
    """Turns integer indices in [0, input_dim) into rows of a learned (input_dim,
    output_dim) table, ``embeddings``.

    Inputs are integers (floats holding whole numbers are cast, as Keras does); an index
    out of range is a ValueError naming it and its position. With ``mask_zero=True``,
    index 0 is padding: the output carries the mask ``inputs != 0`` to the layers after
    it that take one (a recurrent layer skips those steps).

    Input shape: (batch, ...) integers. Output shape: (batch, ..., output_dim).
    """

    casts_inputs = False  # indices stay integers

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        mask_zero=False,
        weights=None,
        input_length=None,
        **kwargs,
    ):
        if input_length is not None:
            warnings.warn(
                "Embedding: input_length is deprecated in Keras 3; dlcore takes it as the "
                "input_shape (input_length,)",
                DeprecationWarning,
                stacklevel=2,
            )
            if "input_shape" not in kwargs:
                kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        self.input_dim = positive_int(input_dim, "input_dim", self.name)
        self.output_dim = positive_int(output_dim, "output_dim", self.name)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.embeddings = None
        self._initial_weights = (
            None
            if weights is None
            else list(weights if isinstance(weights, (list, tuple)) else [weights])
        )

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          self.embeddings_regularizer)  # fmt: skip
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs):
        idx = embedding_indices(inputs, self.name)
        return F.embedding(idx, self.embeddings)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return np.asarray(getattr(inputs, "data", inputs)) != 0

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "mask_zero": self.mask_zero,
        }
