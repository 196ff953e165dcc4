"""Keras 3's activations and their derivatives in float64 NumPy, written from the
formulas of keras/src/activations/activations.py and of jax.nn, which Keras' JAX backend
calls (hard_sigmoid is Keras 3's relu6(x + 3) / 6). scipy.special gives the logistic
function and the normal CDF. A NaN in x gives NaN."""

import numpy as np
from scipy.special import expit, ndtr

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_C = np.sqrt(2.0 / np.pi)
GELU_K = 0.044715


def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    # keras.activations.relu: where(x > threshold, x, 0), clipped to [0, max_value] when
    # there is one, minus negative_slope * relu(threshold - x).
    y = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    if negative_slope:
        y = y - negative_slope * np.maximum(threshold - x, 0.0)
    return y


def _relu_grad(x, negative_slope=0.0, max_value=None, threshold=0.0):
    inside = np.ones_like(x) if max_value is None else ((x > 0) & (x < max_value)) * 1.0
    return np.where(x > threshold, inside, negative_slope)


def _softplus(x):
    return np.logaddexp(x, 0.0)


def _gelu_tanh_sigmoid(x):
    # (1 + tanh(u)) / 2 as sigmoid(2u): the same value, without 1 + tanh(u)'s cancellation
    # (which left float64 with 0 below x = -7).
    return expit(2 * GELU_C * (x + GELU_K * x**3))


def _gelu_tanh_grad(x):
    s = _gelu_tanh_sigmoid(x)  # 1 - tanh(u)^2 = 4 s (1 - s)
    return s + x * 2 * s * (1 - s) * GELU_C * (1 + 3 * GELU_K * x**2)


# kind -> (f(x, **params), f'(x, **params))
FUNCTIONS = {
    "relu": (_relu, _relu_grad),
    "elu": (
        lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
        lambda x, alpha=1.0: np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0))),
    ),
    "selu": (
        lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
        lambda x: SELU_SCALE * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0))),
    ),
    "gelu": (
        lambda x: x * ndtr(x),
        lambda x: ndtr(x) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi),
    ),
    "gelu_tanh": (lambda x: x * _gelu_tanh_sigmoid(x), _gelu_tanh_grad),
    "silu": (lambda x: x * expit(x), lambda x: expit(x) * (1 + x * (1 - expit(x)))),
    "softplus": (_softplus, expit),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "sigmoid": (expit, lambda x: expit(x) * (1 - expit(x))),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "hard_sigmoid": (
        lambda x: np.clip(x + 3, 0, 6) / 6,
        lambda x: ((x > -3) & (x < 3)) / 6.0,
    ),
    "hard_silu": (
        lambda x: x * np.clip(x + 3, 0, 6) / 6,
        lambda x: np.clip(x + 3, 0, 6) / 6 + ((x > -3) & (x < 3)) * x / 6,
    ),
    "mish": (
        lambda x: x * np.tanh(_softplus(x)),
        lambda x: np.tanh(_softplus(x)) + x * (1 - np.tanh(_softplus(x)) ** 2) * expit(x),
    ),
}

# The Keras names that are another kind with set parameters.
ALIASES = {
    "relu6": ("relu", {"max_value": 6.0}),
    "leaky_relu": ("relu", {"negative_slope": 0.2}),
    "swish": ("silu", {}),
    "hard_swish": ("hard_silu", {}),
}


def resolve(kind, **params):
    """(reference kind, parameters) of an activation name and the parameters given."""
    if kind in ALIASES:
        base, defaults = ALIASES[kind]
        return base, {**defaults, **params}
    if kind == "gelu" and params.pop("approximate", False) in (True, "tanh"):
        return "gelu_tanh", params
    params.pop("approximate", None)
    return kind, params


def activation(x, kind, **params):
    kind, params = resolve(kind, **params)
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        return np.where(np.isnan(x), x, FUNCTIONS[kind][0](x, **params))


def activation_backward(dy, x, kind, **params):
    """dy * f'(x), from the input x for every kind."""
    kind, params = resolve(kind, **params)
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        d = np.asarray(dy, np.float64) * FUNCTIONS[kind][1](x, **params)
    return np.where(np.isnan(x), x, d)
