"""Keras-style layers. A layer creates its weights lazily in ``build(input_shape)`` on
its first call, and is a plain callable on Tensors, so it works inside a Sequential
model and in a hand-written training loop alike."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from dlcore import activations, initializers, regularizers
from dlcore import functional as F
from dlcore.tensor import Tensor, as_tensor

__all__ = [
    "Layer",
    "InputLayer",
    "Input",
    "Dense",
    "Conv2D",
    "MaxPooling2D",
    "Flatten",
    "Reshape",
    "Dropout",
    "Activation",
    "LeakyReLU",
    "LSTM",
    "get",
    "serialize",
    "deserialize",
]

_name_counts = Counter()


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _unique_name(prefix):
    n = _name_counts[prefix]
    _name_counts[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


def _pair(value, name):
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return value


def _kernel_bias_options(
    layer,
    activation,
    use_bias,
    kernel_initializer,
    bias_initializer,
    kernel_regularizer,
    bias_regularizer,
):
    """Sets the options every layer with a kernel and a bias takes."""
    layer.activation = activations.get(activation)
    layer.use_bias = use_bias
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)
    layer.kernel = layer.bias = None


def _kernel_bias_config(layer):
    return {
        "activation": activations.serialize(layer.activation),
        "use_bias": layer.use_bias,
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
    }


def _padding_mode(padding):
    mode = str(padding).lower()
    if mode not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return mode


class Layer:
    """Base layer.

    Args:
        name: unique by default (``dense``, ``dense_1``, ...).
        trainable: whether the optimizer updates its weights.
        dtype: of the weights and the computation, float32 by default.
        input_shape: the shape of one sample, without the batch size; lets a
            Sequential model build itself (and ``summary()``) before seeing data.
    """

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
        self.name = name or _unique_name(_snake(type(self).__name__))
        self.trainable = trainable
        self.dtype = np.dtype(dtype or "float32")
        if self.dtype.kind != "f":
            raise TypeError(f"{self.name}: dtype must be a floating-point type, got {self.dtype}")
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._batch_input_shape = None if input_shape is None else (batch_size, *input_shape)
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self._weights = []
        self._non_trainable = set()
        self._penalties = []  # (regularizer, weight)

    # ------------------------------------------------------------ weights
    def add_weight(
        self, name, shape, initializer="glorot_uniform", regularizer=None, trainable=True
    ):
        """Creates, tracks and returns a weight Tensor; its name is ``<layer>/<name>``."""
        init = initializers.get(initializer)
        w = Tensor(
            np.ascontiguousarray(init(tuple(shape), self.dtype), dtype=self.dtype),
            requires_grad=True,
        )
        w.name = f"{self.name}/{name}"
        self._weights.append(w)
        if not trainable:
            self._non_trainable.add(id(w))
        reg = regularizers.get(regularizer)
        if reg is not None:
            self._penalties.append((reg, w))
        return w

    @property
    def weights(self):
        return list(self._weights)

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for w in self._weights if id(w) not in self._non_trainable]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return list(self._weights)
        return [w for w in self._weights if id(w) in self._non_trainable]

    @property
    def losses(self):
        """The regularization penalties of this layer's weights, as scalar Tensors."""
        return [reg(w) for reg, w in self._penalties]

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
            w.data[...] = value

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    # ------------------------------------------------------------ calling
    def build(self, input_shape):
        """Creates the weights for inputs of ``input_shape`` (batch dimension included)."""

    def call(self, inputs, training=False):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def _ensure_built(self, input_shape):
        if not self.built:
            input_shape = tuple(input_shape)
            self.build(input_shape)
            self.built = True
            self.input_shape = (None, *input_shape[1:])
            self.output_shape = self.compute_output_shape(self.input_shape)

    casts_inputs = True  # a Model turns it off: its layers cast for themselves

    def __call__(self, inputs, training=False, **kwargs):
        x = as_tensor(inputs)
        if (
            self.casts_inputs
            and x.dtype != self.dtype
            and (x.dtype.kind != "f" or not x.requires_grad)
        ):
            x = Tensor(x.data.astype(self.dtype))  # Keras casts inputs to the layer's dtype
        self._ensure_built(x.shape)
        return self.call(x, training=training, **kwargs)

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


