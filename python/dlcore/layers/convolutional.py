"""Convolution layers, channels-last: Conv1D, Conv2D and Conv2DTranspose, with Keras'
arguments, weight shapes and output sizes."""

from __future__ import annotations

from dlcore import functional as F
from dlcore.functional.window import (
    int_tuple,
    output_length,
    padding_mode,
    transposed_output_length,
)

from .base import Layer, kernel_bias_config, kernel_bias_options, positive_int, registry

__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "Convolution1D", "Convolution2D",
           "Convolution2DTranspose"]  # fmt: skip


def check_channels_last(owner, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{owner}: dlcore is channels-last; data_format={data_format!r} is not supported"
        )


class BaseConv(Layer):
    """What the convolution layers share: Keras' arguments checked once, the kernel and
    bias created in Keras' order, the config. A subclass sets ``rank``, ``input_axes``
    (its input's axes, for messages) and computes in ``call``."""

    rank = 2
    input_axes = "batch, rows, cols, channels"
    paddings = ("valid", "same")

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        dilation_rate=1,
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
        owner = type(self).__name__
        check_channels_last(owner, data_format)
        self.filters = positive_int(filters, "filters", owner)
        self.kernel_size = int_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = int_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = int_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        self.padding = padding_mode(padding, owner, self.paddings)
        kernel_bias_options(
            self,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
        )

    def kernel_shape(self, channels):
        """Keras' kernel layout: (*kernel_size, input channels, filters)."""
        return (*self.kernel_size, channels, self.filters)

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: {type(self).__name__} needs inputs ({self.input_axes}), "
                f"got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            "kernel", self.kernel_shape(input_shape[-1]), self.kernel_initializer,
            self.kernel_regularizer,
        )  # fmt: skip
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.filters,), self.bias_initializer, self.bias_regularizer
            )

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


@registry.register(aliases=("Convolution1D",))
class Conv1D(BaseConv):
    """1-D convolution over sequences, channels-last.

    Input shape: (batch, steps, channels). Output shape: (batch, new_steps, filters).
    Kernel: (kernel_size, channels, filters). padding: 'valid', 'same' or 'causal'
    (output t depends on inputs up to t alone, as in WaveNet).
    """

    rank = 1
    input_axes = "batch, steps, channels"
    paddings = ("valid", "same", "causal")

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        if groups != 1:
            raise ValueError(f"Conv1D: groups={groups!r} is not supported; expected 1")
        super().__init__(
            filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
            kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            data_format, **kwargs,
        )  # fmt: skip

    def call(self, inputs, training=False):
        y = F.conv1d(inputs, self.kernel, self.bias, strides=self.strides,
                     padding=self.padding, dilation=self.dilation_rate)  # fmt: skip
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        steps = output_length(input_shape[1], self.kernel_size[0], self.strides[0],
                              self.dilation_rate[0], self.padding)  # fmt: skip
        return (input_shape[0], steps, self.filters)


@registry.register(aliases=("Convolution2D",))
class Conv2D(BaseConv):
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
        super().__init__(
            filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
            kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            data_format, **kwargs,
        )  # fmt: skip

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


@registry.register(aliases=("Convolution2DTranspose",))
class Conv2DTranspose(BaseConv):
    """2-D transposed convolution (the adjoint of Conv2D; a learned upsampling), channels-last.

    Input shape: (batch, rows, cols, channels). Output shape: (batch, new_rows,
    new_cols, filters) with new_rows = rows * strides for 'same' and (rows - 1) * strides
    + max(kernel, strides) for 'valid' (Keras' sizes); ``output_padding`` (each below its
    stride) picks (rows - 1) * strides + kernel % 2 + output_padding ('same') or (rows -
    1) * strides + kernel + output_padding ('valid') instead. Kernel: (kernel_rows,
    kernel_cols, filters, channels), as Keras stores it.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
            kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            data_format, **kwargs,
        )  # fmt: skip
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = int_tuple(output_padding, 2, "output_padding",
                                            "Conv2DTranspose", minimum=0)  # fmt: skip
            if any(op >= s for op, s in zip(self.output_padding, self.strides)):
                raise ValueError(
                    f"Conv2DTranspose: output_padding must be smaller than strides on each "
                    f"axis; got output_padding={self.output_padding} with strides {self.strides}"
                )

    def kernel_shape(self, channels):
        return (*self.kernel_size, self.filters, channels)

    def call(self, inputs, training=False):
        y = F.conv2d_transpose(inputs, self.kernel, self.bias, strides=self.strides,
                               padding=self.padding, output_padding=self.output_padding,
                               dilation=self.dilation_rate)  # fmt: skip
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        extras = self.output_padding or (None, None)
        rows, cols = (
            transposed_output_length(n, k, s, d, self.padding, op)
            for n, k, s, d, op in zip(
                input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate, extras
            )
        )
        return (input_shape[0], rows, cols, self.filters)

    def get_config(self):
        out = self.output_padding
        return {**super().get_config(), "output_padding": None if out is None else list(out)}


Convolution1D, Convolution2D, Convolution2DTranspose = Conv1D, Conv2D, Conv2DTranspose
