"""Pooling, channels-last, over the pooling kernels."""

from __future__ import annotations

from dlcore import ops
from dlcore.tensor import as_tensor, record

from .window import conv_padding

__all__ = ["max_pool2d"]


def max_pool2d(x, pool_size=2, strides=None, padding=0):
    """Max pooling, channels-last: x (N, H, W, C) -> (N, OH, OW, C).

    strides defaults to pool_size; padding as for :func:`conv2d` (padded cells never win).
    """
    x = as_tensor(x)
    strides = pool_size if strides is None else strides
    padding = conv_padding(padding, x.shape[1:3], pool_size, strides)
    y, argmax = ops.maxpool2d_forward(x.data, pool_size=pool_size, strides=strides, padding=padding)
    shape = x.shape
    return record(y, (x,), lambda g: (ops.maxpool2d_backward(g[0], argmax, shape),), "max_pool2d")
