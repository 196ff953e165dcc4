"""Losses as differentiable functions, Keras' argument order ``(y_true, y_pred)``.

Each returns the per-sample losses reduced by ``reduction`` ('mean' by default, 'sum'
or 'none'). The cross-entropies computed on the output of a sigmoid or softmax (an
:class:`~dlcore.functional.activations.ActivatedTensor`), or with ``from_logits=True``,
work from the logits: exact for any logit, with gradient ``p - y``; otherwise from
probabilities clipped to [1e-7, 1 - 1e-7] as Keras does.
"""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore.tensor import Tensor, as_tensor, is_grad_enabled, record

from .activations import ActivatedTensor, sigmoid_array

__all__ = [
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_hinge",
    "cosine_similarity",
    "dice",
    "hinge",
    "huber",
    "kl_divergence",
    "log_cosh",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "poisson",
    "squared_hinge",
    "mean_absolute_error",
    "mean_squared_error",
    "sparse_categorical_crossentropy",
    "tversky",
]

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _reduce(per_sample, reduction):
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _record_reduced(per_sample, logits, grad_per_sample, reduction, name):
    """Records a loss computed from ``logits`` with its reduction in the same node:
    ``per_sample`` losses (any leading shape), and ``grad_per_sample(scale)`` -> the
    gradient with respect to the logits when each sample's loss has upstream gradient
    ``scale`` (an array of per_sample's shape, or a number)."""
    per_sample = per_sample.astype(logits.dtype, copy=False)
    if reduction == "none":
        return record(per_sample, (logits,), lambda g: (grad_per_sample(g[0]),), name)
    if reduction == "mean":
        n = max(per_sample.size, 1)
        value = np.asarray(per_sample.sum() / n, dtype=per_sample.dtype)
        return record(value, (logits,), lambda g: (grad_per_sample(g[0] / n),), name)
    if reduction == "sum":
        value = np.asarray(per_sample.sum(), dtype=per_sample.dtype)
        return record(value, (logits,), lambda g: (grad_per_sample(g[0]),), name)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _wants_grad(t):
    """Whether a loss on ``t`` will be differentiated: its gradient is computed with the
    loss by the fused kernels, and skipped when nothing will ask for it."""
    return t.requires_grad and is_grad_enabled()


def _scaled(g):
    """The gradient of a loss computed with its per-sample gradients ``g`` (rows along
    the last axis): g times each sample's upstream gradient ``scale``."""

    def grad(scale):
        return g * (scale[..., None] if np.ndim(scale) else scale)

    return grad


def _per_row(scale, ndim):
    """An upstream gradient per sample, broadcast over the class axis."""
    return scale[..., None] if np.ndim(scale) else scale


def _target(y_true, like):
    data = y_true.data if isinstance(y_true, Tensor) else np.asarray(y_true)
    return data.astype(like.dtype, copy=False)


def _check_same_shape(fn, y_true, y_pred):
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{fn}: y_true has shape {y_true.shape} but y_pred has shape "
            f"{y_pred.shape}; expected the same shape"
        )


def _regression_error(fn, y_true, y_pred):
    """y_pred - y_true, with (N,) targets accepted against an (N, 1) prediction."""
    y_pred = as_tensor(y_pred)
    y = _target(y_true, y_pred)
    if y.ndim == y_pred.ndim - 1:
        y = y[..., None]
    _check_same_shape(fn, y, y_pred)
    return y_pred - y


def mean_squared_error(y_true, y_pred, reduction="mean"):
    """mean((y_true - y_pred)^2) over the last axis, per sample."""
    diff = _regression_error("mean_squared_error", y_true, y_pred)
    return _reduce((diff * diff).mean(axis=-1), reduction)


def mean_absolute_error(y_true, y_pred, reduction="mean"):
    """mean(|y_true - y_pred|) over the last axis, per sample."""
    diff = _regression_error("mean_absolute_error", y_true, y_pred)
    return _reduce(diff.abs().mean(axis=-1), reduction)


def huber(y_true, y_pred, delta=1.0, reduction="mean"):
    """Huber loss over the last axis, per sample: 0.5 e^2 where |e| <= delta, else
    delta (|e| - 0.5 delta), e = y_pred - y_true; written as 0.5 q^2 + delta (|e| - q)
    with q = min(|e|, delta), which has the same value and gradient."""
    delta = float(delta)
    if not delta >= 0:
        raise ValueError(f"huber: delta must be >= 0, got {delta}")
    err = _regression_error("huber", y_true, y_pred).abs()
    quadratic = err.clip(0.0, delta)
    return _reduce((quadratic * quadratic * 0.5 + (err - quadratic) * delta).mean(axis=-1),
                   reduction)  # fmt: skip


