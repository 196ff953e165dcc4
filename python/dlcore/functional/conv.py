"""Convolutions, channels-last, over the conv2d kernels: conv1d on a (N, 1, T, C) view,
and the transposed convolution (conv2d's adjoint, its own kernel pair)."""

from __future__ import annotations

from dlcore import ops
from dlcore.tensor import as_tensor, record

from .shape import reshape
from .window import conv_padding, conv_transpose_padding, explicit_padding_1d, int_tuple

__all__ = ["conv1d", "conv2d", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d"]


def _conv(forward, backward, name, x, kernel, bias, activation=None, **args):
    """y = forward(x, kernel, bias, **args), recorded with the gradients that backward
    computes for the inputs that need them. ``activation='relu'`` (conv2d's kernels only)
    applies relu inside the kernel call, and its gradient inside the backward's."""
    x, kernel = as_tensor(x), as_tensor(kernel)
    bias_t = None if bias is None else as_tensor(bias)
    fused = {} if activation is None else {"activation": activation}
    y = forward(x.data, kernel.data, None if bias_t is None else bias_t.data, **args, **fused)
    inputs = (x, kernel) if bias_t is None else (x, kernel, bias_t)
    if fused:
        fused["y"] = y

    def grads(g):
        dx, dk, db = backward(
            g[0],
            x.data,
            kernel.data,
            **args,
            **fused,
            need_dx=x.requires_grad,
            need_dkernel=kernel.requires_grad,
            need_dbias=bias_t is not None and bias_t.requires_grad,
        )
        return (dx, dk) if bias_t is None else (dx, dk, db)

    return record(y, inputs, grads, name)


def conv2d(x, kernel, bias=None, strides=1, padding=0, dilation=1, activation=None):
    """2-D convolution, channels-last: x (N, H, W, C), kernel (KH, KW, C, OC) -> (N, OH, OW, OC).

    padding: 'valid', 'same', an int, (ph, pw) or ((top, bottom), (left, right)).
    activation: None, or 'relu' to apply relu in the same kernel call (the value of
    ``relu(conv2d(...))``, bit for bit, without relu's own pass and array).
    """
    x, kernel = as_tensor(x), as_tensor(kernel)
    padding = conv_padding(padding, x.shape[1:3], kernel.shape[:2], strides, dilation)
    return _conv(ops.conv2d_forward, ops.conv2d_backward, "conv2d", x, kernel, bias, activation,
                 strides=strides, padding=padding, dilation=dilation)  # fmt: skip


def conv1d(x, kernel, bias=None, strides=1, padding=0, dilation=1, activation=None):
    """1-D convolution, channels-last: x (N, T, C), kernel (K, C, OC) -> (N, OT, OC),
    computed by :func:`conv2d` on x seen as (N, 1, T, C).

    padding: 'valid', 'same', 'causal' (output t sees inputs up to t alone), an int or
    (before, after). activation: None or 'relu', as for :func:`conv2d`.
    """
    x, kernel = as_tensor(x), as_tensor(kernel)
    if x.ndim != 3 or kernel.ndim != 3:
        raise ValueError(
            f"conv1d: x must be 3-D (N, T, C) and kernel 3-D (K, C, OC), got shapes "
            f"{x.shape} and {kernel.shape}"
        )
    (stride,) = int_tuple(strides, 1, "strides", "conv1d")
    (rate,) = int_tuple(dilation, 1, "dilation", "conv1d")
    (pad,) = explicit_padding_1d(
        conv_padding(padding, x.shape[1:2], kernel.shape[:1], stride, rate)
    )
    N, T, C = x.shape
    y = conv2d(reshape(x, (N, 1, T, C)), reshape(kernel, (1, *kernel.shape)), bias,
               strides=(1, stride), padding=((0, 0), pad), dilation=(1, rate),
               activation=activation)  # fmt: skip
    return reshape(y, (N, y.shape[2], y.shape[3]))


def conv2d_transpose(x, kernel, bias=None, strides=1, padding=0, output_padding=None, dilation=1):
    """2-D transposed convolution, channels-last: x (N, H, W, C), kernel (KH, KW, OC, C)
    (Keras' Conv2DTranspose layout) -> (N, OH, OW, OC).

    padding: 'valid' or 'same' as Keras sizes them (``output_padding`` None for Keras'
    default), or explicit crops as for ``ops.conv2d_transpose_forward`` (an int, (ph, pw)
    or ((top, bottom), (left, right))) with ``output_padding`` rows and columns added
    after (0 for None).
    """
    x, kernel = as_tensor(x), as_tensor(kernel)
    if isinstance(padding, str):
        padding, output_padding = conv_transpose_padding(
            padding, kernel.shape[:2], strides, dilation, output_padding
        )
    elif output_padding is None:
        output_padding = 0
    return _conv(ops.conv2d_transpose_forward, ops.conv2d_transpose_backward,
                 "conv2d_transpose", x, kernel, bias, strides=strides, padding=padding,
                 output_padding=output_padding, dilation=dilation)  # fmt: skip


def depthwise_conv2d(x, kernel, bias=None, strides=1, padding=0, dilation=1):
    """Depthwise 2-D convolution, channels-last: x (N, H, W, C), kernel (KH, KW, C, M) ->
    (N, OH, OW, C * M), output channel c * M + m the convolution of input channel c with
    filter m (Keras' DepthwiseConv2D; PyTorch's conv2d with groups=C).

    padding: as for :func:`conv2d`.
    """
    x, kernel = as_tensor(x), as_tensor(kernel)
    padding = conv_padding(padding, x.shape[1:3], kernel.shape[:2], strides, dilation)
    return _conv(ops.depthwise_conv2d_forward, ops.depthwise_conv2d_backward,
                 "depthwise_conv2d", x, kernel, bias, strides=strides, padding=padding,
                 dilation=dilation)  # fmt: skip


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, bias=None, strides=1, padding=0,
                     dilation=1):  # fmt: skip
    """Depthwise-separable 2-D convolution (Keras' SeparableConv2D): :func:`depthwise_conv2d`
    of x with depthwise_kernel (KH, KW, C, M) over the window given, then the 1x1
    :func:`conv2d` of that with pointwise_kernel (1, 1, C * M, OC), + bias (OC)."""
    y = depthwise_conv2d(x, depthwise_kernel, None, strides=strides, padding=padding,
                         dilation=dilation)  # fmt: skip
    return conv2d(y, pointwise_kernel, bias)
