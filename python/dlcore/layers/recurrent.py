"""Recurrent layers over whole sequences: LSTM."""

from __future__ import annotations

import numpy as np

from dlcore import functional as F
from dlcore import initializers, regularizers

from .base import Layer, positive_int, registry

__all__ = ["LSTM"]


@registry.register()
class LSTM(Layer):
    """Long short-term memory over a whole sequence, with Keras' weights and gate order.

    Input shape: (batch, timesteps, features). Output: (batch, units), or
    (batch, timesteps, units) with ``return_sequences``; with ``return_state`` a list
    ``[output, h_n, c_n]``. Weights: ``kernel`` (features, 4*units),
    ``recurrent_kernel`` (units, 4*units), ``bias`` (4*units,), gates i, f, c, o.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        return_sequences=False,
        return_state=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        units = positive_int(units, "units", "LSTM")
        if activation != "tanh" or recurrent_activation != "sigmoid":
            raise ValueError(
                "LSTM: dlcore's kernel computes activation='tanh' and "
                "recurrent_activation='sigmoid' (Keras' defaults); got "
                f"{activation!r} and {recurrent_activation!r}"
            )
        if dropout or recurrent_dropout:
            raise ValueError(
                "LSTM: dropout / recurrent_dropout inside the cell are not "
                "supported; put a Dropout layer after the LSTM instead"
            )
        self.units = int(units)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.kernel = self.recurrent_kernel = self.bias = None

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: LSTM needs inputs (batch, timesteps, features), "
                f"got shape {input_shape}"
            )
        U = self.units
        self.kernel = self.add_weight(
            "kernel", (input_shape[-1], 4 * U), self.kernel_initializer, self.kernel_regularizer
        )
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (U, 4 * U), self.recurrent_initializer, self.recurrent_regularizer
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (4 * U,), self.bias_initializer, self.bias_regularizer
            )
            if self.unit_forget_bias:
                self.bias.data[U : 2 * U] = 1.0

    def call(self, inputs, training=False, initial_state=None):
        h0 = c0 = None
        if initial_state is not None:
            h0, c0 = initial_state
        bias = self.bias if self.use_bias else np.zeros(4 * self.units, self.dtype)
        y, h_n, c_n = F.lstm(inputs, h0, c0, self.kernel, self.recurrent_kernel, bias)
        out = y if self.return_sequences else h_n
        return [out, h_n, c_n] if self.return_state else out

    def compute_output_shape(self, input_shape):
        seq = (input_shape[0], input_shape[1], self.units)
        last = (input_shape[0], self.units)
        out = seq if self.return_sequences else last
        return [out, last, last] if self.return_state else out

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
        }
