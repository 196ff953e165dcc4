"""Convolutions, channels-last, over the conv2d kernels."""

from __future__ import annotations

from dlcore import ops
from dlcore.tensor import as_tensor, record

from .window import conv_padding

__all__ = ["conv2d"]


def conv2d(x, kernel, bias=None, strides=1, padding=0, dilation=1):
    """2-D convolution, channels-last: x (N, H, W, C), kernel (KH, KW, C, OC) -> (N, OH, OW, OC).

    padding: 'valid', 'same', an int, (ph, pw) or ((top, bottom), (left, right)).
    """
    x, kernel = as_tensor(x), as_tensor(kernel)
    padding = conv_padding(padding, x.shape[1:3], kernel.shape[:2], strides, dilation)
    args = dict(strides=strides, padding=padding, dilation=dilation)
    bias_t = None if bias is None else as_tensor(bias)
    y = ops.conv2d_forward(x.data, kernel.data, None if bias_t is None else bias_t.data, **args)
    inputs = (x, kernel) if bias_t is None else (x, kernel, bias_t)

    def backward(g):
        dx, dk, db = ops.conv2d_backward(
            g[0],
            x.data,
            kernel.data,
            **args,
            need_dx=x.requires_grad,
            need_dkernel=kernel.requires_grad,
            need_dbias=bias_t is not None and bias_t.requires_grad,
        )
        return (dx, dk) if bias_t is None else (dx, dk, db)

    return record(y, inputs, backward, "conv2d")
