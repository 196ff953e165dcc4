"""Image resampling, channels-last ``(N, H, W, C)``, with gradients: upsampling by
integer factors (Keras' UpSampling2D), flips, affine transforms (rotation, translation,
zoom) and resizing (the augmentation layers and the explanations' heat maps).

Coordinates follow Keras 3's ``ops.image.affine_transform``: a transform
``[a0, a1, a2, b0, b1, b2, c0, c1]`` sends the output pixel at column x, row y to the
input point ``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)``, ``k = c0 x + c1 y + 1``
(column, row), where the input is sampled by ``"nearest"`` (rounding half away from
zero) or ``"bilinear"`` interpolation. Points outside the input are read as
``fill_mode`` says, with JAX's ``map_coordinates`` modes (which Keras uses):

- ``"constant"``: ``(k k k k | a b c d | k k k k)``, k = ``fill_value``, per tap of the
  interpolation (an edge pixel blends with k);
- ``"nearest"``: ``(a a a a | a b c d | d d d d)``;
- ``"reflect"``: ``(d c b a | a b c d | d c b a)``;
- ``"wrap"``: ``(a b c d | a b c d | a b c d)``.

Every output pixel is a weighted sum of input pixels, so the gradient scatters the
output's gradient back with the same weights.
"""

from __future__ import annotations

import numpy as np

from dlcore.tensor import as_tensor, record

__all__ = ["FILL_MODES", "INTERPOLATIONS", "affine_transform", "flip", "resize", "upsample2d"]

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def _images(images, fn):
    x = as_tensor(images)
    if x.ndim != 4:
        raise ValueError(
            f"{fn}: images must be (batch, height, width, channels), got shape {x.shape}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: images must be float32 or float64, got {x.dtype}")
    return x


def _check_modes(interpolation, fill_mode, fn):
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"{fn}: interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}"
        )
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{fn}: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")


def _fold(index, size, fill_mode):
    """An index of any integer into [0, size) as ``fill_mode`` extends the axis
    (``constant`` clamps: its taps outside are weighted by the fill value instead)."""
    if fill_mode == "wrap":
        return index % size
    if fill_mode == "reflect":  # JAX's reflect: a triangle wave over half-pixel steps
        return (np.abs((2 * index + 1 + 2 * size) % (4 * size) - 2 * size) - 1) // 2
    return np.clip(index, 0, size - 1)


def _taps(coordinate, size, interpolation, fill_mode):
    """[(index, weight)] along one axis: the input positions an output reads, each
    with its interpolation weight (zero for a ``constant`` tap outside the input)."""
    if interpolation == "nearest":
        nearest = np.sign(coordinate) * np.floor(np.abs(coordinate) + 0.5)
        nodes = [(nearest.astype(np.int64), np.ones_like(coordinate))]
    else:
        lower = np.floor(coordinate)
        upper_weight = coordinate - lower
        lower = lower.astype(np.int64)
        nodes = [(lower, 1 - upper_weight), (lower + 1, upper_weight)]
    taps = []
    for index, weight in nodes:
        if fill_mode == "constant":
            weight = weight * ((index >= 0) & (index < size))
        taps.append((_fold(index, size, fill_mode), weight))
    return taps


