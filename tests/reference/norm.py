"""Batch and layer normalisation over the last axis in float64 NumPy, from the textbook
definitions (Keras' formulas): every axis but the last is the batch for batch norm, the
last axis alone is normalised for layer norm. gamma / beta None mean 1 / 0."""

import numpy as np


def _affine(xhat, gamma, beta):
    y = xhat if gamma is None else xhat * np.asarray(gamma, np.float64)
    return y if beta is None else y + np.asarray(beta, np.float64)


def batch_norm(x, gamma=None, beta=None, epsilon=1e-3):
    """Training mode: (y, mean, variance, inv_std), variance biased as Keras takes it."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    mean, variance = x.mean(axis=axes), x.var(axis=axes)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    return _affine((x - mean) * inv_std, gamma, beta), mean, variance, inv_std


def batch_norm_inference(x, mean, variance, gamma=None, beta=None, epsilon=1e-3):
    x, mean, variance = (np.asarray(a, np.float64) for a in (x, mean, variance))
    return _affine((x - mean) / np.sqrt(variance + epsilon), gamma, beta)


def batch_norm_backward(dy, x, mean, inv_std, gamma=None, training=True):
    """(dx, dgamma, dbeta) by the chain rule through xhat = (x - mean) * inv_std, with
    mean and inv_std functions of x when training, constants otherwise."""
    dy, x, mean, inv_std = (np.asarray(a, np.float64) for a in (dy, x, mean, inv_std))
    C = x.shape[-1]
    dy2, x2 = dy.reshape(-1, C), x.reshape(-1, C)
    M = x2.shape[0]
    xhat = (x2 - mean) * inv_std
    dbeta, dgamma = dy2.sum(axis=0), (dy2 * xhat).sum(axis=0)
    g = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    dxhat = dy2 * g
    if training:
        dx = inv_std / M * (M * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    else:
        dx = dxhat * inv_std
    return dx.reshape(x.shape), dgamma, dbeta


def layer_norm(x, gamma=None, beta=None, epsilon=1e-3):
    """(y, mean, inv_std), each row of the last axis on its own."""
    x = np.asarray(x, np.float64)
    mean, variance = x.mean(axis=-1), x.var(axis=-1)
    inv_std = 1.0 / np.sqrt(variance + epsilon)
    return _affine((x - mean[..., None]) * inv_std[..., None], gamma, beta), mean, inv_std


def layer_norm_backward(dy, x, mean, inv_std, gamma=None):
    dy, x, mean, inv_std = (np.asarray(a, np.float64) for a in (dy, x, mean, inv_std))
    C = x.shape[-1]
    xhat = (x - mean[..., None]) * inv_std[..., None]
    g = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    dxhat = dy * g
    dx = (
        inv_std[..., None]
        / C
        * (C * dxhat - dxhat.sum(-1, keepdims=True) - xhat * (dxhat * xhat).sum(-1, keepdims=True))
    )
    dgamma = (dy * xhat).reshape(-1, C).sum(0)
    dbeta = dy.reshape(-1, C).sum(0)
    return dx, dgamma, dbeta
