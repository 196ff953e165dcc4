"""Normalisation over one axis, on the fused C++ kernels: batch norm (statistics per
channel over everything else) and layer norm (statistics per sample over its features).

The kernels normalise the last axis; another axis is moved there and back with
differentiable transposes, so the gradients need no case of their own.
"""

from __future__ import annotations

import math

import numpy as np

from dlcore import ops
from dlcore.tensor import Tensor, as_tensor, record

from .reductions import sum as _sum
from .shape import reshape, transpose

__all__ = ["batch_norm", "layer_norm"]

_MASK_EPSILON = 1e-7  # Keras' backend.epsilon(), added to a masked batch's weight


def _axes(axis, ndim, fn):
    """``axis`` (an int or a list of ints) as sorted non-negative axes of an ndim array."""
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    ok = items and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) and -ndim <= a < ndim
        for a in items
    )
    if not ok or len({a % ndim for a in items}) != len(items):
        raise ValueError(
            f"{fn}: axis {axis!r} is not one (or a list of distinct) axes of an input "
            f"with {ndim} dimensions"
        )
    return sorted(int(a) % ndim for a in items)


def _move_to_end(x, axes):
    """x with ``axes`` moved last (in order) and flattened into one; and a function that
    undoes it on a result of the same layout."""
    ndim = x.ndim
    others = [i for i in range(ndim) if i not in axes]
    perm = others + axes
    moved = perm != list(range(ndim))
    xt = transpose(x, perm) if moved else x
    kept = tuple(xt.shape[: len(others)])
    flat = reshape(xt, (*kept, math.prod(xt.shape[len(others) :])))
    moved_shape = xt.shape

    def restore(y):
        y = reshape(y, moved_shape)
        return transpose(y, tuple(np.argsort(perm))) if moved else y

    return flat, restore


def _parameters(*tensors):
    """The given (not None) affine parameters as Tensors, with their arrays."""
    ts = [None if t is None else as_tensor(t) for t in tensors]
    return ts, [None if t is None else t.data for t in ts]


def _data(t):
    return t.data if isinstance(t, Tensor) else np.asarray(t)


def _normalize_last(kind, x, gamma, beta, forward, backward_kernel):
    """Records y = forward(x, gamma, beta) over the last axis; backward_kernel(dy, need)
    -> (dx, dgamma, dbeta). Absent parameters take no part in the graph."""
    (g, b), (gd, bd) = _parameters(gamma, beta)
    inputs = [x] + [t for t in (g, b) if t is not None]
    y = forward(x.data, gd, bd)

    def backward(grads):
        need = dict(
            need_dx=x.requires_grad,
            need_dgamma=g is not None and g.requires_grad,
            need_dbeta=b is not None and b.requires_grad,
        )
        dx, dg, db = backward_kernel(grads[0], gd, need)
        out = [dx]
        if g is not None:
            out.append(dg)
        if b is not None:
            out.append(db)
        return tuple(out)

    return record(y, tuple(inputs), backward, kind)


def batch_norm(
    x,
    moving_mean=None,
    moving_variance=None,
    gamma=None,
    beta=None,
    *,
    training=False,
    momentum=0.99,
    epsilon=1e-3,
    axis=-1,
    mask=None,
):
    """Batch normalisation over ``axis`` (Keras' ``BatchNormalization``).

    In training, the statistics are the batch's: the mean and biased variance of each
    channel over every other axis, and ``moving_mean`` / ``moving_variance`` (Tensors or
    arrays, updated in place when given) move toward them: ``moving = moving * momentum
    + batch * (1 - momentum)``. In inference, the moving statistics normalise. ``gamma``
    and ``beta`` (C,) may be None (a scale of 1, an offset of 0). ``mask`` (x's shape
    without the last axis; True: a real position) restricts the training statistics to
    the real positions, as Keras does.
    """
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError("batch_norm: x is a scalar; expected an array with a channel axis")
    (axis,) = _axes(axis, x.ndim, "batch_norm")
    if not training and (moving_mean is None or moving_variance is None):
        raise ValueError("batch_norm: inference mode needs moving_mean and moving_variance")
    if training and mask is not None:
        return _masked_batch_norm(x, moving_mean, moving_variance, gamma, beta, momentum,
                                  epsilon, axis, np.asarray(_data(mask), bool))  # fmt: skip
    if axis != x.ndim - 1:
        flat, restore = _move_to_end(x, [axis])
        y = batch_norm(flat, moving_mean, moving_variance, gamma, beta, training=training,
                       momentum=momentum, epsilon=epsilon)  # fmt: skip
        return restore(y)
    if not training:
        return _batch_norm_inference(x, _data(moving_mean), _data(moving_variance), gamma,
                                     beta, epsilon)  # fmt: skip
    stats = {}

    def forward(xd, gd, bd):
        y, stats["mean"], stats["variance"], stats["inv_std"] = ops.batch_norm_forward(
            xd, gd, bd, epsilon=epsilon
        )
        return y

    def backward_kernel(dy, gd, need):
        return ops.batch_norm_backward(dy, x.data, stats["mean"], stats["inv_std"], gd,
                                       training=True, **need)  # fmt: skip

    y = _normalize_last("batch_norm", x, gamma, beta, forward, backward_kernel)
    _update_moving(moving_mean, moving_variance, stats["mean"], stats["variance"], momentum)
    return y


