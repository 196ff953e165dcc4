"""Convolution layers, channels-last: Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D and
SeparableConv2D, with Keras' arguments, weight shapes and output sizes."""

from __future__ import annotations

from dlcore import activations, ops
from dlcore import functional as F
from dlcore.functional.window import (
    int_tuple,
    layer_padding,
    output_sizes,
    padding_mode,
    transposed_output_length,
)

from .base import (
    Layer,
    activate_data,
    kernel_bias_back,
    kernel_bias_config,
    kernel_bias_options,
    positive_int,
    registry,
    weight_config,
    weight_options,
)

__all__ = ["Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D",
           "Convolution1D", "Convolution2D", "Convolution2DTranspose",
           "SeparableConvolution2D"]  # fmt: skip


def check_channels_last(owner, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(
            f"{owner}: dlcore is channels-last; data_format={data_format!r} is not supported"
        )


class ConvWindow(Layer):
    """What every convolution layer shares: Keras' window arguments (kernel_size, strides,
    padding, dilation_rate, data_format) checked once, the input's shape checked in
    ``build``, the output's sizes and the config. A subclass sets ``rank``,
    ``input_axes`` (its input's axes, for messages) and ``paddings``."""

    rank = 2
    input_axes = "batch, rows, cols, channels"
    paddings = ("valid", "same")

    def __init__(self, kernel_size, strides, padding, dilation_rate, data_format, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_channels_last(owner, data_format)
        self.kernel_size = int_tuple(kernel_size, self.rank, "kernel_size", owner)
        self.strides = int_tuple(strides, self.rank, "strides", owner)
        self.dilation_rate = int_tuple(dilation_rate, self.rank, "dilation_rate", owner)
        self.padding = padding_mode(padding, owner, self.paddings)

    def check_input_shape(self, input_shape):
        """The input's channels, once its rank is right and its known sizes fit the
        window (checked before ``build`` makes any weight)."""
        if len(input_shape) != self.rank + 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: {type(self).__name__} needs inputs ({self.input_axes}), "
                f"got shape {input_shape}"
            )
        self.output_sizes(input_shape)
        return input_shape[-1]

    def output_sizes(self, input_shape):
        """The output's sizes along the window's axes; a known size smaller than the
        dilated kernel under 'valid' padding is a ValueError, as in Keras."""
        return output_sizes(
            input_shape, self.kernel_size, self.strides, self.dilation_rate, self.padding,
            owner=self.name, names=("kernel_size", "dilation_rate"),
            axes=self.input_axes.split(", ")[1:-1],
        )  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
        }


