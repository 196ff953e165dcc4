"""Softmax over the last axis and its cross-entropies in plain NumPy, the textbook
formulas computed in float64 and returned in the input's dtype."""

import numpy as np


def softmax(x):
    x = np.asarray(x)
    return np.exp(_log_softmax(x)).astype(np.result_type(x.dtype, np.float32))


def softmax_backward(dy, y):
    dy64, y64 = np.asarray(dy, np.float64), np.asarray(y, np.float64)
    dot = (dy64 * y64).sum(axis=-1, keepdims=True)
    return (y64 * (dy64 - dot)).astype(np.result_type(dy, y))


def _log_softmax(z):
    z = np.asarray(z, np.float64)
    if z.size == 0:
        return z
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def sparse_softmax_cross_entropy(logits, labels):
    """(loss, grad) against integer labels."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    logp = _log_softmax(logits)
    labels = labels.astype(np.int64)
    onehot = np.eye(logits.shape[-1])[labels]
    loss = -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]
    grad = np.exp(logp) - onehot
    return loss.astype(logits.dtype), grad.astype(logits.dtype)


def softmax_cross_entropy(logits, targets):
    """(loss, grad) against target distributions."""
    dtype = np.result_type(np.float32, logits, targets)
    logp = _log_softmax(logits)
    t = np.asarray(targets, np.float64)
    loss = -(t * logp).sum(axis=-1)
    grad = np.exp(logp) * t.sum(axis=-1, keepdims=True) - t
    return loss.astype(dtype), grad.astype(dtype)
