"""Pooling layers, channels-last: max and average pooling over windows (1-D and 2-D) and
global average and max pooling, with Keras' arguments and output sizes."""

from __future__ import annotations

from dlcore import functional as F
from dlcore import ops
from dlcore.functional.window import int_tuple, layer_padding, output_sizes, padding_mode

from .base import Layer, registry
from .convolutional import check_channels_last

__all__ = [
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "MaxPooling1D",
    "MaxPooling2D",
    # Keras' other names for them
    "AvgPool1D",
    "AvgPool2D",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "GlobalMaxPool2D",
    "MaxPool1D",
    "MaxPool2D",
]


def _input_axes(rank):
    return "batch, steps, channels" if rank == 1 else "batch, rows, cols, channels"


def _check_rank(layer, input_shape):
    if len(input_shape) != layer.rank + 2:
        raise ValueError(
            f"{layer.name}: {type(layer).__name__} needs inputs ({_input_axes(layer.rank)}), "
            f"got shape {input_shape}"
        )


class BasePooling(Layer):
    """A window sliding over the steps or the rows and columns: ``pool`` (a functional
    op) over ``pool_size`` windows, ``strides`` defaulting to ``pool_size``."""

    rank = 2
    pool = None

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        check_channels_last(owner, data_format)
        self.pool_size = int_tuple(pool_size, self.rank, "pool_size", owner)
        self.strides = (
            self.pool_size if strides is None else int_tuple(strides, self.rank, "strides", owner)
        )
        self.padding = padding_mode(padding, owner)

    def build(self, input_shape):
        _check_rank(self, input_shape)
        self.compute_output_shape(input_shape)  # the window fits the input's known sizes

    def call(self, inputs, training=False):
        size, strides = self.pool_size, self.strides
        return self.pool(inputs, size[0] if self.rank == 1 else size,
                    strides[0] if self.rank == 1 else strides, self.padding)  # fmt: skip

    def _inference_fn(self):
        pool = type(self).pool
        if pool is not F.max_pool2d and pool is not F.avg_pool2d:
            return None

        def run(x):
            size, strides = self.pool_size, self.strides
            pad = layer_padding(self.padding, x.shape[1:3], size, strides)
            if pool is F.max_pool2d:
                return ops.maxpool2d_forward(x, pool_size=size, strides=strides, padding=pad,
                                             need_argmax=False)[0]  # fmt: skip
            return ops.avgpool2d_forward(x, pool_size=size, strides=strides, padding=pad)

        return run

    def _training_fn(self, activate=True):
        if type(self).pool is not F.max_pool2d:
            return None

        def step(x, need_dx, trained):
            size, strides = self.pool_size, self.strides
            pad = layer_padding(self.padding, x.shape[1:3], size, strides)
            y, argmax = ops.maxpool2d_forward(x, pool_size=size, strides=strides, padding=pad,
                                              need_argmax=need_dx)  # fmt: skip
            shape = x.shape
            return y, lambda g: ops.maxpool2d_backward(g, argmax, shape) if need_dx else None

        return step

    def compute_output_shape(self, input_shape):
        """A known size smaller than pool_size under 'valid' padding is a ValueError,
        as in Keras."""
        sizes = output_sizes(
            input_shape, self.pool_size, self.strides, (1,) * self.rank, self.padding,
            owner=self.name, names=("pool_size", None),
            axes=_input_axes(self.rank).split(", ")[1:-1],
        )  # fmt: skip
        return (input_shape[0], *sizes, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


@registry.register(aliases=("MaxPool1D",))
class MaxPooling1D(BasePooling):
    """Max over pool_size steps, channels-last: (batch, steps, channels) -> (batch,
    new_steps, channels); strides default to pool_size."""

    rank = 1
    pool = staticmethod(F.max_pool1d)

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@registry.register(aliases=("MaxPool2D",))
class MaxPooling2D(BasePooling):
    """Max over pool_size windows, channels-last; strides default to pool_size."""

    pool = staticmethod(F.max_pool2d)

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@registry.register(aliases=("AvgPool1D",))
class AveragePooling1D(BasePooling):
    """Mean over pool_size steps, channels-last: (batch, steps, channels) -> (batch,
    new_steps, channels); strides default to pool_size. With padding='same' a window's
    mean leaves the padding out, as Keras'."""

    rank = 1
    pool = staticmethod(F.avg_pool1d)

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


@registry.register(aliases=("AvgPool2D",))
class AveragePooling2D(BasePooling):
    """Mean over pool_size windows, channels-last; strides default to pool_size. With
    padding='same' a window's mean leaves the padding out, as Keras'."""

    pool = staticmethod(F.avg_pool2d)

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class BaseGlobalPooling(Layer):
    """A reduction over every step or pixel: (batch, ..., channels) -> (batch, channels),
    or (batch, 1, ..., channels) with ``keepdims``."""

    rank = 2

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        check_channels_last(type(self).__name__, data_format)
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        _check_rank(self, input_shape)

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], *[1] * self.rank, input_shape[-1])
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


@registry.register(aliases=("GlobalAvgPool1D",))
class GlobalAveragePooling1D(BaseGlobalPooling):
    """Mean over the steps: (batch, steps, channels) -> (batch, channels). With a mask
    (from Embedding(mask_zero=True), Masking, ...) the mean is over the steps it keeps,
    as Keras'; the output carries no mask."""

    rank = 1

    def call(self, inputs, mask=None):
        return F.global_avg_pool(inputs, mask, self.keepdims)


@registry.register(aliases=("GlobalAvgPool2D",))
class GlobalAveragePooling2D(BaseGlobalPooling):
    """Mean over the rows and columns: (batch, rows, cols, channels) -> (batch, channels)."""

    def call(self, inputs):
        return F.global_avg_pool(inputs, keepdims=self.keepdims)


@registry.register(aliases=("GlobalMaxPool1D",))
class GlobalMaxPooling1D(BaseGlobalPooling):
    """Max over the steps: (batch, steps, channels) -> (batch, channels)."""

    rank = 1

    def call(self, inputs):
        return F.global_max_pool(inputs, self.keepdims)


@registry.register(aliases=("GlobalMaxPool2D",))
class GlobalMaxPooling2D(BaseGlobalPooling):
    """Max over the rows and columns: (batch, rows, cols, channels) -> (batch, channels)."""

    def call(self, inputs):
        return F.global_max_pool(inputs, self.keepdims)


MaxPool1D, MaxPool2D, AvgPool1D, AvgPool2D = (
    MaxPooling1D,
    MaxPooling2D,
    AveragePooling1D,
    AveragePooling2D,
)
GlobalAvgPool1D, GlobalAvgPool2D = GlobalAveragePooling1D, GlobalAveragePooling2D
GlobalMaxPool1D, GlobalMaxPool2D = GlobalMaxPooling1D, GlobalMaxPooling2D