class InputLayer(Layer):
    """Declares the shape of one sample; the first entry of a Sequential model."""

    def __init__(self, shape=None, batch_size=None, name=None, dtype=None, input_shape=None):
        shape = input_shape if shape is None else shape
        if shape is None:
            raise ValueError("Input: shape is required, e.g. Input(shape=(28, 28, 1))")
        super().__init__(name=name, dtype=dtype, input_shape=tuple(shape), batch_size=batch_size)

    def call(self, inputs, training=False):
        return inputs

    def get_config(self):
        return {
            "shape": list(self._batch_input_shape[1:]),
            "name": self.name,
            "dtype": self.dtype.name,
        }


def Input(shape=None, batch_size=None, name=None, dtype=None):
    """``layers.Input(shape=(784,))``: the input declaration of a Sequential model."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype)


class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis.

    Input shape: (batch, ..., input_dim). Output shape: (batch, ..., units).
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense: units must be a positive int, got {units!r}")
        self.units = int(units)
        _kernel_bias_options(
            self,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
        )

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: Dense needs inputs (batch, ..., features) with a "
                f"known last dimension, got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            "kernel",
            (input_shape[-1], self.units),
            self.kernel_initializer,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.units,), self.bias_initializer, self.bias_regularizer
            )

    def call(self, inputs, training=False):
        if inputs.shape[-1] != self.kernel.shape[0]:
            raise ValueError(
                f"{self.name}: expected inputs with {self.kernel.shape[0]} "
                f"features on the last axis, got shape {inputs.shape}"
            )
        return self.activation(F.linear(inputs, self.kernel, self.bias))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, **_kernel_bias_config(self)}


def _conv_output_size(size, kernel, stride, dilation, mode):
    if size is None:
        return None
    if mode == "same":
        return -(-size // stride)
    return (size - dilation * (kernel - 1) - 1) // stride + 1


class Conv2D(Layer):
    """2-D convolution over channels-last images.

    Input shape: (batch, rows, cols, channels). Output shape: (batch, new_rows,
    new_cols, filters). Kernel: (kernel_rows, kernel_cols, channels, filters).
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"Conv2D: dlcore is channels-last; data_format={data_format!r} is not supported"
            )
        if not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"Conv2D: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        self.padding = _padding_mode(padding)
        _kernel_bias_options(
            self,
            activation,
            use_bias,
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
        )

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: Conv2D needs inputs (batch, rows, cols, channels), "
                f"got shape {input_shape}"
            )
        self.kernel = self.add_weight(
            "kernel",
            (*self.kernel_size, input_shape[-1], self.filters),
            self.kernel_initializer,
            self.kernel_regularizer,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (self.filters,), self.bias_initializer, self.bias_regularizer
            )

    def call(self, inputs, training=False):
        y = F.conv2d(
            inputs,
            self.kernel,
            self.bias,
            strides=self.strides,
            padding=self.padding,
            dilation=self.dilation_rate,
        )
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        rows, cols = (
            _conv_output_size(n, k, s, d, self.padding)
            for n, k, s, d in zip(
                input_shape[1:3], self.kernel_size, self.strides, self.dilation_rate
            )
        )
        return (input_shape[0], rows, cols, self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding,
            "dilation_rate": list(self.dilation_rate),
            **_kernel_bias_config(self),
        }


