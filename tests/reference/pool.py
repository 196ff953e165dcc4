"""Pooling, channels-last, in plain NumPy. Max-pool: each window's cells in scan order
(kh, then kw), padding left out; the first NaN wins, else the first maximum. Average
pool: the mean over a window's cells inside x. Global average pool: the mean over the
positions (those a mask keeps)."""

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


def _cells(o, stride, before, size, length):
    """The input cells of output o's window along one axis, padding left out."""
    return [i for i in range(o * stride - before, o * stride - before + size) if 0 <= i < length]


def avgpool2d(x, pool_size=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0))):
    """The mean of each window over its cells inside x (padding is not counted)."""
    x = np.asarray(x, np.float64)
    N, H, W, C = x.shape
    (ph, pw), (sh, sw) = pool_size, strides
    (top, bottom), (left, right) = padding
    OH = (H + top + bottom - ph) // sh + 1
    OW = (W + left + right - pw) // sw + 1
    y = np.empty((N, OH, OW, C))
    for oh in range(OH):
        rows = _cells(oh, sh, top, ph, H)
        for ow in range(OW):
            cols = _cells(ow, sw, left, pw, W)
            y[:, oh, ow] = x[:, rows][:, :, cols].mean(axis=(1, 2))
    return y


def avgpool2d_backward(dy, x_shape, pool_size=(2, 2), strides=(2, 2), padding=((0, 0), (0, 0))):
    dy = np.asarray(dy, np.float64)
    N, H, W, C = x_shape
    (ph, pw), (sh, sw) = pool_size, strides
    (top, _), (left, _) = padding
    dx = np.zeros(x_shape)
    for oh in range(dy.shape[1]):
        rows = _cells(oh, sh, top, ph, H)
        for ow in range(dy.shape[2]):
            cols = _cells(ow, sw, left, pw, W)
            share = dy[:, oh, ow] / (len(rows) * len(cols))
            for h in rows:
                for w in cols:
                    dx[:, h, w] += share
    return dx


def global_avgpool(x, mask=None):
    """(N, ..., C) -> (N, C): the mean over the positions a mask (N, ...) keeps (all
    without one); NaN where it keeps none."""
    x = np.asarray(x, np.float64)
    N, C = x.shape[0], x.shape[-1]
    rows = x.reshape(N, int(np.prod(x.shape[1:-1])), C)
    keep = (
        np.ones(rows.shape[:2], bool) if mask is None else np.asarray(mask).reshape(rows.shape[:2])
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(keep[..., None], rows, 0).sum(axis=1) / keep.sum(axis=1)[:, None]


def global_avgpool_backward(dy, x_shape, mask=None):
    dy = np.asarray(dy, np.float64)
    keep = np.ones((x_shape[0], int(np.prod(x_shape[1:-1]))), bool)
    if mask is not None:
        keep = np.asarray(mask).reshape(keep.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = dy / keep.sum(axis=1)[:, None]
    return np.where(keep[..., None], share[:, None, :], 0.0).reshape(x_shape)
