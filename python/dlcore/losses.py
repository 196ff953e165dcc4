"""Loss classes and Keras names. A loss is called as ``loss(y_true, y_pred,
sample_weight=None)`` and returns a scalar Tensor: by default the mean of the per-sample
losses (each times its sample weight), Keras' ``sum_over_batch_size``.

A subclass computes the per-sample losses in ``call(y_true, y_pred)``, as in Keras; the
class reduces them. The function forms (``losses.mean_squared_error`` ...) return one
loss per sample, as Keras' do; ``dlcore.functional``'s reduce by default.
"""

import numpy as np

from dlcore import functional as F
from dlcore.functional import losses as _losses
from dlcore.registry import Registry, custom_config
from dlcore.tensor import Tensor, as_tensor

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalHinge",
    "CosineSimilarity",
    "Dice",
    "Hinge",
    "Huber",
    "KLDivergence",
    "LogCosh",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SquaredHinge",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "Tversky",
    "deserialize",
    "get",
    "reduce_weighted",
    "registry",
    "serialize",
]

registry = Registry("loss", "losses")


# Keras' reductions, and the kind each computes
_REDUCTIONS = {
    "sum_over_batch_size": "mean",
    "mean": "mean",
    "mean_with_sample_weight": "mean_with_sample_weight",
    "sum": "sum",
    "none": "none",
    None: "none",
}


def _reduction_kind(reduction, owner="Loss"):
    try:
        return _REDUCTIONS[reduction]
    except (KeyError, TypeError):
        raise ValueError(
            f"{owner}: reduction must be one of 'sum_over_batch_size', 'mean', "
            f"'mean_with_sample_weight', 'sum', 'none' or None, got {reduction!r}"
        ) from None


def _sample_weight_for(weight, shape, dtype):
    """weight (N,) or (N, ...) as an array that broadcasts over ``shape``'s trailing axes."""
    w = np.asarray(weight.data if isinstance(weight, Tensor) else weight, dtype=dtype)
    if w.ndim > len(shape) or w.shape != tuple(shape[: w.ndim]):
        raise ValueError(
            f"sample_weight of shape {w.shape} does not fit the per-sample losses of shape "
            f"{tuple(shape)}: expected a shape that leads it, such as {tuple(shape[:1])}"
        )
    return w.reshape(w.shape + (1,) * (len(shape) - w.ndim))