def _resample(x, rows, cols, interpolation, fill_mode, fill_value, name):
    """Samples x (N, H, W, C) at the input points (rows, cols), each (N, OH, OW)."""
    N, H, W, C = x.shape
    data = x.data.reshape(N * H * W, C)
    base = (np.arange(N) * (H * W)).reshape(N, 1, 1)
    taps = []
    for r, wr in _taps(rows, H, interpolation, fill_mode):
        for c, wc in _taps(cols, W, interpolation, fill_mode):
            taps.append((base + r * W + c, (wr * wc).astype(x.dtype, copy=False)))
    out = np.zeros((*rows.shape, C), x.dtype)
    inside = np.zeros(rows.shape, x.dtype) if fill_mode == "constant" and fill_value else None
    for flat, weight in taps:
        out += data[flat] * weight[..., None]
        if inside is not None:
            inside += weight
    if inside is not None:  # the share of each output read from outside the input
        out += (1 - inside)[..., None] * x.dtype.type(fill_value)

    def backward(g):
        grad = g[0].reshape(-1, C)
        dx = np.zeros((N * H * W, C), x.dtype)
        for flat, weight in taps:
            contribution = grad * weight.reshape(-1, 1)
            for ch in range(C):
                dx[:, ch] += np.bincount(flat.ravel(), contribution[:, ch], minlength=N * H * W)
        return (dx.reshape(x.shape),)

    return record(out, (x,), backward, name)


def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0):  # fmt: skip
    """Each image resampled through its transform (see the module's docstring).

    images: (N, H, W, C) floats. transform: (8,) for every image, or (N, 8).
    Returns (N, H, W, C), differentiable with respect to the images.
    """
    x = _images(images, "affine_transform")
    _check_modes(interpolation, fill_mode, "affine_transform")
    t = np.asarray(transform, dtype=x.dtype)
    N, H, W, _ = x.shape
    if t.shape not in ((8,), (N, 8)):
        raise ValueError(
            f"affine_transform: transform must be (8,) or (batch, 8) = ({N}, 8), got shape {t.shape}"
        )
    t = np.broadcast_to(t, (N, 8))
    a0, a1, a2, b0, b1, b2, c0, c1 = (t[:, i].reshape(N, 1, 1) for i in range(8))
    y, x_ = np.meshgrid(np.arange(H, dtype=x.dtype), np.arange(W, dtype=x.dtype), indexing="ij")
    k = c0 * x_ + c1 * y + 1
    cols = (a0 * x_ + a1 * y + a2) / k
    rows = (b0 * x_ + b1 * y + b2) / k
    return _resample(x, rows, cols, interpolation, fill_mode, fill_value, "affine_transform")


def resize(images, size, interpolation="bilinear"):
    """Images resized to ``size`` = (height, width), pixel centres aligned (as
    ``tf.image.resize`` and ``jax.image.resize`` without antialiasing); the edges extend
    as ``"nearest"``. Differentiable with respect to the images."""
    x = _images(images, "resize")
    _check_modes(interpolation, "nearest", "resize")
    try:
        OH, OW = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"resize: size must be (height, width), got {size!r}") from None
    if OH < 1 or OW < 1:
        raise ValueError(f"resize: size must be positive, got {size!r}")
    N, H, W, _ = x.shape
    rows = (np.arange(OH, dtype=x.dtype) + 0.5) * (H / OH) - 0.5
    cols = (np.arange(OW, dtype=x.dtype) + 0.5) * (W / OW) - 0.5
    rows, cols = (np.broadcast_to(a, (N, OH, OW)) for a in np.meshgrid(rows, cols, indexing="ij"))
    return _resample(x, rows, cols, interpolation, "nearest", 0.0, "resize")


def flip(images, axis, where=None):
    """``images`` reversed along ``axis`` (an int or a tuple of them); with ``where``
    (one bool per sample), only those samples, the others as they are."""
    x = as_tensor(images)
    if where is None:
        return record(np.flip(x.data, axis).copy(), (x,), lambda g: (np.flip(g[0], axis),), "flip")
    mask = np.asarray(where, dtype=bool).reshape(-1)
    if mask.shape[0] != x.shape[0]:
        raise ValueError(
            f"flip: where must hold one bool per sample ({x.shape[0]}), got {mask.shape[0]}"
        )
    mask = mask.reshape((-1,) + (1,) * (x.ndim - 1))
    return record(np.where(mask, np.flip(x.data, axis), x.data), (x,),
                  lambda g: (np.where(mask, np.flip(g[0], axis), g[0]),), "flip")  # fmt: skip


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
