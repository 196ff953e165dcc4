"""Activations by Keras name."""

from dlcore import functional as F

__all__ = ["get", "serialize", "linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu"]


def linear(x):
    return x


relu, sigmoid, tanh, softmax, leaky_relu = F.relu, F.sigmoid, F.tanh, F.softmax, F.leaky_relu

_BY_NAME = {
    "linear": linear,
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "leaky_relu": leaky_relu,
}
_NAME_OF = {id(fn): name for name, fn in _BY_NAME.items()}


def get(identifier):
    """A function Tensor -> Tensor from a name, None (linear) or a callable."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"unknown activation {identifier!r}; expected one of {sorted(_BY_NAME)}"
            )
        return _BY_NAME[identifier]
    if callable(identifier):
        return identifier
    raise TypeError(f"cannot interpret {identifier!r} as an activation")


def serialize(fn):
    if id(fn) in _NAME_OF:
        return _NAME_OF[id(fn)]
    raise TypeError(f"activation {fn!r} cannot be saved; use one by name")
