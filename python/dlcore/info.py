"""Information theory on discrete distributions: entropy, cross-entropy, KL divergence,
mutual information.

Distributions are arrays of probabilities along ``axis`` (last by default); they must be
finite, non-negative and sum to 1 (within ``atol``), else ``ValueError`` says which
condition failed. ``base`` picks the unit: None or e for nats, 2 for bits, 10 for
hartleys. Terms with p = 0 contribute 0 (the limit of p log p); a q = 0 where p > 0
makes cross-entropy and KL divergence infinite.
"""

from __future__ import annotations

import numpy as np

from dlcore.tensor import Tensor

__all__ = [
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "mutual_information",
    "joint_entropy",
    "conditional_entropy",
]


def _log_scale(base):
    if base is None:
        return 1.0
    base = float(base)
    if not base > 0 or base == 1:
        raise ValueError(f"base must be positive and not 1, got {base}")
    return 1.0 / np.log(base)


def _distribution(p, name, axis=-1, atol=1e-6):
    p = np.asarray(p.data if isinstance(p, Tensor) else p, dtype=np.float64)
    if p.ndim == 0:
        raise ValueError(f"{name} must be an array of probabilities, got a scalar")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if np.any(p < 0):
        raise ValueError(f"{name} has negative probabilities (min {p.min():.6g})")
    sums = p.sum(axis=axis)
    if not np.allclose(sums, 1.0, rtol=0, atol=atol):
        bad = np.atleast_1d(sums)[~np.isclose(np.atleast_1d(sums), 1.0, rtol=0, atol=atol)]
        raise ValueError(f"{name} must sum to 1 along axis {axis}; got sums {bad[:5]}")
    return p


def _xlogy(x, y):
    """x * log(y), with 0 where x == 0 (and -inf where x > 0 = y)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def entropy(p, base=None, axis=-1):
    """H(p) = -sum p log p."""
    p = _distribution(p, "p", axis)
    return -_xlogy(p, p).sum(axis=axis) * _log_scale(base)


def cross_entropy(p, q, base=None, axis=-1):
    """H(p, q) = -sum p log q: the expected code length of p's outcomes in q's code."""
    p, q = _distribution(p, "p", axis), _distribution(q, "q", axis)
    if p.shape != q.shape:
        raise ValueError(f"p has shape {p.shape} but q has shape {q.shape}")
    return -_xlogy(p, q).sum(axis=axis) * _log_scale(base)


def kl_divergence(p, q, base=None, axis=-1):
    """D_KL(p || q) = sum p log(p / q) = H(p, q) - H(p); >= 0, 0 only when p == q."""
    p, q = _distribution(p, "p", axis), _distribution(q, "q", axis)
    if p.shape != q.shape:
        raise ValueError(f"p has shape {p.shape} but q has shape {q.shape}")
    with np.errstate(divide="ignore"):
        terms = _xlogy(p, p) - _xlogy(p, q)
    return terms.sum(axis=axis) * _log_scale(base)


def _joint(joint_or_x, y):
    if y is None:
        joint = np.asarray(
            joint_or_x.data if isinstance(joint_or_x, Tensor) else joint_or_x, dtype=np.float64
        )
        if joint.ndim != 2:
            raise ValueError(
                f"a joint distribution must be 2-D (x values by y values), got shape {joint.shape}"
            )
        return _distribution(joint.reshape(-1), "joint").reshape(joint.shape)
    x, y = np.asarray(joint_or_x), np.asarray(y)
    if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"paired samples must be two 1-D arrays of one length, got shapes "
            f"{x.shape} and {y.shape}"
        )
    if len(x) == 0:
        raise ValueError("paired samples: no samples")
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    counts = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(counts, (xi, yi), 1)
    return counts / len(x)


def mutual_information(joint_or_x, y=None, base=None):
    """I(X; Y) = sum P(x, y) log(P(x, y) / (P(x) P(y))).

    ``mutual_information(joint)``: from a 2-D joint distribution P(x, y).
    ``mutual_information(x, y)``: from paired samples of two discrete variables (the
    plug-in estimate from their empirical joint distribution).
    """
    joint = _joint(joint_or_x, y)
    px, py = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(joint > 0, joint / (px * py), 1.0)
    return float(_xlogy(joint, ratio).sum() * _log_scale(base))


def joint_entropy(joint_or_x, y=None, base=None):
    """H(X, Y) of a joint distribution or of paired samples."""
    joint = _joint(joint_or_x, y)
    return float(-_xlogy(joint, joint).sum() * _log_scale(base))


def conditional_entropy(joint_or_x, y=None, base=None):
    """H(Y | X) = H(X, Y) - H(X)."""
    joint = _joint(joint_or_x, y)
    px = joint.sum(axis=1)
    return float((-_xlogy(joint, joint).sum() + _xlogy(px, px).sum()) * _log_scale(base))
