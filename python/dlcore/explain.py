"""Explanations of a model's decisions through its gradients, for Sequential,
functional and subclassed models:

- :func:`saliency`: the gradient of the explained output with respect to the input;
- :func:`smoothgrad`: the saliency averaged over noisy copies of the input;
- :func:`integrated_gradients`: ``(x - baseline)`` times the gradient averaged along the
  straight path from the baseline to x (attributions that sum to
  ``f(x) - f(baseline)`` up to the quadrature's error, which shrinks with ``steps``);
- :func:`grad_cam`: a heat map per image from a named convolutional layer's outputs,
  weighted by the spatial mean of their gradients (Selvaraju et al., 2017);
- :func:`save_overlay`: heat maps over their images, saved as a PNG (matplotlib, the
  ``plot`` extra).

The explained output is the model's output at ``target``: an index of its last axis
(one for all samples, or one per sample), each sample's arg-max by default. Models run
in inference (dropout and augmentation off). The noisy copies and the path's points
of all samples run as one batch (in chunks of ``batch_size`` rows when given), so the
kernels see large batches and Python loops over neither samples nor steps. The
model's weights are left as they were, gradients included.
"""

from __future__ import annotations

import contextlib

import numpy as np

from dlcore import functional as F
from dlcore.random import generator
from dlcore.tensor import Tensor, enable_grad

__all__ = ["grad_cam", "integrated_gradients", "saliency", "save_overlay", "smoothgrad"]


# ---------------------------------------------------------------- the one gradient


def _inputs(x, fn):
    array = np.asarray(x.data if isinstance(x, Tensor) else x)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{fn}: x must be numeric, got dtype {array.dtype}")
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(
            f"{fn}: x must be a non-empty batch (samples, ...), got shape {array.shape}"
        )
    return array.astype(np.float64 if array.dtype == np.float64 else np.float32)


@contextlib.contextmanager
def _frozen(model):
    """The model's weights without gradients for the duration: none are computed for
    them (nor accumulated into their ``.grad``)."""
    weights = model.weights
    flags = [w.requires_grad for w in weights]
    for w in weights:
        w.requires_grad = False
    try:
        yield
    finally:
        for w, flag in zip(weights, flags):
            w.requires_grad = flag


def _selection(out, target, fn):
    """The output's one-hot gradient seed selecting ``target`` per row, and the targets."""
    if isinstance(out, (list, tuple, dict)):
        raise ValueError(f"{fn}: the model must have one output, it has {len(out)}")
    scores = out.data.reshape(out.shape[0], -1)
    n, k = scores.shape
    if target is None:
        target = scores.argmax(axis=1)
    target = (
        np.broadcast_to(np.asarray(target), (n,)) if np.ndim(target) == 0 else np.asarray(target)
    )
    if target.shape != (n,) or target.dtype.kind not in "iu":
        raise ValueError(
            f"{fn}: target must be an int or {n} ints (one per sample), got {target!r}"
        )
    if target.min() < 0 or target.max() >= k:
        raise ValueError(f"{fn}: target must be in [0, {k}) (the model's outputs), got {target}")
    seed = np.zeros_like(scores)
    seed[np.arange(n), target] = 1
    return seed.reshape(out.shape), target


def _gradients(model, x, target, fn, batch_size=None, layer=None):
    """d output[target] / d x for a batch (rows of ``target`` per row of x), in chunks of
    ``batch_size`` rows; with ``layer``, the gradient with respect to that layer's
    output instead, returned with the output itself."""
    size = len(x) if batch_size is None else batch_size
    if target is not None and np.ndim(target) == 0:
        target = np.full(len(x), target)
    if not model.built:  # its weights made now, before they are frozen
        model(Tensor(x[:1]), training=False)
    grads, activations = [], []
    with _frozen(model), enable_grad():
        for start in range(0, len(x), size):
            rows = slice(start, start + size)
            inputs = Tensor(x[rows], requires_grad=layer is None)
            with _captured(model, layer, fn) as captured:
                out = model(inputs, training=False)
            seed, _ = _selection(out, None if target is None else target[rows], fn)
            if not out.requires_grad:
                raise ValueError(f"{fn}: the model's output does not depend on its input")
            out.backward(seed)
            held = inputs if layer is None else captured[0]
            grads.append(held.grad if held.grad is not None else np.zeros_like(held.data))
            activations.append(held.data)
    return np.concatenate(grads), np.concatenate(activations)


