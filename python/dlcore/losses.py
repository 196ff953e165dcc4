"""Loss classes and Keras names. A loss is called as ``loss(y_true, y_pred)`` and
returns a scalar Tensor: the mean over the batch of the per-sample losses."""

from dlcore import functional as F

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "get",
    "serialize",
]


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


class MeanSquaredError(Loss):
    fn = staticmethod(F.mean_squared_error)
    name = "mean_squared_error"


class MeanAbsoluteError(Loss):
    fn = staticmethod(F.mean_absolute_error)
    name = "mean_absolute_error"


class _CrossEntropy(Loss):
    def __init__(self, from_logits=False, reduction="mean", name=None):
        super().__init__(reduction, name)
        self.from_logits = from_logits

    def _options(self):
        return {"from_logits": self.from_logits}


class BinaryCrossentropy(_CrossEntropy):
    fn = staticmethod(F.binary_crossentropy)
    name = "binary_crossentropy"


class CategoricalCrossentropy(_CrossEntropy):
    fn = staticmethod(F.categorical_crossentropy)
    name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(_CrossEntropy):
    fn = staticmethod(F.sparse_categorical_crossentropy)
    name = "sparse_categorical_crossentropy"


_BY_NAME = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "MeanSquaredError": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "MeanAbsoluteError": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "BinaryCrossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "CategoricalCrossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "SparseCategoricalCrossentropy": SparseCategoricalCrossentropy,
}

# Keras' function names, usable as ``loss=losses.mean_squared_error``.
mean_squared_error = mse = F.mean_squared_error
mean_absolute_error = mae = F.mean_absolute_error
binary_crossentropy = F.binary_crossentropy
categorical_crossentropy = F.categorical_crossentropy
sparse_categorical_crossentropy = F.sparse_categorical_crossentropy
_BY_FUNCTION = {
    F.mean_squared_error: MeanSquaredError,
    F.mean_absolute_error: MeanAbsoluteError,
    F.binary_crossentropy: BinaryCrossentropy,
    F.categorical_crossentropy: CategoricalCrossentropy,
    F.sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
}


def get(identifier):
    """A Loss from a Keras name ('mse', 'categorical_crossentropy', ...), a config
    dict, a Loss instance, one of the loss functions, or any callable(y_true, y_pred)."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            raise ValueError(
                f"unknown loss {identifier!r}; expected one of "
                f"{sorted(k for k in _BY_NAME if k.islower())}"
            )
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict):
        return _BY_NAME[identifier["class_name"]].from_config(identifier["config"])
    if identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    if callable(identifier):
        return identifier
    raise TypeError(f"cannot interpret {identifier!r} as a loss")


def serialize(loss):
    if isinstance(loss, Loss) and type(loss).__name__ in _BY_NAME:
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    return None  # a custom callable: the model is saved uncompiled
