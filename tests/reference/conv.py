"""Conv2D, channels-last, in plain NumPy (float64): windows from sliding_window_view,
products from einsum. x (N, H, W, C), kernel (KH, KW, C, OC), padding ((t, b), (l, r))."""

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
