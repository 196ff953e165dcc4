"""Max-pool 2-D, channels-last, in plain NumPy: each window's cells in scan order (kh,
then kw), padding left out; the first NaN wins, else the first maximum."""

import numpy as np


def maxpool2d(x, pool_size=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0))):
    """(y, argmax) with argmax the flat C-order index into x."""
    x = np.asarray(x)
    N, H, W, C = x.shape
    (ph, pw), (sh, sw) = pool_size, strides
    (top, bottom), (left, right) = padding
    OH = (H + top + bottom - ph) // sh + 1
    OW = (W + left + right - pw) // sw + 1
    y = np.empty((N, OH, OW, C), x.dtype)
    argmax = np.empty((N, OH, OW, C), np.int64)
    n_idx, c_idx = np.arange(N)[:, None], np.arange(C)[None, :]
    for oh in range(OH):
        for ow in range(OW):
            cells = [(oh * sh - top + i, ow * sw - left + j) for i in range(ph) for j in range(pw)]
            cells = [(h, w) for h, w in cells if 0 <= h < H and 0 <= w < W]
            vals = np.stack([x[:, h, w, :] for h, w in cells])  # (cells, N, C)
            nan = np.isnan(vals)
            pick = np.where(nan.any(0), nan.argmax(0), np.where(nan, -np.inf, vals).argmax(0))
            y[:, oh, ow, :] = np.take_along_axis(vals, pick[None], 0)[0]
            h = np.array([cells[k][0] for k in pick.ravel()]).reshape(pick.shape)
            w = np.array([cells[k][1] for k in pick.ravel()]).reshape(pick.shape)
            argmax[:, oh, ow, :] = ((n_idx * H + h) * W + w) * C + c_idx
    return y, argmax


def maxpool2d_backward(dy, argmax, x_shape):
    dx = np.zeros(x_shape, np.float64)
    np.add.at(
        dx.reshape(-1), np.asarray(argmax).reshape(-1), np.asarray(dy, np.float64).reshape(-1)
    )
    return dx