def reduce_weighted(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Keras' reduction of per-sample ``values`` (a Tensor of any shape) weighted by
    ``sample_weight`` ((N,) or a shape leading the values'): 'sum_over_batch_size' (or
    'mean') sums the weighted values and divides by their number, 'sum' sums them,
    'mean_with_sample_weight' divides by the sum of the weights, 'none' (None) keeps
    them. A scalar (one loss for the batch, such as Dice's by default) is returned as it
    is, or with sample weights, as Keras does, times each weight and then reduced: its
    'sum_over_batch_size' is the loss times the mean weight."""
    kind = _reduction_kind(reduction, "reduce_weighted")
    values = as_tensor(values)
    w = None
    if sample_weight is not None:
        if values.ndim:
            w = _sample_weight_for(sample_weight, values.shape, values.dtype)
        else:
            w = np.asarray(
                sample_weight.data if isinstance(sample_weight, Tensor) else sample_weight,
                dtype=values.dtype,
            )
        values = values * w
    if kind == "none" or values.ndim == 0:
        return values
    total = values.sum()
    if kind == "sum":
        return total
    if kind == "mean_with_sample_weight" and w is not None:
        divisor = float(np.asarray(sample_weight, dtype=np.float64).sum())
    else:
        divisor = float(values.size)
    return total / divisor if divisor else total * 0.0  # Keras' divide_no_nan


class Loss:
    """Base of the losses. A subclass either sets ``fn`` (a function of dlcore.functional
    taking ``reduction=``) or, as in Keras, defines ``call(y_true, y_pred)`` returning
    the per-sample losses; ``loss(y_true, y_pred, sample_weight=None)`` reduces them."""

    fn = None
    name = "loss"

    def __init__(self, reduction="sum_over_batch_size", name=None):
        _reduction_kind(reduction, type(self).__name__)
        self.reduction = reduction
        if name:
            self.name = name

    def call(self, y_true, y_pred):
        """The per-sample losses."""
        fn = type(self).fn
        if fn is None:
            raise NotImplementedError(
                f"{type(self).__name__} must define call(y_true, y_pred), returning the "
                f"per-sample losses"
            )
        return fn(self._targets(y_true, y_pred), y_pred, reduction="none", **self._options())

    def __call__(self, y_true, y_pred, sample_weight=None):
        fn, kind = type(self).fn, _reduction_kind(self.reduction)
        if sample_weight is None and fn is not None and type(self).call is Loss.call:
            if kind != "mean_with_sample_weight":
                # the fused kernels reduce in the same graph node
                return fn(self._targets(y_true, y_pred), y_pred, reduction=kind,
                          **self._options())  # fmt: skip
        return reduce_weighted(self.call(y_true, y_pred), sample_weight, self.reduction)

    def _targets(self, y_true, y_pred):
        """The targets ``fn`` is given (a cross-entropy's smoothed labels)."""
        return y_true

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


@registry.register(aliases=("huber", "huber_loss"))
class Huber(Loss):
    """Squared error below ``delta``, linear above it (Keras' Huber, delta 1.0)."""

    fn = staticmethod(F.huber)
    name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.delta = float(delta)

    def _options(self):
        return {"delta": self.delta}


def _simple_loss(cls_name, fn, name, aliases):
    """A Loss class of one of dlcore.functional's losses that takes no options."""
    cls = type(cls_name, (Loss,), {"fn": staticmethod(fn), "name": name,
                                   "__doc__": fn.__doc__, "__module__": __name__})  # fmt: skip
    return registry.register(aliases=aliases)(cls)


MeanAbsolutePercentageError = _simple_loss(
    "MeanAbsolutePercentageError", F.mean_absolute_percentage_error,
    "mean_absolute_percentage_error", ("mape", "mean_absolute_percentage_error"))  # fmt: skip
MeanSquaredLogarithmicError = _simple_loss(
    "MeanSquaredLogarithmicError", F.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error", ("msle", "mean_squared_logarithmic_error"))  # fmt: skip
Hinge = _simple_loss("Hinge", F.hinge, "hinge", ("hinge",))
SquaredHinge = _simple_loss("SquaredHinge", F.squared_hinge, "squared_hinge", ("squared_hinge",))
CategoricalHinge = _simple_loss("CategoricalHinge", F.categorical_hinge, "categorical_hinge",
                                ("categorical_hinge",))  # fmt: skip
LogCosh = _simple_loss("LogCosh", F.log_cosh, "log_cosh", ("log_cosh", "logcosh"))
Poisson = _simple_loss("Poisson", F.poisson, "poisson", ("poisson",))
KLDivergence = _simple_loss("KLDivergence", F.kl_divergence, "kl_divergence",
                            ("kl_divergence", "kld", "kullback_leibler_divergence"))  # fmt: skip


@registry.register(aliases=("cosine_similarity",))
class CosineSimilarity(Loss):
    """-cosine of the angle between y_true and y_pred over ``axis`` (Keras' loss)."""

    fn = staticmethod(F.cosine_similarity)
    name = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.axis = int(axis)

    def _options(self):
        return {"axis": self.axis}


class _CrossEntropy(Loss):
    smooths = True  # takes Keras' label_smoothing

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):  # fmt: skip
        super().__init__(reduction, name)
        self.from_logits = from_logits
        if axis not in (-1, None):
            raise NotImplementedError(
                f"{type(self).__name__}: the classes are on the last axis; axis={axis!r} is "
                f"not supported"
            )
        smoothing = float(label_smoothing)
        if not 0.0 <= smoothing <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: label_smoothing must be in [0, 1], got {label_smoothing!r}"
            )
        if smoothing and not self.smooths:
            raise ValueError(
                f"{type(self).__name__} has no label_smoothing (integer labels); use "
                f"CategoricalCrossentropy with one-hot targets"
            )
        self.label_smoothing = smoothing

    def _targets(self, y_true, y_pred):
        if not self.label_smoothing:
            return y_true
        y = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true, dtype=y_pred.dtype)
        share = 0.5 if type(self).__name__ == "BinaryCrossentropy" else 1.0 / y_pred.shape[-1]
        # Keras: y (1 - s) + s / classes (a binary target: s / 2)
        return y * (1.0 - self.label_smoothing) + self.label_smoothing * share

    def _options(self):
        return {"from_logits": self.from_logits}

    def get_config(self):
        config = super().get_config()
        if self.smooths:
            config["label_smoothing"] = self.label_smoothing
        return config


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
    smooths = False

    def __init__(self, from_logits=False, ignore_class=None, axis=-1,
                 reduction="sum_over_batch_size", name=None):  # fmt: skip
        if ignore_class is not None:
            raise NotImplementedError(
                "SparseCategoricalCrossentropy(ignore_class=...) is not supported; give the "
                "samples to ignore a sample_weight of 0"
            )
        super().__init__(from_logits, 0.0, axis, reduction, name)


@registry.register(aliases=("binary_focal_crossentropy",))
class BinaryFocalCrossentropy(Loss):
    """Keras' binary focal cross-entropy (Lin et al., 2018): the binary cross-entropy of
    each element times (1 - p_t)^gamma, p_t the probability given to its true label, so
    that easy examples count less; with ``apply_class_balancing``, also times ``alpha``
    for label 1 and 1 - alpha for label 0. Averaged over ``axis`` per sample.
    ``label_smoothing`` squeezes the labels towards 0.5."""

    fn = staticmethod(F.binary_focal_crossentropy)
    name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None):  # fmt: skip
        super().__init__(reduction, name)
        owner = type(self).__name__
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = _losses.number_option(alpha, "alpha", owner)
        self.gamma = _losses.number_option(gamma, "gamma", owner)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _losses.smoothing_option(label_smoothing, owner)
        self.axis = _losses.axis_option(axis, owner)

    def _options(self):
        return {
            "apply_class_balancing": self.apply_class_balancing,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


@registry.register(aliases=("categorical_focal_crossentropy",))
class CategoricalFocalCrossentropy(Loss):
    """Keras' categorical focal cross-entropy: each class's cross-entropy term times
    alpha (1 - p)^gamma, summed over the classes (``axis``) per sample; one-hot (or soft)
    targets. ``alpha`` is one number or a list of one weight per class."""

    fn = staticmethod(F.categorical_focal_crossentropy)
    name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):  # fmt: skip
        super().__init__(reduction, name)
        owner = type(self).__name__
        self.alpha = _losses.alpha_option(alpha, owner)
        self.gamma = _losses.number_option(gamma, "gamma", owner)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _losses.smoothing_option(label_smoothing, owner)
        self.axis = _losses.class_axis_option(axis, owner)

    def _options(self):
        return {
            "alpha": self.alpha,
            "gamma": self.gamma,
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
            "axis": self.axis,
        }