class BaseConv(ConvWindow):
    """The convolutions with ``filters``: the kernel and bias created in Keras' order, the
    config. A subclass computes in ``call``."""

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
        super().__init__(kernel_size, strides, padding, dilation_rate, data_format, **kwargs)
        self.filters = positive_int(filters, "filters", type(self).__name__)
        kernel_bias_options(
            self,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
        )

    def fused_activation(self):
        """'relu' when the activation is Keras' plain relu, which the conv2d kernels apply
        in the same call (the same values); None when the activation runs on its own."""
        return "relu" if self.activation is activations.relu else None

    def kernel_shape(self, channels):
        """Keras' kernel layout: (*kernel_size, input channels, filters)."""
        return (*self.kernel_size, channels, self.filters)

    def build(self, input_shape):
        channels = self.check_input_shape(input_shape)
        self.kernel = self.add_weight(
            "kernel", self.kernel_shape(channels), self.kernel_initializer,
            self.kernel_regularizer,
        )  # fmt: skip
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.filters,), self.bias_initializer, self.bias_regularizer
            )

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_sizes(input_shape), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, **kernel_bias_config(self)}


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
        fused = self.fused_activation()
        y = F.conv1d(inputs, self.kernel, self.bias, strides=self.strides,
                     padding=self.padding, dilation=self.dilation_rate,
                     activation=fused)  # fmt: skip
        return y if fused else self.activation(y)


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
        groups=1,
        **kwargs,
    ):
        if groups != 1:
            raise ValueError(
                f"Conv2D: groups={groups!r} is not supported; expected 1 (a convolution per "
                f"channel is DepthwiseConv2D)"
            )
        super().__init__(
            filters, kernel_size, strides, padding, dilation_rate, activation, use_bias,
            kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            data_format, **kwargs,
        )  # fmt: skip

    def call(self, inputs, training=False):
        fused = self.fused_activation()
        y = F.conv2d(
            inputs,
            self.kernel,
            self.bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
            activation=fused,
        )
        return y if fused else self.activation(y)

    def _inference_fn(self):
        def run(x):
            kernel, strides, dilation = self.kernel.data, self.strides, self.dilation_rate
            pad = layer_padding(self.padding, x.shape[1:3], kernel.shape[:2], strides, dilation)
            fused = self.fused_activation()
            bias = self.bias
            y = ops.conv2d_forward(x, kernel, None if bias is None else bias.data,
                                   strides=strides, padding=pad, dilation=dilation,
                                   activation=fused)  # fmt: skip
            return y if fused else activate_data(self.activation, y)

        return run

    def _training_fn(self, activate=True):
        fused = self.fused_activation() if activate else None
        if activate and not fused and self.activation is not activations.linear:
            return None
        extra = {} if fused is None else {"activation": fused}

        def step(x, need_dx, trained):
            kernel, bias = self.kernel, self.bias
            kd, strides, dilation = kernel.data, self.strides, self.dilation_rate
            pad = layer_padding(self.padding, x.shape[1:3], kd.shape[:2], strides, dilation)
            y = ops.conv2d_forward(x, kd, None if bias is None else bias.data, strides=strides,
                                   padding=pad, dilation=dilation, **extra)  # fmt: skip

            def grads(g, need_dk, need_db):
                return ops.conv2d_backward(
                    g, x, kernel.data, strides=strides, padding=pad, dilation=dilation,
                    **extra, **({"y": y} if fused else {}), need_dx=need_dx,
                    need_dkernel=need_dk, need_dbias=need_db,
                )  # fmt: skip

            return y, kernel_bias_back(kernel, bias, trained, need_dx, grads)

        return step


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

    def output_sizes(self, input_shape):
        """The output's rows and columns. Any input fits the window, but 'same' with an
        even kernel and output_padding 0 leaves no row of one input row: a ValueError (the
        kernel's too), where Keras gives 0."""
        extras = self.output_padding or (None, None)
        sizes = tuple(
            transposed_output_length(n, k, s, d, self.padding, op)
            for n, k, s, d, op in zip(
                input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate, extras
            )
        )
        for n, size, axis, k, s, d, op in zip(input_shape[1:3], sizes, ("rows", "cols"),
                                              self.kernel_size, self.strides,
                                              self.dilation_rate, extras):  # fmt: skip
            if size is not None and size < 1:
                raise ValueError(
                    f"{self.name}: kernel_size {k} (dilation_rate {d}), strides {s}, "
                    f"padding={self.padding!r} and output_padding {op} leave {size} output "
                    f"{axis} for an input of {n} {axis} (input shape {tuple(input_shape)}); "
                    f"expected at least 1"
                )
        return sizes

    def get_config(self):
        out = self.output_padding
        return {**super().get_config(), "output_padding": None if out is None else list(out)}