# Keras' other regression and margin losses, each per sample over the last axis as
# Keras computes it (its backend epsilon 1e-7 where Keras has one).


def _pair(fn, y_true, y_pred):
    """(y_true as a constant of y_pred's dtype and shape, y_pred as a Tensor)."""
    y_pred = as_tensor(y_pred)
    y = _target(y_true, y_pred)
    if y.ndim == y_pred.ndim - 1 and y_pred.shape[-1:] == (1,):
        y = y[..., None]
    _check_same_shape(fn, y, y_pred)
    return y, y_pred


def mean_absolute_percentage_error(y_true, y_pred, reduction="mean"):
    """100 mean(|y_true - y_pred| / max(|y_true|, eps)) over the last axis."""
    y, p = _pair("mean_absolute_percentage_error", y_true, y_pred)
    scale = 100.0 / np.maximum(np.abs(y), EPSILON)
    return _reduce(((p - y).abs() * scale).mean(axis=-1), reduction)


def mean_squared_logarithmic_error(y_true, y_pred, reduction="mean"):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2) over the last axis."""
    y, p = _pair("mean_squared_logarithmic_error", y_true, y_pred)
    diff = (p.clip(EPSILON, np.inf) + 1.0).log() - np.log(np.maximum(y, EPSILON) + 1.0)
    return _reduce((diff * diff).mean(axis=-1), reduction)


def _hinge_labels(y):
    """Labels 0 and 1 made -1 and 1, as Keras does for the hinge losses."""
    return 2.0 * y - 1.0 if np.all((y == 0) | (y == 1)) else y


def hinge(y_true, y_pred, reduction="mean"):
    """mean(max(1 - y_true y_pred, 0)) over the last axis (labels -1/1, or 0/1)."""
    y, p = _pair("hinge", y_true, y_pred)
    return _reduce(((p * -_hinge_labels(y)) + 1.0).relu().mean(axis=-1), reduction)


def squared_hinge(y_true, y_pred, reduction="mean"):
    """mean(max(1 - y_true y_pred, 0)^2) over the last axis (labels -1/1, or 0/1)."""
    y, p = _pair("squared_hinge", y_true, y_pred)
    margin = ((p * -_hinge_labels(y)) + 1.0).relu()
    return _reduce((margin * margin).mean(axis=-1), reduction)


def categorical_hinge(y_true, y_pred, reduction="mean"):
    """max(max((1 - y_true) y_pred) - sum(y_true y_pred) + 1, 0), one-hot targets."""
    y, p = _pair("categorical_hinge", y_true, y_pred)
    positive = (p * y).sum(axis=-1)
    negative = (p * (1.0 - y)).max(axis=-1)
    return _reduce((negative - positive + 1.0).relu(), reduction)


def log_cosh(y_true, y_pred, reduction="mean"):
    """mean(log(cosh(y_pred - y_true))) over the last axis, written as
    x + softplus(-2x) - log 2 (exact for large |x|)."""
    from .activations import softplus

    y, p = _pair("log_cosh", y_true, y_pred)
    x = p - y
    return _reduce((x + softplus(x * -2.0) - float(np.log(2.0))).mean(axis=-1), reduction)


def poisson(y_true, y_pred, reduction="mean"):
    """mean(y_pred - y_true log(y_pred + eps)) over the last axis."""
    y, p = _pair("poisson", y_true, y_pred)
    return _reduce((p - (p + EPSILON).log() * y).mean(axis=-1), reduction)


def kl_divergence(y_true, y_pred, reduction="mean"):
    """sum(y_true log(y_true / y_pred)) over the last axis, both clipped to [eps, 1]."""
    y, p = _pair("kl_divergence", y_true, y_pred)
    y = np.clip(y, EPSILON, 1.0)
    return _reduce(((p.clip(EPSILON, 1.0).log() * -1.0 + np.log(y)) * y).sum(axis=-1), reduction)


def cosine_similarity(y_true, y_pred, axis=-1, reduction="mean"):
    """-sum(l2_normalize(y_true) l2_normalize(y_pred)) over ``axis`` (-1 where the two
    point the same way)."""
    y, p = _pair("cosine_similarity", y_true, y_pred)
    y = y / np.sqrt(np.maximum((y * y).sum(axis=axis, keepdims=True), 1e-12))
    norm = ((p * p).sum(axis=axis, keepdims=True)).clip(1e-12, np.inf).sqrt()
    return _reduce(((p / norm) * y).sum(axis=axis) * -1.0, reduction)


def _logits_of(y_pred, kind, from_logits):
    """The pre-activation tensor to compute a loss from, when there is one: y_pred
    itself with from_logits, else the logits of a ``kind`` activation's output."""
    if from_logits:
        return y_pred
    if isinstance(y_pred, ActivatedTensor) and y_pred.activation == kind:
        return y_pred.logits
    return None


