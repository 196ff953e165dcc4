"""Activations by Keras name: ``activations.get("relu")``, ``Dense(activation="relu")``."""

from dlcore import functional as F
from dlcore.registry import Registry

__all__ = [
    "get",
    "leaky_relu",
    "linear",
    "registry",
    "relu",
    "serialize",
    "sigmoid",
    "softmax",
    "tanh",
]

registry = Registry("activation")


@registry.register()
def linear(x):
    return x


relu = registry.register("relu")(F.relu)
sigmoid = registry.register("sigmoid")(F.sigmoid)
tanh = registry.register("tanh")(F.tanh)
softmax = registry.register("softmax")(F.softmax)
leaky_relu = registry.register("leaky_relu")(F.leaky_relu)


def get(identifier):
    """A function Tensor -> Tensor from a name, None (linear) or a callable."""
    if identifier is None:
        return linear
    return registry.get(identifier)


def serialize(fn):
    """The name of a registered activation."""
    return registry.serialize(fn)


def deserialize(name):
    return registry.deserialize(name)