@contextlib.contextmanager
def _captured(model, layer, fn):
    """Yields a list that holds ``layer``'s output, made a leaf of the graph (so its
    gradient is kept), after the model's call."""
    captured = []
    if layer is None:
        yield captured
        return
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        if not isinstance(out, Tensor):
            raise ValueError(f"{fn}: layer {layer.name!r} must have one output")
        leaf = Tensor(out.data, requires_grad=True)
        captured.append(leaf)
        return leaf

    layer.call = call  # this instance only, for this call
    try:
        yield captured
    finally:
        del layer.call
    if len(captured) != 1:
        raise ValueError(
            f"{fn}: layer {layer.name!r} ran {len(captured)} times in the model's call; "
            f"it must run once"
        )


def _targets(model, x, target, fn):
    """Per-sample targets, the arg-max of the model's output at x by default."""
    if target is not None and np.ndim(target) == 0:
        return np.full(len(x), target)
    if target is not None:
        return np.asarray(target)
    out = model(Tensor(x), training=False)
    return _selection(out, None, fn)[1]


def _batch_size(batch_size, fn):
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"{fn}: batch_size must be a positive int or None, got {batch_size!r}")
    return batch_size


# ---------------------------------------------------------------- the methods


def saliency(model, x, target=None, batch_size=None):
    """The gradient of the explained output with respect to each input, an array like
    x (its absolute value is the usual saliency map)."""
    x = _inputs(x, "saliency")
    return _gradients(model, x, target, "saliency", _batch_size(batch_size, "saliency"))[0]


def smoothgrad(model, x, target=None, samples=50, noise=0.15, seed=None, batch_size=None):
    """The gradient averaged over ``samples`` noisy copies of each input (Smilkov et
    al., 2017): Gaussian noise with a standard deviation of ``noise`` times the range
    (max - min) of that input. ``seed`` makes the noise repeatable (without one it
    comes from dlcore's generator, :func:`dlcore.set_random_seed`)."""
    fn = "smoothgrad"
    x = _inputs(x, fn)
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"{fn}: samples must be a positive int, got {samples!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"{fn}: noise must be a number >= 0, got {noise!r}")
    target = _targets(model, x, target, fn)
    rng = generator() if seed is None else np.random.default_rng(seed)
    n, shape = len(x), x.shape[1:]
    flat = x.reshape(n, -1)
    sigma = (noise * (flat.max(axis=1) - flat.min(axis=1))).reshape((1, n) + (1,) * len(shape))
    noisy = (x[None] + rng.standard_normal((samples, *x.shape)) * sigma).astype(x.dtype)
    grads, _ = _gradients(model, noisy.reshape(samples * n, *shape), np.tile(target, samples), fn,
                          _batch_size(batch_size, fn))  # fmt: skip
    return grads.reshape(samples, *x.shape).mean(axis=0)


