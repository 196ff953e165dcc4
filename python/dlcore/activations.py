"""Activations by Keras name: ``activations.get("relu")``, ``Dense(activation="gelu")``.

Each is its differentiable op from :mod:`dlcore.functional` (the element-wise ones on the
C++ activation kernels); ``sigmoid`` and ``softmax`` return the tensor the fused
cross-entropies read their logits from.
"""

from dlcore import functional as F
from dlcore.functional import activations as _ops
from dlcore.registry import Registry

__all__ = [
    "elu",
    "exponential",
    "gelu",
    "get",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "leaky_relu",
    "linear",
    "log_softmax",
    "mish",
    "registry",
    "relu",
    "relu6",
    "selu",
    "serialize",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "softsign",
    "swish",
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
relu6 = registry.register("relu6")(_ops.relu6)
elu = registry.register("elu")(_ops.elu)
selu = registry.register("selu")(_ops.selu)
gelu = registry.register("gelu")(_ops.gelu)
silu = swish = registry.register("silu", aliases=("swish",))(_ops.silu)
softplus = registry.register("softplus")(_ops.softplus)
softsign = registry.register("softsign")(_ops.softsign)
hard_sigmoid = registry.register("hard_sigmoid")(_ops.hard_sigmoid)
hard_silu = hard_swish = registry.register("hard_silu", aliases=("hard_swish",))(_ops.hard_silu)
exponential = registry.register("exponential")(_ops.exponential)
mish = registry.register("mish")(_ops.mish)
log_softmax = registry.register("log_softmax")(F.log_softmax)


def get(identifier):
    """A function Tensor -> Tensor from a name, None (linear) or a callable."""
    if identifier is None:
        return linear
    return registry.get(identifier)


def serialize(fn):
    """The name of a registered activation."""
    return registry.serialize(fn)


def deserialize(name, custom_objects=None):
    """The object of a config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(name, custom_objects)
