"""Pooling layers, channels-last."""

from __future__ import annotations

from dlcore import functional as F
from dlcore.functional.window import int_tuple, output_length, padding_mode

from .base import Layer, registry

__all__ = ["MaxPooling2D"]


@registry.register()
class MaxPooling2D(Layer):
    """Max over pool_size windows, channels-last; strides default to pool_size."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"MaxPooling2D: dlcore is channels-last; data_format="
                f"{data_format!r} is not supported"
            )
        self.pool_size = int_tuple(pool_size, 2, "pool_size", "MaxPooling2D")
        self.strides = (
            self.pool_size if strides is None else int_tuple(strides, 2, "strides", "MaxPooling2D")
        )
        self.padding = padding_mode(padding)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.name}: MaxPooling2D needs inputs (batch, rows, cols, "
                f"channels), got shape {input_shape}"
            )

    def call(self, inputs, training=False):
        return F.max_pool2d(inputs, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        rows, cols = (
            output_length(n, k, s, 1, self.padding)
            for n, k, s in zip(input_shape[1:3], self.pool_size, self.strides)
        )
        return (input_shape[0], rows, cols, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }
