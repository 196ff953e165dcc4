"""Convolution layers, channels-last."""

from __future__ import annotations

from dlcore import functional as F
from dlcore.functional.window import int_tuple, output_length, padding_mode

from .base import Layer, kernel_bias_config, kernel_bias_options, positive_int, registry

__all__ = ["Conv2D"]


@registry.register()
class Conv2D(Layer):
    """2-D convolution over channels-last images.

    Input shape: (batch, rows, cols, channels). Output shape: (batch, new_rows,
    new_cols, filters). Kernel: (kernel_rows, kernel_cols, channels, filters).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"Conv2D: dlcore is channels-last; data_format={data_format!r} is not supported"
            )
        self.filters = positive_int(filters, "filters", "Conv2D")
        self.kernel_size = int_tuple(kernel_size, 2, "kernel_size", "Conv2D")
        self.strides = int_tuple(strides, 2, "strides", "Conv2D")
        self.dilation_rate = int_tuple(dilation_rate, 2, "dilation_rate", "Conv2D")
        self.padding = padding_mode(padding)
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
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: Conv2D needs inputs (batch, rows, cols, channels), "
                f"got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            "kernel",
            (*self.kernel_size, input_shape[-1], self.filters),
            self.kernel_initializer,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.filters,), self.bias_initializer, self.bias_regularizer
            )

    def call(self, inputs, training=False):
        y = F.conv2d(
            inputs,
            self.kernel,
            self.bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
        )
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        rows, cols = (
            output_length(n, k, s, d, self.padding)
            for n, k, s, d in zip(
                input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate
            )
        )
        return (input_shape[0], rows, cols, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            **kernel_bias_config(self),
        }
