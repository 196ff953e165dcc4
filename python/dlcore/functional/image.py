"""Image resizing by integer factors, channels-last (N, H, W, C): nearest-neighbour and
bilinear upsampling (Keras' UpSampling2D)."""

from __future__ import annotations

import numpy as np

from dlcore.tensor import as_tensor, record

__all__ = ["INTERPOLATIONS", "upsample2d"]

INTERPOLATIONS = ("nearest", "bilinear")


def upsample2d(x, size=(2, 2), interpolation="nearest"):
    """x (N, H, W, C) -> (N, H * size[0], W * size[1], C). ``nearest`` repeats each
    pixel; ``bilinear`` interpolates between pixel centres (half-pixel offsets, the edge
    pixels extended), as ``keras.ops.image.resize`` does."""
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"upsample2d: x must be 4-D (N, H, W, C), got shape {x.shape}")
    sh, sw = size
    if interpolation == "nearest":
        return _nearest(x, sh, sw)
    if interpolation == "bilinear":
        return _bilinear(x, sh, sw)
    raise ValueError(
        f"upsample2d: interpolation must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
        f"got {interpolation!r}"
    )


def _nearest(x, sh, sw):
    N, H, W, C = x.shape
    # one copy: a broadcast view of each pixel sh x sw times, made contiguous
    y = np.broadcast_to(x.data[:, :, None, :, None, :], (N, H, sh, W, sw, C))
    y = y.reshape(N, H * sh, W * sw, C)

    def backward(g):
        return (g[0].reshape(N, H, sh, W, sw, C).sum(axis=(2, 4)),)

    return record(y, (x,), backward, "upsample2d")


def linear_weights(n, factor, dtype):
    """(n * factor, n): row i holds the weights of output position i on the inputs, from
    the source coordinate (i + 1/2) / factor - 1/2 clamped to the edge pixels."""
    out = np.arange(n * factor)
    src = np.clip((out + 0.5) / factor - 0.5, 0, n - 1)
    low = np.floor(src).astype(np.int64)
    high = np.minimum(low + 1, n - 1)
    frac = src - low
    weights = np.zeros((n * factor, n))
    np.add.at(weights, (out, low), 1 - frac)
    np.add.at(weights, (out, high), frac)
    return weights.astype(dtype)


def _bilinear(x, sh, sw):
    N, H, W, C = x.shape
    rows, cols = linear_weights(H, sh, x.dtype), linear_weights(W, sw, x.dtype)
    OH, OW = H * sh, W * sw
    # rows (OH, H) mixes image rows, then cols (OW, W) columns: two batched products
    tall = np.matmul(rows, x.data.reshape(N, H, W * C))
    y = np.matmul(cols, tall.reshape(N * OH, W, C)).reshape(N, OH, OW, C)

    def backward(g):
        d_tall = np.matmul(cols.T, g[0].reshape(N * OH, OW, C)).reshape(N, OH, W * C)
        return (np.matmul(rows.T, d_tall).reshape(N, H, W, C),)

    return record(y, (x,), backward, "upsample2d")
