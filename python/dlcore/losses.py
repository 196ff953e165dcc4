"""Loss classes and Keras names. A loss is called as ``loss(y_true, y_pred)`` and
returns a scalar Tensor: the mean over the batch of the per-sample losses."""

from dlcore import functional as F
from dlcore.registry import Registry

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "deserialize",
    "get",
    "registry",
    "serialize",
]

registry = Registry("loss", "losses")


class Loss:
    fn = None
    name = "loss"

    def __init__(self, reduction="mean", name=None):
        self.reduction = reduction
        if name:
            self.name = name

    def __call__(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, reduction=self.reduction, **self._options())

    def _options(self):
        return {}

    def get_config(self):
        return {"reduction": self.reduction, "name": self.name, **self._options()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@registry.register(aliases=("mse", "mean_squared_error"))
class MeanSquaredError(Loss):
    fn = staticmethod(F.mean_squared_error)
    name = "mean_squared_error"


@registry.register(aliases=("mae", "mean_absolute_error"))
class MeanAbsoluteError(Loss):
    fn = staticmethod(F.mean_absolute_error)
    name = "mean_absolute_error"


class _CrossEntropy(Loss):
    def __init__(self, from_logits=False, reduction="mean", name=None):
        super().__init__(reduction, name)
        self.from_logits = from_logits

    def _options(self):
        return {"from_logits": self.from_logits}


@registry.register(aliases=("binary_crossentropy",))
class BinaryCrossentropy(_CrossEntropy):
    fn = staticmethod(F.binary_crossentropy)
    name = "binary_crossentropy"


@registry.register(aliases=("categorical_crossentropy",))
class CategoricalCrossentropy(_CrossEntropy):
    fn = staticmethod(F.categorical_crossentropy)
    name = "categorical_crossentropy"


@registry.register(aliases=("sparse_categorical_crossentropy",))
class SparseCategoricalCrossentropy(_CrossEntropy):
    fn = staticmethod(F.sparse_categorical_crossentropy)
    name = "sparse_categorical_crossentropy"


# Keras' function names, usable as ``loss=losses.mean_squared_error``.
mean_squared_error = mse = F.mean_squared_error
mean_absolute_error = mae = F.mean_absolute_error
binary_crossentropy = F.binary_crossentropy
categorical_crossentropy = F.categorical_crossentropy
sparse_categorical_crossentropy = F.sparse_categorical_crossentropy


def _class_of_function(fn):
    for name in registry.names():
        cls = registry.lookup(name)
        if getattr(cls, "fn", None) is fn:
            return cls
    return None


def get(identifier):
    """A Loss from a Keras name ('mse', 'categorical_crossentropy', ...), a config
    dict, a Loss instance, one of the loss functions, or any callable(y_true, y_pred)."""
    if callable(identifier) and not isinstance(identifier, (Loss, type)):
        cls = _class_of_function(identifier)
        if cls is not None:
            return cls()
    return registry.get(identifier, base=Loss)


def serialize(loss):
    """The config of a built-in Loss; None for a custom callable (a model compiled with
    one is saved uncompiled)."""
    if isinstance(loss, Loss) and registry.name_of(loss) is not None:
        return registry.serialize(loss)
    return None


def deserialize(config):
    return registry.deserialize(config)