class MaxPooling2D(Layer):
    """Max over pool_size windows, channels-last; strides default to pool_size."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(
                f"MaxPooling2D: dlcore is channels-last; data_format="
                f"{data_format!r} is not supported"
            )
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _pair(strides, "strides")
        self.padding = _padding_mode(padding)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.name}: MaxPooling2D needs inputs (batch, rows, cols, "
                f"channels), got shape {input_shape}"
            )

    def call(self, inputs, training=False):
        return F.max_pool2d(inputs, self.pool_size, self.strides, self.padding)

    def compute_output_shape(self, input_shape):
        rows, cols = (
            _conv_output_size(n, k, s, 1, self.padding)
            for n, k, s in zip(input_shape[1:3], self.pool_size, self.strides)
        )
        return (input_shape[0], rows, cols, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)."""

    def call(self, inputs, training=False):
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(math.prod(rest)))


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs, training=False):
        return inputs.reshape(inputs.shape[0], *self.target_shape)

    def compute_output_shape(self, input_shape):
        shape = list(self.target_shape)
        if -1 in shape and None not in input_shape[1:]:
            known = math.prod(d for d in shape if d != -1)
            shape[shape.index(-1)] = math.prod(input_shape[1:]) // known
        return (input_shape[0], *shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs in training (scaling the rest by
    1 / (1 - rate)); the identity in inference."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=False):
        return F.dropout(inputs, self.rate, training=training, noise_shape=self.noise_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "noise_shape": self.noise_shape,
            "seed": self.seed,
        }


class Activation(Layer):
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs, training=False):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class LeakyReLU(Layer):
    """x for x > 0, negative_slope * x otherwise (Keras' default slope 0.3)."""

    def __init__(self, negative_slope=0.3, alpha=None, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope if alpha is None else alpha)

    def call(self, inputs, training=False):
        return F.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class LSTM(Layer):
    """Long short-term memory over a whole sequence, with Keras' weights and gate order.

    Input shape: (batch, timesteps, features). Output: (batch, units), or
    (batch, timesteps, units) with ``return_sequences``; with ``return_state`` a list
    ``[output, h_n, c_n]``. Weights: ``kernel`` (features, 4*units),
    ``recurrent_kernel`` (units, 4*units), ``bias`` (4*units,), gates i, f, c, o.
    """

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        return_sequences=False,
        return_state=False,
        dropout=0.0,
        recurrent_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"LSTM: units must be a positive int, got {units!r}")
        if activation != "tanh" or recurrent_activation != "sigmoid":
            raise ValueError(
                "LSTM: dlcore's kernel computes activation='tanh' and "
                "recurrent_activation='sigmoid' (Keras' defaults); got "
                f"{activation!r} and {recurrent_activation!r}"
            )
        if dropout or recurrent_dropout:
            raise ValueError(
                "LSTM: dropout / recurrent_dropout inside the cell are not "
                "supported; put a Dropout layer after the LSTM instead"
            )
        self.units = int(units)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.unit_forget_bias = unit_forget_bias
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.kernel = self.recurrent_kernel = self.bias = None

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: LSTM needs inputs (batch, timesteps, features), "
                f"got shape {input_shape}"
            )
        U = self.units
        self.kernel = self.add_weight(
            "kernel", (input_shape[-1], 4 * U), self.kernel_initializer, self.kernel_regularizer
        )
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (U, 4 * U), self.recurrent_initializer, self.recurrent_regularizer
        )
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (4 * U,), self.bias_initializer, self.bias_regularizer
            )
            if self.unit_forget_bias:
                self.bias.data[U : 2 * U] = 1.0

    def call(self, inputs, training=False, initial_state=None):
        h0 = c0 = None
        if initial_state is not None:
            h0, c0 = initial_state
        bias = self.bias if self.use_bias else np.zeros(4 * self.units, self.dtype)
        y, h_n, c_n = F.lstm(inputs, h0, c0, self.kernel, self.recurrent_kernel, bias)
        out = y if self.return_sequences else h_n
        return [out, h_n, c_n] if self.return_state else out

    def compute_output_shape(self, input_shape):
        seq = (input_shape[0], input_shape[1], self.units)
        last = (input_shape[0], self.units)
        out = seq if self.return_sequences else last
        return [out, last, last] if self.return_state else out

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "unit_forget_bias": self.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
        }


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        InputLayer,
        Dense,
        Conv2D,
        MaxPooling2D,
        Flatten,
        Reshape,
        Dropout,
        Activation,
        LeakyReLU,
        LSTM,
    )
}


def serialize(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config):
    name = config["class_name"]
    if name not in _BY_NAME:
        raise ValueError(f"unknown layer class {name!r}; dlcore knows {sorted(_BY_NAME)}")
    return _BY_NAME[name].from_config(dict(config["config"]))


get = deserialize