class BaseDepthwise(ConvWindow):
    """The depthwise convolutions: depth_multiplier filters of their own for each input
    channel, the depthwise kernel (*kernel_size, channels, depth_multiplier) as Keras
    stores it, an activation and a bias."""

    def __init__(self, kernel_size, strides, padding, depth_multiplier, data_format,
                 dilation_rate, activation, use_bias, depthwise_initializer,
                 depthwise_regularizer, bias_initializer, bias_regularizer, **kwargs):  # fmt: skip
        super().__init__(kernel_size, strides, padding, dilation_rate, data_format, **kwargs)
        owner = type(self).__name__
        self.depth_multiplier = positive_int(depth_multiplier, "depth_multiplier", owner)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        weight_options(self, "depthwise", depthwise_initializer, depthwise_regularizer)
        weight_options(self, "bias", bias_initializer, bias_regularizer)
        self.bias = None

    def add_depthwise_kernel(self, name, channels):
        return self.add_weight(
            name, (*self.kernel_size, channels, self.depth_multiplier),
            self.depthwise_initializer, self.depthwise_regularizer,
        )  # fmt: skip

    def add_bias(self, size):
        if self.use_bias:
            self.bias = self.add_weight("bias", (size,), self.bias_initializer,
                                        self.bias_regularizer)  # fmt: skip

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **weight_config(self, "depthwise", "bias"),
        }


@registry.register()
class DepthwiseConv2D(BaseDepthwise):
    """Depthwise 2-D convolution, channels-last: each input channel convolved with its own
    ``depth_multiplier`` filters, no sum over channels.

    Input shape: (batch, rows, cols, channels). Output shape: (batch, new_rows, new_cols,
    channels * depth_multiplier), channel c * depth_multiplier + m from input channel c and
    its filter m. Weights, in Keras' order: kernel (kernel_rows, kernel_cols, channels,
    depth_multiplier), bias (channels * depth_multiplier,).
    """

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
            activation, use_bias, depthwise_initializer, depthwise_regularizer,
            bias_initializer, bias_regularizer, **kwargs,
        )  # fmt: skip
        self.kernel = None

    def build(self, input_shape):
        channels = self.check_input_shape(input_shape)
        self.kernel = self.add_depthwise_kernel("kernel", channels)
        self.add_bias(channels * self.depth_multiplier)

    def call(self, inputs, training=False):
        y = F.depthwise_conv2d(inputs, self.kernel, self.bias, strides=self.strides,
                               padding=self.padding, dilation=self.dilation_rate)  # fmt: skip
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return (input_shape[0], *self.output_sizes(input_shape),
                None if channels is None else channels * self.depth_multiplier)  # fmt: skip


@registry.register(aliases=("SeparableConvolution2D",))
class SeparableConv2D(BaseDepthwise):
    """Depthwise-separable 2-D convolution, channels-last: a depthwise convolution over the
    window, then a 1x1 convolution mixing its channels into ``filters``.

    Input shape: (batch, rows, cols, channels). Output shape: (batch, new_rows, new_cols,
    filters). Weights, in Keras' order: depthwise_kernel (kernel_rows, kernel_cols,
    channels, depth_multiplier), pointwise_kernel (1, 1, channels * depth_multiplier,
    filters), bias (filters,).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate,
            activation, use_bias, depthwise_initializer, depthwise_regularizer,
            bias_initializer, bias_regularizer, **kwargs,
        )  # fmt: skip
        self.filters = positive_int(filters, "filters", "SeparableConv2D")
        weight_options(self, "pointwise", pointwise_initializer, pointwise_regularizer)
        self.depthwise_kernel = self.pointwise_kernel = None

    def build(self, input_shape):
        channels = self.check_input_shape(input_shape)
        self.depthwise_kernel = self.add_depthwise_kernel("depthwise_kernel", channels)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1, 1, channels * self.depth_multiplier, self.filters),
            self.pointwise_initializer, self.pointwise_regularizer,
        )  # fmt: skip
        self.add_bias(self.filters)

    def call(self, inputs, training=False):
        y = F.separable_conv2d(inputs, self.depthwise_kernel, self.pointwise_kernel, self.bias,
                               strides=self.strides, padding=self.padding,
                               dilation=self.dilation_rate)  # fmt: skip
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_sizes(input_shape), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            **weight_config(self, "pointwise"),
        }


Convolution1D, Convolution2D, Convolution2DTranspose = Conv1D, Conv2D, Conv2DTranspose
SeparableConvolution2D = SeparableConv2D
