"""Pooling, channels-last, over the pooling kernels. The 1-D pools run the 2-D kernels on
x seen as (N, 1, T, C); the global max pool is a max-pool whose window is the whole input."""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore.tensor import as_tensor, record

from .shape import reshape
from .window import conv_padding, explicit_padding_1d, int_tuple

__all__ = [
    "avg_pool1d",
    "avg_pool2d",
    "global_avg_pool",
    "global_max_pool",
    "max_pool1d",
    "max_pool2d",
]


def _window(x, pool_size, strides, padding):
    strides = pool_size if strides is None else strides
    return strides, conv_padding(padding, x.shape[1:3], pool_size, strides)


def max_pool2d(x, pool_size=2, strides=None, padding=0):
    """Max pooling, channels-last: x (N, H, W, C) -> (N, OH, OW, C).

    strides defaults to pool_size; padding as for :func:`conv2d` (padded cells never win).
    """
    x = as_tensor(x)
    strides, padding = _window(x, pool_size, strides, padding)
    y, argmax = ops.maxpool2d_forward(x.data, pool_size=pool_size, strides=strides, padding=padding)
    shape = x.shape
    return record(y, (x,), lambda g: (ops.maxpool2d_backward(g[0], argmax, shape),), "max_pool2d")


def avg_pool2d(x, pool_size=2, strides=None, padding=0):
    """Average pooling, channels-last: x (N, H, W, C) -> (N, OH, OW, C).

    strides defaults to pool_size; padding as for :func:`conv2d`. A window's mean is over
    its cells inside x: padding is not counted (Keras' 'same').
    """
    x = as_tensor(x)
    strides, padding = _window(x, pool_size, strides, padding)
    window = dict(pool_size=pool_size, strides=strides, padding=padding)
    y = ops.avgpool2d_forward(x.data, **window)
    shape = x.shape
    return record(y, (x,), lambda g: (ops.avgpool2d_backward(g[0], shape, **window),), "avg_pool2d")


def _pool1d(name, pool2d, x, pool_size, strides, padding):
    """A 2-D pool over x (N, T, C) seen as (N, 1, T, C)."""
    x = as_tensor(x)
    if x.ndim != 3:
        raise ValueError(f"{name}: x must be 3-D (N, T, C), got shape {x.shape}")
    (size,) = int_tuple(pool_size, 1, "pool_size", name)
    (stride,) = int_tuple(size if strides is None else strides, 1, "strides", name)
    (pad,) = explicit_padding_1d(conv_padding(padding, x.shape[1:2], size, stride))
    N, T, C = x.shape
    y = pool2d(reshape(x, (N, 1, T, C)), (1, size), (1, stride), ((0, 0), pad))
    return reshape(y, (N, y.shape[2], C))


def max_pool1d(x, pool_size=2, strides=None, padding=0):
    """Max pooling over steps: x (N, T, C) -> (N, OT, C); arguments as for :func:`max_pool2d`
    along one axis (padding 'valid', 'same', an int or (before, after))."""
    return _pool1d("max_pool1d", max_pool2d, x, pool_size, strides, padding)


def avg_pool1d(x, pool_size=2, strides=None, padding=0):
    """Average pooling over steps: x (N, T, C) -> (N, OT, C); arguments as for
    :func:`avg_pool2d` along one axis."""
    return _pool1d("avg_pool1d", avg_pool2d, x, pool_size, strides, padding)


def _check_global(name, x):
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name}: x must be 3-D (N, T, C) or 4-D (N, H, W, C), got shape {x.shape}"
        )


def _keep_dims(y, x, keepdims):
    return reshape(y, (x.shape[0], *([1] * (x.ndim - 2)), x.shape[-1])) if keepdims else y


def global_avg_pool(x, mask=None, keepdims=False):
    """The mean over every position of each sample, channels-last: x (N, T, C) or (N, H,
    W, C) -> (N, C) ((N, 1, C) or (N, 1, 1, C) with keepdims). With a boolean ``mask`` of
    x's shape without the channels, the mean is over the positions it keeps, as Keras'
    GlobalAveragePooling1D does with a mask (NaN for a sample it keeps none of)."""
    x = as_tensor(x)
    _check_global("global_avg_pool", x)
    if mask is not None:
        mask = np.asarray(getattr(mask, "data", mask), dtype=bool)
    y = ops.global_avgpool_forward(x.data, mask)
    shape = x.shape
    out = record(y, (x,), lambda g: (ops.global_avgpool_backward(g[0], shape, mask),),
                 "global_avg_pool")  # fmt: skip
    return _keep_dims(out, x, keepdims)


def global_max_pool(x, keepdims=False):
    """The maximum over every position of each sample, channels-last: x (N, T, C) or (N,
    H, W, C) -> (N, C) ((N, 1, C) or (N, 1, 1, C) with keepdims); the first maximum takes
    the gradient, a NaN wins."""
    x = as_tensor(x)
    _check_global("global_max_pool", x)
    positions = int(np.prod(x.shape[1:-1]))
    if positions == 0:
        raise ValueError(
            f"global_max_pool: x has shape {x.shape}, no position to take a maximum over; "
            f"expected at least one"
        )
    N, C = x.shape[0], x.shape[-1]
    y = max_pool2d(reshape(x, (N, 1, positions, C)), (1, positions))
    return _keep_dims(reshape(y, (N, C)), x, keepdims)