def integrated_gradients(model, x, target=None, baseline=None, steps=50, batch_size=None):
    """Integrated Gradients (Sundararajan et al., 2017): ``(x - baseline)`` times the
    gradient averaged over ``steps`` points of the path from the baseline to x (the
    midpoints of equal steps; the sum's error falls as 1 / steps**2 for smooth models).

    baseline: an array like one input or like x; zeros by default.
    """
    fn = "integrated_gradients"
    x = _inputs(x, fn)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{fn}: steps must be a positive int, got {steps!r}")
    if baseline is None:
        baseline = np.zeros_like(x)
    baseline = np.asarray(baseline, dtype=x.dtype)
    if baseline.shape not in (x.shape, x.shape[1:]):
        raise ValueError(
            f"{fn}: baseline must be shaped like one input {x.shape[1:]} or like x {x.shape}, "
            f"got {baseline.shape}"
        )
    baseline = np.broadcast_to(baseline, x.shape)
    target = _targets(model, x, target, fn)
    alphas = ((np.arange(steps) + 0.5) / steps).astype(x.dtype).reshape((steps,) + (1,) * x.ndim)
    path = baseline[None] + alphas * (x - baseline)[None]  # (steps, N, ...)
    grads, _ = _gradients(model, path.reshape(-1, *x.shape[1:]), np.tile(target, steps), fn,
                          _batch_size(batch_size, fn))  # fmt: skip
    return (x - baseline) * grads.reshape(steps, *x.shape).mean(axis=0)


def grad_cam(model, x, layer, target=None, batch_size=None):
    """Grad-CAM heat maps (N, H, W) for images x (N, H, W, C): the named layer's output
    channels (N, h, w, k) weighted by the spatial mean of their gradients, summed, kept
    where positive, resized (bilinear) to the images' height and width and scaled so
    each map's maximum is 1 (an all-zero map stays zero).

    layer: the name of a layer of the model (or the layer) whose output is (N, h, w, k),
    usually the last convolution.
    """
    fn = "grad_cam"
    x = _inputs(x, fn)
    if x.ndim != 4:
        raise ValueError(f"{fn}: x must be images (batch, height, width, channels), got {x.shape}")
    if isinstance(layer, str):
        layer = model.get_layer(layer)
    elif layer not in model.layers:
        raise ValueError(
            f"{fn}: layer must be the name of one of {model.name}'s layers, got {layer!r}"
        )
    grads, maps = _gradients(model, x, target, fn, _batch_size(batch_size, fn), layer=layer)
    if maps.ndim != 4:
        raise ValueError(
            f"{fn}: layer {layer.name!r} has outputs of shape {maps.shape}; Grad-CAM needs "
            f"feature maps (batch, height, width, channels)"
        )
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((weights * maps).sum(axis=3, keepdims=True), 0)
    cam = F.resize(cam, x.shape[1:3]).data[..., 0]
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


# ---------------------------------------------------------------- pictures


def save_overlay(path, images, heatmaps, alpha=0.45, cmap="jet", titles=None, columns=8):
    """Saves a PNG of each heat map over its image, a grid of ``columns`` per row.

    images: (N, H, W), (N, H, W, 1) or (N, H, W, 3), or one image without the batch
    axis; heatmaps: (N, H, W) (e.g. :func:`grad_cam`'s, or the absolute saliency
    summed over channels), or one. Each is scaled to [0, 1] for display.
    titles: a string per image, or None. Needs matplotlib (``pip install dlcore[plot]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("save_overlay needs matplotlib: pip install 'dlcore[plot]'") from None
    images, heatmaps = np.asarray(images, dtype=np.float64), np.asarray(heatmaps, dtype=np.float64)
    if heatmaps.ndim == 2:
        images, heatmaps = images[None], heatmaps[None]
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if heatmaps.ndim != 3 or images.shape[:3] != heatmaps.shape or images.ndim not in (3, 4):
        raise ValueError(
            f"save_overlay: images (N, H, W[, 1 or 3]) and heatmaps (N, H, W) must match, got "
            f"{images.shape} and {heatmaps.shape}"
        )
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"save_overlay: {len(images)} images but {len(titles)} titles")

    def unit(a):
        flat = a.reshape(len(a), -1)
        low = flat.min(axis=1).reshape((-1,) + (1,) * (a.ndim - 1))
        span = np.ptp(flat, axis=1).reshape(low.shape)
        return np.divide(a - low, span, out=np.zeros_like(a), where=span > 0)

    images, heatmaps = unit(images), unit(heatmaps)
    n = len(images)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray" if images.ndim == 3 else None)
        ax.imshow(heatmaps[i], cmap=cmap, alpha=alpha)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
