"""Differentiable operations over :mod:`dlcore.ops`, the activations and the losses.

Each kernel-backed function calls its ``ops`` forward and records the matching
``ops`` backward; gradients nobody needs are not computed (the kernels' ``need_*``
flags). Losses take Keras' argument order ``(y_true, y_pred)``.
"""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore import random as _random
from dlcore.tensor import (
    Tensor,
    as_tensor,
    log_softmax,
    record,
    relu,
    sigmoid,
    softmax,
    tanh,
)

__all__ = [
    "linear",
    "conv2d",
    "max_pool2d",
    "lstm",
    "dropout",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax",
    "log_softmax",
    "mean_squared_error",
    "mean_absolute_error",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "conv_padding",
]

EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [eps, 1 - eps]


# ---------------------------------------------------------------- layers' maths


def linear(x, kernel, bias=None):
    """x (..., in) @ kernel (in, out) + bias (out,): a Dense layer without activation."""
    x, kernel = as_tensor(x), as_tensor(kernel)
    lead = x.shape[:-1]
    x2 = x.data.reshape(-1, x.shape[-1])
    y = ops.gemm(x2, kernel.data)
    if bias is not None:
        bias = as_tensor(bias)
        y += bias.data
    y = y.reshape(*lead, kernel.shape[1])
    inputs = (x, kernel) if bias is None else (x, kernel, bias)

    def backward(g):
        dy = g[0].reshape(-1, kernel.shape[1])
        dx, dk = ops.gemm_backward(
            dy, x2, kernel.data, need_da=x.requires_grad, need_db=kernel.requires_grad
        )
        grads = (None if dx is None else dx.reshape(x.shape), dk)
        if bias is not None:
            grads += (dy.sum(axis=0) if bias.requires_grad else None,)
        return grads

    return record(y, inputs, backward, "linear")


def _pair(v, name):
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return (int(v[0]), int(v[1]))