@registry.register(aliases=("dice",))
class Dice(Loss):
    """Keras' Dice loss, 1 - 2 |y_true y_pred| / (|y_true| + |y_pred|), the sums over
    ``axis``: by default (None) over everything, one loss for the batch; ``axis=(1, 2,
    3)`` gives one per image of a segmentation batch (N, H, W, C)."""

    fn = staticmethod(F.dice)
    name = "dice"

    def __init__(self, reduction="sum_over_batch_size", name=None, axis=None):
        super().__init__(reduction, name)
        self.axis = _losses.axis_option(axis, type(self).__name__)

    def _options(self):
        return {"axis": self.axis}


@registry.register(aliases=("tversky",))
class Tversky(Loss):
    """Keras' Tversky loss (Salehi et al., 2017), the Dice loss with the two kinds of
    error weighed by ``alpha`` and ``beta`` (0.5 each: the Dice loss); the sums over
    ``axis`` (None: over everything, one loss for the batch)."""

    fn = staticmethod(F.tversky)
    name = "tversky"

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name=None,
                 axis=None):  # fmt: skip
        super().__init__(reduction, name)
        owner = type(self).__name__
        self.alpha = _losses.number_option(alpha, "alpha", owner)
        self.beta = _losses.number_option(beta, "beta", owner)
        self.axis = _losses.axis_option(axis, owner)

    def _options(self):
        return {"alpha": self.alpha, "beta": self.beta, "axis": self.axis}


# Keras' function forms, usable as ``loss=losses.mean_squared_error`` and called
# directly: one loss per sample, as Keras' return them.
def mean_squared_error(y_true, y_pred):
    """The mean over the last axis of (y_true - y_pred)^2, per sample."""
    return F.mean_squared_error(y_true, y_pred, reduction="none")


