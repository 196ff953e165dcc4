"""Conv2D, channels-last, in plain NumPy (float64): windows from sliding_window_view,
products from einsum. x (N, H, W, C), kernel (KH, KW, C, OC), padding ((t, b), (l, r)).
Conv2DTranspose: x (N, H, W, C), kernel (KH, KW, OC, C), each input pixel scattered to
the full output by every tap, which padding then crops. DepthwiseConv2D: x (N, H, W, C),
kernel (KH, KW, C, M), output channel c*M + m the window of input channel c alone."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kernel_hw, strides, padding, dilation):
    """(N, OH, OW, C, KH, KW) view of the zero-padded x under every kernel position."""
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, strides, dilation
    xp = np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    win = sliding_window_view(xp, span, axis=(1, 2))
    return win[:, ::sh, ::sw, :, ::dh, ::dw]


def conv2d(x, kernel, bias=None, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    win = _windows(x, kernel.shape[:2], strides, padding, dilation)
    y = np.einsum("nhwcij,ijco->nhwo", win, kernel)
    return y if bias is None else y + np.asarray(bias, np.float64)


def conv2d_grads(dy, x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """(dx, dkernel, dbias) of sum(conv2d(x, kernel, bias) * dy)."""
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    KH, KW = kernel.shape[:2]
    (sh, sw), (dh, dw) = strides, dilation
    win = _windows(x, (KH, KW), strides, padding, dilation)
    dkernel = np.einsum("nhwcij,nhwo->ijco", win, dy)
    dbias = dy.sum(axis=(0, 1, 2))
    # Each kernel tap (i, j) sends dy @ kernel[i, j].T back to the input cells it read.
    (top, bottom), (left, right) = padding
    N, H, W, C = x.shape
    OH, OW = dy.shape[1:3]
    dxp = np.zeros((N, H + top + bottom, W + left + right, C))
    for i in range(KH):
        for j in range(KW):
            rows = slice(i * dh, i * dh + sh * (OH - 1) + 1, sh)
            cols = slice(j * dw, j * dw + sw * (OW - 1) + 1, sw)
            dxp[:, rows, cols, :] += np.einsum("nhwo,co->nhwc", dy, kernel[i, j])
    dx = dxp[:, top : top + H, left : left + W, :]
    return dx, dkernel, dbias


def _full_transposed(x_shape, kernel_shape, strides, padding, output_padding, dilation):
    """Sizes of the uncropped output of a transposed convolution, with room for the
    output padding, and of the cropped output (OH, OW)."""
    (_, H, W, _), (KH, KW, _, _) = x_shape, kernel_shape
    (sh, sw), (dh, dw), (oph, opw) = strides, dilation, output_padding
    (top, bottom), (left, right) = padding
    full_h, full_w = (H - 1) * sh + dh * (KH - 1) + 1, (W - 1) * sw + dw * (KW - 1) + 1
    return (full_h + oph, full_w + opw), (full_h - top - bottom + oph, full_w - left - right + opw)


def conv2d_transpose(x, kernel, bias=None, strides=(1, 1), padding=((0, 0), (0, 0)),
                     output_padding=(0, 0), dilation=(1, 1)):  # fmt: skip
    """x (N, H, W, C), kernel (KH, KW, OC, C): each input pixel (h, w) adds x[n, h, w] @
    kernel[i, j].T at row h * sh + i * dh and column w * sw + j * dw of the full output,
    which is then cropped by padding (and extended by output_padding)."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    N, H, W, _ = x.shape
    KH, KW, OC, _ = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    (fh, fw), (OH, OW) = _full_transposed(x.shape, kernel.shape, strides, padding,
                                          output_padding, dilation)  # fmt: skip
    full = np.zeros((N, fh, fw, OC))
    for i in range(KH):
        for j in range(KW):
            full[:, i * dh : i * dh + sh * (H - 1) + 1 : sh, j * dw : j * dw + sw * (W - 1) + 1 : sw] += (
                np.einsum("nhwc,oc->nhwo", x, kernel[i, j])
            )  # fmt: skip
    (top, _), (left, _) = padding
    y = full[:, top : top + OH, left : left + OW]
    return y if bias is None else y + np.asarray(bias, np.float64)


def conv2d_transpose_grads(dy, x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)),
                           output_padding=(0, 0), dilation=(1, 1)):  # fmt: skip
    """(dx, dkernel, dbias) of sum(conv2d_transpose(x, kernel, bias) * dy): dy put back
    into the full output, then each tap reads the cells it wrote."""
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    kernel = np.asarray(kernel, np.float64)
    N, H, W, _ = x.shape
    KH, KW, OC, _ = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    (fh, fw), (OH, OW) = _full_transposed(x.shape, kernel.shape, strides, padding,
                                          output_padding, dilation)  # fmt: skip
    (top, _), (left, _) = padding
    full = np.zeros((N, fh, fw, OC))
    full[:, top : top + OH, left : left + OW] = dy
    dx, dkernel = np.zeros_like(x), np.zeros_like(kernel)
    for i in range(KH):
        for j in range(KW):
            tap = full[
                :, i * dh : i * dh + sh * (H - 1) + 1 : sh, j * dw : j * dw + sw * (W - 1) + 1 : sw
            ]
            dx += np.einsum("nhwo,oc->nhwc", tap, kernel[i, j])
            dkernel[i, j] = np.einsum("nhwo,nhwc->oc", tap, x)
    return dx, dkernel, dy.sum(axis=(0, 1, 2))


def depthwise_conv2d(x, kernel, bias=None, strides=(1, 1), padding=((0, 0), (0, 0)),
                     dilation=(1, 1)):  # fmt: skip
    """x (N, H, W, C), kernel (KH, KW, C, M) -> y (N, OH, OW, C*M): y[..., c*M + m] is the
    sum over the window of x[..., c] * kernel[i, j, c, m] (+ bias[c*M + m])."""
    x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    _, _, C, M = kernel.shape
    win = _windows(x, kernel.shape[:2], strides, padding, dilation)
    y = np.einsum("nhwcij,ijcm->nhwcm", win, kernel)
    y = y.reshape(*y.shape[:3], C * M)
    return y if bias is None else y + np.asarray(bias, np.float64)


def depthwise_as_conv2d_kernel(kernel):
    """The (KH, KW, C, C*M) kernel of the ordinary convolution a depthwise one is: zero
    but where input channel c meets its own outputs c*M .. c*M + M - 1."""
    kernel = np.asarray(kernel, np.float64)
    KH, KW, C, M = kernel.shape
    dense = np.zeros((KH, KW, C, C, M))
    c = np.arange(C)
    dense[:, :, c, c] = kernel
    return dense.reshape(KH, KW, C, C * M)


def depthwise_conv2d_grads(dy, x, kernel, strides=(1, 1), padding=((0, 0), (0, 0)),
                           dilation=(1, 1)):  # fmt: skip
    """(dx, dkernel, dbias) of sum(depthwise_conv2d(x, kernel, bias) * dy): conv2d_grads of
    the equivalent ordinary convolution, its kernel gradient read back on the diagonal."""
    KH, KW, C, M = np.shape(kernel)
    dx, dense, dbias = conv2d_grads(dy, x, depthwise_as_conv2d_kernel(kernel), strides,
                                    padding, dilation)  # fmt: skip
    c = np.arange(C)
    return dx, dense.reshape(KH, KW, C, C, M)[:, :, c, c], dbias