def _batch_norm_inference(x, mean, variance, gamma, beta, epsilon):
    def forward(xd, gd, bd):
        return ops.batch_norm_inference(xd, mean, variance, gd, bd, epsilon=epsilon)

    def backward_kernel(dy, gd, need):
        # constant statistics: dx = gamma dy / sqrt(variance + epsilon)
        inv_std = (1.0 / np.sqrt(variance.astype(np.float64) + epsilon)).astype(x.dtype)
        return ops.batch_norm_backward(dy, x.data, mean, inv_std, gd, training=False, **need)

    return _normalize_last("batch_norm", x, gamma, beta, forward, backward_kernel)


def _update_moving(moving_mean, moving_variance, mean, variance, momentum):
    """Keras' update, in the moving statistics' own dtype (their arrays are written)."""
    for moving, batch in ((moving_mean, mean), (moving_variance, variance)):
        if moving is None:
            continue
        m = _data(moving)
        # computed aside, then written: a reader in another thread sees old or new values
        new = m * m.dtype.type(momentum)
        new += batch.astype(m.dtype) * m.dtype.type(1.0 - momentum)
        m[...] = new


def _masked_batch_norm(x, moving_mean, moving_variance, gamma, beta, momentum, epsilon, axis,
                       mask):  # fmt: skip
    """Training statistics over the positions the mask keeps (Keras' weighted moments),
    in differentiable Tensor ops: the rare path, so it needs no kernel."""
    if mask.ndim != x.ndim - 1 or mask.shape != x.shape[: mask.ndim]:
        raise ValueError(
            f"batch_norm: the mask has shape {mask.shape}; expected the inputs' shape "
            f"without the last axis, {x.shape[:-1]}"
        )
    weights = np.broadcast_to(mask[..., None], x.shape).astype(x.dtype)
    axes = tuple(i for i in range(x.ndim) if i != axis)
    keep = [1] * x.ndim
    keep[axis] = x.shape[axis]
    total = weights.sum(axis=axes, keepdims=True) + x.dtype.type(_MASK_EPSILON)
    mean = _sum(x * weights, axis=axes, keepdims=True) / total
    dev = (x - mean) * weights
    variance = _sum(dev * dev, axis=axes, keepdims=True) / total
    inv = (variance + x.dtype.type(epsilon)) ** -0.5
    if gamma is not None:
        inv = inv * reshape(as_tensor(gamma), keep)
    shift = -mean * inv
    if beta is not None:
        shift = shift + reshape(as_tensor(beta), keep)
    _update_moving(moving_mean, moving_variance, mean.data.reshape(-1),
                   variance.data.reshape(-1), momentum)  # fmt: skip
    return x * inv + shift


def layer_norm(x, gamma=None, beta=None, *, axis=-1, epsilon=1e-3):
    """Layer normalisation (Keras' ``LayerNormalization``): each sample normalised by the
    mean and biased variance over ``axis`` (an int or a list of axes), then scaled by
    ``gamma`` and shifted by ``beta``, of the shape of those axes (or None)."""
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError("layer_norm: x is a scalar; expected an array with a feature axis")
    axes = _axes(axis, x.ndim, "layer_norm")
    features = tuple(x.shape[a] for a in axes)
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is not None and tuple(np.shape(_data(p))) not in (features, (math.prod(features),)):
            raise ValueError(
                f"layer_norm: {name} has shape {np.shape(_data(p))}; expected {features}, the "
                f"size of axis {axis} of inputs of shape {x.shape}"
            )
    if axes != [x.ndim - 1]:
        flat, restore = _move_to_end(x, axes)
        g = None if gamma is None else reshape(as_tensor(gamma), (-1,))
        b = None if beta is None else reshape(as_tensor(beta), (-1,))
        return restore(layer_norm(flat, g, b, epsilon=epsilon))
    stats = {}

    def forward(xd, gd, bd):
        y, stats["mean"], stats["inv_std"] = ops.layer_norm_forward(xd, gd, bd, epsilon=epsilon)
        return y

    def backward_kernel(dy, gd, need):
        return ops.layer_norm_backward(dy, x.data, stats["mean"], stats["inv_std"], gd, **need)

    return _normalize_last("layer_norm", x, gamma, beta, forward, backward_kernel)