def binary_crossentropy(y_true, y_pred, from_logits=False, reduction="mean"):
    """Binary cross-entropy, averaged over the last axis per sample.

    When y_pred came out of a sigmoid (or from_logits=True), it is computed from the
    logits z as max(z, 0) - z*y + log(1 + exp(-|z|)): exact for any z, gradient
    sigmoid(z) - y. Otherwise probabilities are clipped to [1e-7, 1 - 1e-7] as Keras does.
    """
    y_pred = as_tensor(y_pred)
    y = _target(y_true, y_pred)
    if y.ndim == y_pred.ndim - 1 and y_pred.shape[-1:] == (1,):
        y = y[..., None]
    _check_same_shape("binary_crossentropy", y, y_pred)
    if y.size and not (y.min() >= 0 and y.max() <= 1):  # NaN fails too
        raise ValueError(
            f"binary_crossentropy: y_true holds values from {y.min()} to {y.max()}; expected "
            f"targets in [0, 1] (labels 0 and 1, or probabilities)"
        )
    logits = _logits_of(y_pred, "sigmoid", from_logits)
    if logits is None:
        p = y_pred.clip(EPSILON, 1 - EPSILON)
        per_elem = -(y * p.log() + (1 - y) * (1 - p).log())
        return _reduce(per_elem.mean(axis=-1), reduction)
    z = logits.data
    per_elem = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    width = z.shape[-1] if z.ndim else 1

    def grad(scale):
        return _per_row(scale, z.ndim) * (sigmoid_array(z) - y) / width

    return _record_reduced(per_elem.mean(axis=-1), logits, grad, reduction, "bce")


def categorical_crossentropy(y_true, y_pred, from_logits=False, reduction="mean"):
    """-sum(y_true * log(p)) over the last axis, per sample; y_true one-hot (or soft).

    When y_pred came out of a softmax (or from_logits=True) it is computed from the
    logits with a log-sum-exp, gradient softmax(z) * sum(y) - y; otherwise the
    probabilities are renormalised and clipped to [1e-7, 1 - 1e-7] as Keras does.
    """
    y_pred = as_tensor(y_pred)
    y = _target(y_true, y_pred)
    _check_same_shape("categorical_crossentropy", y, y_pred)
    logits = _logits_of(y_pred, "softmax", from_logits)
    if logits is None:
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        p = p.clip(EPSILON, 1 - EPSILON)
        return _reduce(-(p.log() * y).sum(axis=-1), reduction)
    per_sample, g = ops.softmax_cross_entropy(logits.data, y, with_grad=_wants_grad(logits))
    return _record_reduced(per_sample, logits, _scaled(g), reduction, "cce")


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, reduction="mean"):
    """Categorical cross-entropy with integer class labels y_true (N,) or (N, 1)."""
    y_pred = as_tensor(y_pred)
    labels = y_true.data if isinstance(y_true, Tensor) else np.asarray(y_true)
    if labels.ndim == y_pred.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"sparse_categorical_crossentropy: y_true has shape {labels.shape}; "
            f"expected {y_pred.shape[:-1]} (one integer label per row of "
            f"y_pred {y_pred.shape})"
        )
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
            raise ValueError(
                "sparse_categorical_crossentropy: y_true must hold integer "
                "class labels; got non-integer values"
            )
        labels = labels.astype(np.int64)
    classes = y_pred.shape[-1]
    low, high = (labels.min(), labels.max()) if labels.size else (0, 0)
    if low < 0 or high >= classes:
        raise ValueError(
            f"sparse_categorical_crossentropy: labels must be in [0, {classes}), "
            f"got values in [{low}, {high}]"
        )
    logits = _logits_of(y_pred, "softmax", from_logits)
    if logits is None:
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        picked = _take_last(p, labels).clip(EPSILON, 1 - EPSILON)
        return _reduce(-picked.log(), reduction)
    # per row: logsumexp(z) - z[label]; the gradient is softmax(z) - onehot(label)
    per_sample, g = ops.sparse_softmax_cross_entropy(
        logits.data, labels, with_grad=_wants_grad(logits)
    )
    return _record_reduced(per_sample, logits, _scaled(g), reduction, "sparse_cce")