def conv_padding(padding, size, kernel_size, strides=1, dilation=1):
    """Turns Keras' padding strings into explicit ((top, bottom), (left, right)).

    'valid' is no padding; 'same' pads so that the output has ceil(size / stride)
    rows and columns, with the odd pixel at the bottom/right, as Keras and
    TensorFlow do. Anything else is passed through for the kernel to check.
    """
    if not isinstance(padding, str):
        return padding
    mode = padding.lower()
    if mode == "valid":
        return ((0, 0), (0, 0))
    if mode != "same":
        raise ValueError(f"padding must be 'valid' or 'same' (or explicit sizes), got {padding!r}")
    out = []
    for n, k, s, d in zip(
        size,
        _pair(kernel_size, "kernel_size"),
        _pair(strides, "strides"),
        _pair(dilation, "dilation"),
    ):
        total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
        out.append((total // 2, total - total // 2))
    return tuple(out)


def conv2d(x, kernel, bias=None, strides=1, padding=0, dilation=1):
    """2-D convolution, channels-last: x (N, H, W, C), kernel (KH, KW, C, OC) -> (N, OH, OW, OC).

    padding: 'valid', 'same', an int, (ph, pw) or ((top, bottom), (left, right)).
    """
    x, kernel = as_tensor(x), as_tensor(kernel)
    padding = conv_padding(padding, x.shape[1:3], kernel.shape[:2], strides, dilation)
    args = dict(strides=strides, padding=padding, dilation=dilation)
    bias_t = None if bias is None else as_tensor(bias)
    y = ops.conv2d_forward(x.data, kernel.data, None if bias_t is None else bias_t.data, **args)
    inputs = (x, kernel) if bias_t is None else (x, kernel, bias_t)

    def backward(g):
        dx, dk, db = ops.conv2d_backward(
            g[0],
            x.data,
            kernel.data,
            **args,
            need_dx=x.requires_grad,
            need_dkernel=kernel.requires_grad,
            need_dbias=bias_t is not None and bias_t.requires_grad,
        )
        return (dx, dk) if bias_t is None else (dx, dk, db)

    return record(y, inputs, backward, "conv2d")


def max_pool2d(x, pool_size=2, strides=None, padding=0):
    """Max pooling, channels-last: x (N, H, W, C) -> (N, OH, OW, C).

    strides defaults to pool_size; padding as for :func:`conv2d` (padded cells never win).
    """
    x = as_tensor(x)
    strides = pool_size if strides is None else strides
    padding = conv_padding(padding, x.shape[1:3], pool_size, strides)
    y, argmax = ops.maxpool2d_forward(x.data, pool_size=pool_size, strides=strides, padding=padding)
    shape = x.shape
    return record(y, (x,), lambda g: (ops.maxpool2d_backward(g[0], argmax, shape),), "max_pool2d")


def lstm(x, h0, c0, kernel, recurrent_kernel, bias):
    """A whole LSTM sequence (Keras layout and gate order i, f, c, o).

    x (N, T, I); h0, c0 (N, U) or None for zeros; kernel (I, 4U);
    recurrent_kernel (U, 4U); bias (4U,). Returns (y (N, T, U), h_n, c_n).
    """
    given = [
        ("x", x),
        ("h0", h0),
        ("c0", c0),
        ("kernel", kernel),
        ("recurrent_kernel", recurrent_kernel),
        ("bias", bias),
    ]
    tensors = {name: None if v is None else as_tensor(v) for name, v in given}
    data = {name: None if t is None else t.data for name, t in tensors.items()}
    y, h_n, c_n, cache = ops.lstm_forward(
        data["x"], data["h0"], data["c0"], data["kernel"], data["recurrent_kernel"], data["bias"]
    )
    present = [name for name, t in tensors.items() if t is not None]
    order = ["x", "h0", "c0", "kernel", "recurrent_kernel", "bias"]

    def backward(g):
        grads = dict(zip(order, ops.lstm_backward(g[0], g[1], g[2], cache)))
        return tuple(grads[name] for name in present)

    return record((y, h_n, c_n), tuple(tensors[n] for n in present), backward, "lstm")


def dropout(x, rate, training=True, noise_shape=None, seed=None):
    """Zeroes a fraction ``rate`` of x and scales the rest by 1 / (1 - rate), in
    training only (identity otherwise)."""
    x = as_tensor(x)
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), got {rate}")
    if not training or rate == 0:
        return x
    rng = _random.generator() if seed is None else np.random.default_rng(seed)
    shape = x.shape if noise_shape is None else noise_shape
    mask = (rng.random(shape, dtype=np.float32) >= rate).astype(x.dtype) / x.dtype.type(1 - rate)
    return record(x.data * mask, (x,), lambda g: (g[0] * mask,), "dropout")


def leaky_relu(x, negative_slope=0.2):
    x = as_tensor(x)
    xd = x.data
    slope = np.where(xd > 0, 1, negative_slope).astype(xd.dtype)
    return record(xd * slope, (x,), lambda g: (g[0] * slope,), "leaky_relu")


# ---------------------------------------------------------------- losses


def _reduce(per_sample, reduction):
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


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


def _logits_of(y_pred, kind, from_logits):
    """The pre-activation tensor to compute a loss from, when there is one."""
    if from_logits:
        return y_pred
    if y_pred._logits is not None and y_pred._logits[0] == kind:
        return y_pred._logits[1]
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
    logits = _logits_of(y_pred, "sigmoid", from_logits)
    if logits is None:
        p = y_pred.clip(EPSILON, 1 - EPSILON)
        per_elem = -(y * p.log() + (1 - y) * (1 - p).log())
        return _reduce(per_elem.mean(axis=-1), reduction)
    z = logits.data
    per_elem = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    per_sample = per_elem.mean(axis=-1)
    width = z.shape[-1] if z.ndim else 1

    def backward(g):
        from dlcore.tensor import _sigmoid

        gs = np.expand_dims(g[0], -1) if np.ndim(g[0]) else g[0]
        return (gs * (_sigmoid(z) - y) / width,)

    per_sample_t = record(per_sample.astype(z.dtype, copy=False), (logits,), backward, "bce")
    return _reduce(per_sample_t, reduction)


def _log_softmax_data(z):
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


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
    logp = _log_softmax_data(logits.data)
    per_sample = -(y * logp).sum(axis=-1)

    def backward(g):
        gs = np.expand_dims(g[0], -1)
        return (gs * (np.exp(logp) * y.sum(axis=-1, keepdims=True) - y),)

    return _reduce(record(per_sample, (logits,), backward, "cce"), reduction)


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
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise ValueError(
                "sparse_categorical_crossentropy: y_true must hold integer "
                "class labels; got non-integer values"
            )
    labels = labels.astype(np.int64)
    classes = y_pred.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"sparse_categorical_crossentropy: labels must be in [0, {classes}), "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    logits = _logits_of(y_pred, "softmax", from_logits)
    if logits is None:
        p = y_pred / y_pred.sum(axis=-1, keepdims=True)
        picked = _take_last(p, labels).clip(EPSILON, 1 - EPSILON)
        return _reduce(-picked.log(), reduction)
    logp = _log_softmax_data(logits.data)
    per_sample = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]

    def backward(g):
        grad = np.exp(logp)
        np.put_along_axis(
            grad,
            labels[..., None],
            np.take_along_axis(grad, labels[..., None], axis=-1) - 1,
            axis=-1,
        )
        return (np.expand_dims(g[0], -1) * grad,)

    return _reduce(record(per_sample, (logits,), backward, "sparse_cce"), reduction)


def _take_last(p, labels):
    """p[..., labels] per row, differentiable."""
    shape = p.shape

    def backward(g):
        out = np.zeros(shape, p.dtype)
        np.put_along_axis(out, labels[..., None], g[0][..., None], axis=-1)
        return (out,)

    picked = np.take_along_axis(p.data, labels[..., None], axis=-1)[..., 0]
    return record(picked, (p,), backward, "take")
