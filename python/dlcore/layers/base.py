"""The Layer base class and the InputLayer.

A layer creates its weights lazily in ``build(input_shape)`` on its first call (or when
``build`` is called directly), under a lock, so concurrent first calls build it once.
It is a plain callable on Tensors, so it works inside a model and in a hand-written
training loop alike. Layers assigned to a layer's attributes — directly or inside
lists, tuples and dicts — are tracked: their weights are the outer layer's too.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections import Counter

import numpy as np

from dlcore import activations, initializers, regularizers
from dlcore.registry import Registry
from dlcore.tensor import Tensor, as_tensor

__all__ = ["InputLayer", "Layer", "registry"]

registry = Registry("layer")

_name_counts = Counter()
_name_lock = threading.Lock()
_context = threading.local()  # the training flag of the outermost layer call in progress


def to_snake_case(name):
    """Keras' default-name rule: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` ->
    ``max_pooling2d``, ``LeakyReLU`` -> ``leaky_re_lu``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix):
    """``prefix``, then ``prefix_1``, ``prefix_2``, ... process-wide, as Keras names."""
    with _name_lock:
        n = _name_counts[prefix]
        _name_counts[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


def _layers_in(value, depth=0):
    """The layers inside an attribute value: itself, or those in a list/tuple/dict."""
    if isinstance(value, Layer):
        yield value
    elif depth < 4 and isinstance(value, (list, tuple)):
        for item in value:
            yield from _layers_in(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _layers_in(item, depth + 1)


def _batchless(shape):
    """An input shape with its batch dimension made None (lists of shapes too)."""
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    shape = tuple(shape)
    return (None, *shape[1:]) if shape else shape


def _wrap_build(build):
    """Makes a subclass's ``build`` idempotent and thread-safe, and records the shapes,
    however it is reached: a first call, a model's build or the user."""

    @functools.wraps(build)
    def wrapper(self, input_shape=None, *args, **kwargs):
        with self._build_lock:
            if self.built:
                return None
            out = build(self, input_shape, *args, **kwargs)
            self._record_shapes(input_shape)
            self.built = True
            return out

    wrapper._dlcore_wrapped = True
    return wrapper


class Layer:
    """Base layer.

    Args:
        name: unique by default, from the class name as Keras makes it (``dense``,
            ``dense_1``, ``conv2d``, ``max_pooling2d``, ...).
        trainable: whether the optimizer updates its weights.
        dtype: of the weights and the computation, float32 by default.
        input_shape: the shape of one sample, without the batch size; lets a
            Sequential model build itself (and ``summary()``) before seeing data.

    Subclasses create weights in ``build(input_shape)`` with :meth:`add_weight` and
    compute in ``call(inputs)`` (with ``training`` and ``mask`` arguments if they use
    them).
    """

    _untracked = frozenset()  # attribute names whose layers are not this layer's own
    casts_inputs = True  # a Model turns it off: its layers cast for themselves
    _call_args = frozenset({"training"})

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_dlcore_wrapped", False):
            cls.build = _wrap_build(build)
        call = cls.__dict__.get("call")
        if call is not None:
            params = inspect.signature(call).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                cls._call_args = frozenset({"training", "mask"})
            else:
                cls._call_args = frozenset(params) & {"training", "mask"}

    def __init__(
        self,
        name=None,
        trainable=True,
        dtype=None,
        input_shape=None,
        input_dim=None,
        batch_size=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected keyword arguments {sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {name!r}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.trainable = bool(trainable)
        try:
            self.dtype = np.dtype(dtype or "float32")
        except TypeError as e:
            raise TypeError(f"{self.name}: dtype {dtype!r} is not a NumPy dtype") from e
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"{self.name}: dtype must be float32 or float64 (the kernels' types), "
                f"got {self.dtype}"
            )
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None:
            input_shape = _sample_shape(input_shape, self.name)
        self._batch_input_shape = None if input_shape is None else (batch_size, *input_shape)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._non_trainable = set()
        self._penalties = []  # (regularizer, weight)
        self._build_lock = threading.RLock()

    # ------------------------------------------------------------ sub-layers
    def _tracked_layers(self):
        """The layers held in this layer's attributes, in assignment order."""
        found, seen = [], {id(self)}
        for attr, value in vars(self).items():
            if attr in self._untracked:
                continue
            for layer in _layers_in(value):
                if id(layer) not in seen:
                    seen.add(id(layer))
                    found.append(layer)
        return found

    # ------------------------------------------------------------ weights
    def add_weight(
        self, name, shape, initializer="glorot_uniform", regularizer=None, trainable=True
    ):
        """Creates, tracks and returns a weight Tensor; its name is ``<layer>/<name>``."""
        init = initializers.get(initializer)
        w = Tensor(
            np.ascontiguousarray(init(tuple(shape), self.dtype), dtype=self.dtype),
            requires_grad=bool(trainable),
        )
        w.name = f"{self.name}/{name}"
        self._weights.append(w)
        if not trainable:
            self._non_trainable.add(id(w))
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._penalties.append((reg, w))
        return w

    def _own_weights(self, trainable):
        return [w for w in self._weights if (id(w) not in self._non_trainable) == trainable]

    @staticmethod
    def _unique(tensors):
        seen, out = set(), []
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    @property
    def weights(self):
        """Every weight: this layer's trainable ones, its non-trainable ones, then those
        of its sub-layers (Keras' order)."""
        own = self._own_weights(True) + self._own_weights(False)
        return self._unique(own + [w for l in self._tracked_layers() for w in l.weights])

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        sub = [w for l in self._tracked_layers() for w in l.trainable_weights]
        return self._unique(self._own_weights(True) + sub)

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    @property
    def losses(self):
        """The regularization penalties of this layer's weights (and its sub-layers'),
        as scalar Tensors."""
        own = [reg(w) for reg, w in self._penalties]
        return own + [p for l in self._tracked_layers() for p in l.losses]

    def get_weights(self):
        return [w.data.copy() for w in self.weights]

    def set_weights(self, weights):
        weights, own = list(weights), self.weights
        if len(weights) != len(own):
            raise ValueError(
                f"{self.name}: set_weights got {len(weights)} arrays, but it has "
                f"{len(own)} weights ({[w.name for w in own]})"
            )
        for w, value in zip(own, weights):
            value = np.asarray(value)
            if value.shape != w.shape:
                raise ValueError(
                    f"{self.name}: weight {w.name} has shape {w.shape}, "
                    f"got an array of shape {value.shape}"
                )
        for w, value in zip(own, weights):
            w.data[...] = value

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------ building
    def build(self, input_shape):
        """Creates the weights for inputs of ``input_shape`` (batch dimension included)."""

    def _record_shapes(self, input_shape):
        if input_shape is None:
            return
        self.input_shape = _batchless(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)

    def _ensure_built(self, input_shape):
        if not self.built:
            self.build(input_shape)
            if not self.built:  # a build defined on Layer itself is not wrapped
                with self._build_lock:
                    self._record_shapes(input_shape)
                    self.built = True

    def compute_output_shape(self, input_shape):
        return input_shape

    # ------------------------------------------------------------ calling
    def call(self, inputs, training=False):
        raise NotImplementedError(f"{type(self).__name__} must define call(inputs)")

    def _cast(self, x):
        """Keras casts a layer's floating inputs to its dtype; integers stay as they are
        only for layers that take indices (they set ``casts_inputs = False``)."""
        x = as_tensor(x)
        if (
            self.casts_inputs
            and x.dtype != self.dtype
            and (x.dtype.kind != "f" or not x.requires_grad)
        ):
            x = Tensor(x.data.astype(self.dtype))
        return x

    def __call__(self, inputs, *args, training=None, mask=None, **kwargs):
        if isinstance(inputs, (list, tuple)):
            x = [self._cast(t) for t in inputs]
            shape = [t.shape for t in x]
        else:
            x = self._cast(inputs)
            shape = x.shape
        self._ensure_built(shape)
        outer = getattr(_context, "training", None)
        if training is None:
            training = bool(outer)  # inherited from the enclosing layer's call, as Keras
        if "training" in self._call_args:
            kwargs["training"] = training
        if mask is not None and "mask" in self._call_args:
            kwargs["mask"] = mask
        _context.training = training
        try:
            return self.call(x, *args, **kwargs)
        finally:
            _context.training = outer

    # ------------------------------------------------------------ config
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._batch_input_shape is not None:
            config["input_shape"] = list(self._batch_input_shape[1:])
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _sample_shape(shape, owner):
    """A per-sample shape (no batch dimension) as a tuple of positive ints or None."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(
            f"{owner}: input_shape must be a tuple of dimensions such as (28, 28, 1), got {shape!r}"
        ) from None
    for d in dims:
        ok = d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0)
        if not ok:
            raise ValueError(
                f"{owner}: input_shape must hold positive ints (or None), got {shape!r}"
            )
    return tuple(None if d is None else int(d) for d in dims)


@registry.register()
class InputLayer(Layer):
    """Declares the shape of one sample; the first entry of a Sequential model."""

    def __init__(self, shape=None, batch_size=None, name=None, dtype=None, input_shape=None,
                 **kwargs):  # fmt: skip
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise ValueError("InputLayer: give the shape of one sample, e.g. shape=(784,)")
        super().__init__(name=name, dtype=dtype, input_shape=shape, batch_size=batch_size, **kwargs)

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {
            "shape": list(self._batch_input_shape[1:]),
            "name": self.name,
            "dtype": self.dtype.name,
        }


def kernel_bias_options(
    layer, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
    bias_regularizer,
):  # fmt: skip
    """Sets the options every layer with a kernel and a bias takes."""
    layer.activation = activations.get(activation)
    layer.use_bias = bool(use_bias)
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)
    layer.kernel = layer.bias = None


def kernel_bias_config(layer):
    return {
        "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
    }


def positive_int(value, name, owner):
    """``value`` as an int >= 1, or a ValueError naming the argument."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)