def mean_absolute_error(y_true, y_pred):
    """The mean over the last axis of |y_true - y_pred|, per sample."""
    return F.mean_absolute_error(y_true, y_pred, reduction="none")


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """The binary cross-entropy averaged over the last axis, per sample."""
    return F.binary_crossentropy(y_true, y_pred, from_logits=from_logits, reduction="none")


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """The cross-entropy of one-hot (or soft) targets, per sample."""
    return F.categorical_crossentropy(y_true, y_pred, from_logits=from_logits, reduction="none")


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """The cross-entropy of integer targets, per sample."""
    return F.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=from_logits, reduction="none"
    )


def huber(y_true, y_pred, delta=1.0):
    """The Huber loss averaged over the last axis, per sample."""
    return F.huber(y_true, y_pred, delta=delta, reduction="none")


def _per_sample(fn):
    def loss(y_true, y_pred):
        return fn(y_true, y_pred, reduction="none")

    loss.__name__, loss.__doc__ = fn.__name__, fn.__doc__
    return loss


mean_absolute_percentage_error = mape = MAPE = _per_sample(F.mean_absolute_percentage_error)
mean_squared_logarithmic_error = msle = MSLE = _per_sample(F.mean_squared_logarithmic_error)
hinge = _per_sample(F.hinge)
squared_hinge = _per_sample(F.squared_hinge)
categorical_hinge = _per_sample(F.categorical_hinge)
log_cosh = logcosh = _per_sample(F.log_cosh)
poisson = _per_sample(F.poisson)
kl_divergence = kld = KLD = _per_sample(F.kl_divergence)


def cosine_similarity(y_true, y_pred, axis=-1):
    """-cosine of the angle between y_true and y_pred over ``axis``, per sample."""
    return F.cosine_similarity(y_true, y_pred, axis=axis, reduction="none")


def binary_focal_crossentropy(y_true, y_pred, apply_class_balancing=False, alpha=0.25,
                              gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):  # fmt: skip
    """Keras' binary focal cross-entropy averaged over ``axis``, per sample."""
    return F.binary_focal_crossentropy(
        y_true, y_pred, apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
        from_logits=from_logits, label_smoothing=label_smoothing, axis=axis, reduction="none",
    )  # fmt: skip


def categorical_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False,
                                   label_smoothing=0.0, axis=-1):  # fmt: skip
    """Keras' categorical focal cross-entropy summed over the classes, per sample."""
    return F.categorical_focal_crossentropy(
        y_true, y_pred, alpha=alpha, gamma=gamma, from_logits=from_logits,
        label_smoothing=label_smoothing, axis=axis, reduction="none",
    )  # fmt: skip


def dice(y_true, y_pred, axis=None):
    """Keras' Dice loss over ``axis`` (None: one value for everything)."""
    return F.dice(y_true, y_pred, axis=axis, reduction="none")


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """Keras' Tversky loss over ``axis`` (None: one value for everything)."""
    return F.tversky(y_true, y_pred, alpha=alpha, beta=beta, axis=axis, reduction="none")


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

# each function form's class: compile(loss=<function>) trains with the class's fused kernels
_FUNCTION_CLASSES = {
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    huber: Huber,
    binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge,
    log_cosh: LogCosh,
    poisson: Poisson,
    kl_divergence: KLDivergence,
    cosine_similarity: CosineSimilarity,
    binary_focal_crossentropy: BinaryFocalCrossentropy,
    categorical_focal_crossentropy: CategoricalFocalCrossentropy,
    dice: Dice,
    tversky: Tversky,
}


def _class_of_function(fn):
    try:
        cls = _FUNCTION_CLASSES.get(fn)
    except TypeError:  # an unhashable callable
        cls = None
    if cls is not None:
        return cls
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
    """The config of a Loss, built-in or the user's own (which loading finds again in
    its ``custom_objects``), or a loss function's Keras config (its name); None for a
    callable that cannot be named, such as a lambda (a model compiled with one is saved
    uncompiled)."""
    if isinstance(loss, Loss) and registry.name_of(loss) is not None:
        return registry.serialize(loss)
    if not callable(loss):
        return None
    try:
        return custom_config(loss)
    except (TypeError, ValueError, AttributeError, KeyError, NotImplementedError):
        return None  # a get_config that fails: saved uncompiled, as any unnamed loss


def deserialize(config, custom_objects=None):
    """A Loss (or loss function) from its config or name; ``custom_objects`` (name ->
    class or function) are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)