def _take_last(p, labels):
    """p[..., labels] per row, differentiable."""
    shape = p.shape

    def backward(g):
        out = np.zeros(shape, p.dtype)
        np.put_along_axis(out, labels[..., None], g[0][..., None], axis=-1)
        return (out,)

    picked = np.take_along_axis(p.data, labels[..., None], axis=-1)[..., 0]
    return record(picked, (p,), backward, "take")


# ---------------------------------------------------------------- Keras' focal and overlap losses
# Written with the Tensor's differentiable ops, each as Keras computes it (the same
# clipping to [eps, 1 - eps], the same epsilon in the ratios), so values agree with
# Keras' to float rounding. Their options are checked by the helpers below, which the
# Loss classes of dlcore.losses also call when they are made.


def number_option(value, name, owner):
    """``value`` as a float: a real number, finite (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"{owner}: {name} must be a number, got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value}")
    return value


def smoothing_option(value, owner):
    """Keras' ``label_smoothing`` as a float in [0, 1]."""
    value = number_option(value, "label_smoothing", owner)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}: label_smoothing must be in [0, 1], got {value!r}")
    return value


def axis_option(axis, owner):
    """A reduction axis: None (every axis), an int or a tuple of ints (a list is made a
    tuple: JSON configs hold tuples as lists)."""
    if axis is None:
        return None
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    if isinstance(axis, (list, tuple)) and all(
        isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis
    ):
        return tuple(int(a) for a in axis)
    raise ValueError(f"{owner}: axis must be an int, a tuple of ints or None, got {axis!r}")


def class_axis_option(axis, owner):
    """The classes' axis of a categorical loss: one int."""
    if axis is None or isinstance(axis, (bool, list, tuple)):
        raise ValueError(f"{owner}: axis must be an int (the classes' axis), got {axis!r}")
    return axis_option(axis, owner)


def alpha_option(alpha, owner):
    """categorical_focal_crossentropy's ``alpha``: a number, or one per class (a list)."""
    if isinstance(alpha, (list, tuple, np.ndarray)):
        values = [number_option(a, "alpha", owner) for a in np.asarray(alpha).reshape(-1)]
        if not values:
            raise ValueError(f"{owner}: alpha must be a number or one number per class, got []")
        return values
    return number_option(alpha, "alpha", owner)


def _reduced_shape_ok(fn, y_pred, axis):
    """Refuses an axis outside y_pred's dimensions, naming both."""
    axes = () if axis is None else (axis,) if isinstance(axis, int) else axis
    for a in axes:
        if not -y_pred.ndim <= a < y_pred.ndim:
            raise ValueError(
                f"{fn}: axis {a} is out of range for y_pred of shape {y_pred.shape} "
                f"({y_pred.ndim} dimensions)"
            )


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                              reduction="mean"):  # fmt: skip
    """Keras' binary focal cross-entropy, averaged over ``axis`` per sample.

    With p the probability (sigmoid of y_pred with from_logits) and p_t = y p +
    (1 - y)(1 - p): (1 - p_t)^gamma times the binary cross-entropy of p clipped to
    [1e-7, 1 - 1e-7]; with ``apply_class_balancing`` also times alpha for class 1 and
    1 - alpha for class 0. Labels are smoothed towards 0.5 first (y (1 - s) + s / 2).
    gamma=0 (without balancing) is the binary cross-entropy.
    """
    fn = "binary_focal_crossentropy"
    alpha, gamma = number_option(alpha, "alpha", fn), number_option(gamma, "gamma", fn)
    smoothing, axis = smoothing_option(label_smoothing, fn), axis_option(axis, fn)
    y, p = _pair(fn, y_true, y_pred)
    _reduced_shape_ok(fn, p, axis)
    if y.size and not (y.min() >= 0 and y.max() <= 1):  # NaN fails too
        raise ValueError(
            f"{fn}: y_true holds values from {y.min()} to {y.max()}; expected targets in "
            f"[0, 1] (labels 0 and 1, or probabilities)"
        )
    if smoothing:
        y = y * (1.0 - smoothing) + 0.5 * smoothing
    if from_logits:
        p = p.sigmoid()
    clipped = p.clip(EPSILON, 1 - EPSILON)
    bce = -(clipped.log() * y + (1.0 - clipped).log() * (1.0 - y))
    loss = bce
    if gamma:  # (1 - p_t)^0 is 1, with no gradient
        p_t = p * y + (1.0 - p) * (1.0 - y)
        loss = (1.0 - p_t) ** gamma * bce
    if apply_class_balancing:
        loss = loss * (y * alpha + (1.0 - y) * (1.0 - alpha))
    return _reduce(loss.mean(axis=axis), reduction)


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1, reduction="mean"):  # fmt: skip
    """Keras' categorical focal cross-entropy, summed over ``axis`` per sample.

    p is y_pred (softmax over ``axis`` with from_logits) normalised to sum to 1 and
    clipped to [1e-7, 1 - 1e-7]; the loss is sum(alpha (1 - p)^gamma (-y log p)).
    ``alpha`` is one weight for every class or a list of one per class (the last axis).
    Labels are smoothed first: y (1 - s) + s / classes.
    """
    fn = "categorical_focal_crossentropy"
    alpha, gamma = alpha_option(alpha, fn), number_option(gamma, "gamma", fn)
    smoothing, axis = smoothing_option(label_smoothing, fn), class_axis_option(axis, fn)
    y, p = _pair(fn, y_true, y_pred)
    _reduced_shape_ok(fn, p, axis)
    classes = p.shape[-1] if p.ndim else 1
    if isinstance(alpha, list):
        if len(alpha) != classes:
            raise ValueError(
                f"{fn}: alpha has {len(alpha)} weights but y_pred has {classes} classes "
                f"(shape {p.shape}); expected one weight per class, or one number"
            )
        alpha = np.asarray(alpha, dtype=p.dtype)
    if smoothing:
        y = y * (1.0 - smoothing) + smoothing / classes
    if from_logits:
        p = p.softmax(axis=axis)
    p = (p / p.sum(axis=axis, keepdims=True)).clip(EPSILON, 1 - EPSILON)
    loss = -(p.log() * y)
    if gamma:  # (1 - p)^0 is 1, with no gradient
        loss = (1.0 - p) ** gamma * loss
    return _reduce((loss * alpha).sum(axis=axis), reduction)


def dice(y_true, y_pred, axis=None, reduction="mean"):
    """Keras' Dice loss: 1 - 2 sum(y_true y_pred) / (sum(y_true) + sum(y_pred) + 1e-7),
    the sums over ``axis`` (None: every axis, one value for the batch; (1, 2, 3): one
    per image of a (N, H, W, C) batch)."""
    axis = axis_option(axis, "dice")
    y, p = _pair("dice", y_true, y_pred)
    _reduced_shape_ok("dice", p, axis)
    overlap = (p * y).sum(axis=axis)
    total = p.sum(axis=axis) + np.asarray(y.sum(axis=axis), dtype=p.dtype) + EPSILON
    return _reduce(1.0 - overlap * 2.0 / total, reduction)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None, reduction="mean"):
    """Keras' Tversky loss over ``axis`` (None: every axis): 1 - tp / (tp + alpha
    sum((1 - y_pred) y_true) + beta sum(y_pred (1 - y_true)) + 1e-7), tp = sum(y_true
    y_pred), as Keras computes it (its alpha weighs the missed targets and beta the
    false alarms). alpha = beta = 0.5 is the Dice loss."""
    fn = "tversky"
    alpha, beta = number_option(alpha, "alpha", fn), number_option(beta, "beta", fn)
    axis = axis_option(axis, fn)
    y, p = _pair(fn, y_true, y_pred)
    _reduced_shape_ok(fn, p, axis)
    overlap = (p * y).sum(axis=axis)
    missed = ((1.0 - p) * y).sum(axis=axis)
    extra = (p * (1.0 - y)).sum(axis=axis)
    return _reduce(1.0 - overlap / (overlap + missed * alpha + extra * beta + EPSILON), reduction)
