"""ONNX export: ``model.export("m.onnx")`` writes the model's inference graph (opset 17,
float32, the batch dimension dynamic) for ONNX Runtime and other ONNX consumers. An
``Input`` declared with an integer or bool dtype is a graph input of that dtype: an
Embedding gathers its ids as they come (exact above 2**24), and a layer computing in
floats gets them cast to float32, as dlcore's layers cast their inputs.

Each layer class has a converter, registered by its class name::

    @converter("Dense")
    def dense(g, layer, x):
        return g.activation(layer.activation, g.op("Gemm"...))

A converter gets the :class:`Graph` being built, the layer and the ONNX names of its
inputs (a name, or a list for a layer called on a list), plus the call's keyword
arguments, and returns the name(s) of its output(s) in the structure the layer returns.
Activations likewise (:func:`activation`). Models (Sequential, functional, nested) are
inlined. Images stay channels-last as in dlcore: a convolution or pooling transposes to
ONNX's NCHW and back, and pairs of transposes that cancel are removed afterwards.
LSTM becomes ONNX's ``LSTM`` operator (gates reordered from Keras' i, f, c, o to ONNX's
i, o, f, c), GRU its ``GRU`` (``linear_before_reset`` = Keras' ``reset_after``), SimpleRNN
its ``RNN``, a Bidirectional one of them with ``direction="bidirectional"``, and
TimeDistributed folds the steps into the batch around its layer; Dropout is the identity,
as are GaussianNoise and SpatialDropout2D. BatchNormalization is exported in inference
mode (its moving statistics). A mask cannot be exported (ONNX's recurrent operators take
no per-step mask): Masking, and an Embedding with ``mask_zero``, are export errors that
say so.
"""

from __future__ import annotations

import numpy as np

from dlcore import activations as activations_module
from dlcore.functional.window import conv_transpose_padding, same_padding
from dlcore.layers.base import registry
from dlcore.layers.symbolic import flatten, pack_like

__all__ = ["OPSET", "Graph", "activation", "converter", "export_onnx"]

OPSET = 17
IR_VERSION = 8  # the IR version of opset 17, which every ONNX Runtime since 1.13 reads
_CONVERTERS = {}
_ACTIVATIONS = {}


def converter(class_name):
    """Registers ``fn(graph, layer, inputs, **call_kwargs)`` as the ONNX converter of
    the layer class ``class_name``."""

    def register(fn):
        _CONVERTERS[class_name] = fn
        return fn

    return register


def activation(name):
    """Registers ``fn(graph, x) -> name`` for the activation called ``name``."""

    def register(fn):
        _ACTIVATIONS[name] = fn
        return fn

    return register


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package: pip install 'dlcore[onnx]'") from e
    return onnx


class Graph:
    """The ONNX graph under construction: nodes, weights (initializers) and names."""

    def __init__(self):
        self.onnx = _onnx()
        self.nodes = []
        self.initializers = []
        self._names = set()
        self._weights = {}  # (id(weight), transform) -> initializer name
        self._dtypes = {}  # name -> NumPy dtype of the values that are not float32
        self._as_float = {}  # integer name -> its float32 cast, made once

    def name(self, hint):
        base = str(hint).replace("/", "_") or "t"
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def const(self, value, hint, dtype=np.float32):
        """An initializer holding ``value``."""
        name = self.name(hint)
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def weight(self, tensor, transform=None):
        """A layer's weight (through ``transform``) as a float32 initializer; a shared
        layer's calls share it."""
        key = (id(tensor), getattr(transform, "__qualname__", None))
        if key not in self._weights:
            data = tensor.data if transform is None else transform(tensor.data)
            self._weights[key] = self.const(data, tensor.name or "w")
        return self._weights[key]

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        """Adds a node; returns its output name (a list of them for ``outputs`` > 1)."""
        names = [self.name(f"{hint or op_type}_{i}" if outputs > 1 else hint or op_type)
                 for i in range(outputs)]  # fmt: skip
        self.nodes.append(
            self.onnx.helper.make_node(
                op_type, list(inputs), names, name=self.name(f"{op_type}_node"), **attrs
            )
        )
        return names if outputs > 1 else names[0]

    def ints(self, values, hint="shape"):
        return self.const(values, hint, dtype=np.int64)

    def dtype(self, name):
        """The NumPy dtype of the value ``name``: float32 unless it was declared otherwise
        (an integer or bool graph input, and what passes it on unchanged)."""
        return self._dtypes.get(name, np.dtype(np.float32)) if isinstance(name, str) else None

    def declare(self, name, dtype):
        """Records that the value ``name`` (a graph input) is of ``dtype``."""
        if np.dtype(dtype) != np.float32:
            self._dtypes[name] = np.dtype(dtype)
        return name

    def as_float(self, name):
        """``name`` cast to float32 if it is an integer or bool value, as a dlcore layer
        casts its inputs to its own dtype."""
        dtype = self.dtype(name)
        if dtype is None or dtype.kind == "f":
            return name
        if name not in self._as_float:
            self._as_float[name] = self.op("Cast", [name], hint=f"{name}_float",
                                           to=self.onnx.TensorProto.FLOAT)  # fmt: skip
        return self._as_float[name]

    def activation(self, fn, x, hint=None):
        name = activations_module.registry.name_of(fn)
        if name not in _ACTIVATIONS:
            raise ValueError(
                f"ONNX export: no converter for the activation {name or fn!r}; dlcore exports "
                f"{sorted(_ACTIVATIONS)}"
            )
        return _ACTIVATIONS[name](self, x)

    def layer(self, layer, inputs, kwargs=None):
        class_name = registry.name_of(layer)
        fn = _CONVERTERS.get(class_name)
        if fn is None:
            raise ValueError(
                f"ONNX export: layer {layer.name!r} is a {type(layer).__name__}, which has no "
                f"ONNX converter (dlcore exports {', '.join(sorted(_CONVERTERS))})"
            )
        if layer.casts_inputs and layer.dtype.kind == "f":
            inputs = pack_like(inputs, map(self.as_float, flatten(inputs)))
        return fn(self, layer, inputs, **(kwargs or {}))


# ---------------------------------------------------------------- activations


@activation("linear")
def _linear(g, x):
    return x


for _name, _op in (("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh")):
    activation(_name)(lambda g, x, op=_op: g.op(op, [x]))


@activation("softmax")
def _softmax(g, x):
    return g.op("Softmax", [x], axis=-1)


@activation("leaky_relu")
def _leaky_relu(g, x):
    return g.op("LeakyRelu", [x], alpha=0.2)  # F.leaky_relu's default slope


for _name, _op, _attrs in (
    ("elu", "Elu", {"alpha": 1.0}),
    ("selu", "Selu", {"alpha": 1.6732632423543772, "gamma": 1.0507009873554805}),
    ("softplus", "Softplus", {}),
    ("softsign", "Softsign", {}),
    ("hard_sigmoid", "HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}),  # relu6(x + 3) / 6
    ("hard_silu", "HardSwish", {}),
    ("exponential", "Exp", {}),
    ("log_softmax", "LogSoftmax", {"axis": -1}),
):
    activation(_name)(lambda g, x, op=_op, attrs=_attrs: g.op(op, [x], **attrs))


@activation("relu6")
def _relu6(g, x):
    return g.op("Clip", [x, g.const(0.0, "zero"), g.const(6.0, "six")])


@activation("gelu")
def _gelu(g, x):  # the exact form, x Phi(x); ONNX's Gelu operator comes in opset 20
    erf = g.op("Erf", [g.op("Mul", [x, g.const(1 / np.sqrt(2), "rsqrt2")])])
    half_x = g.op("Mul", [x, g.const(0.5, "half")])
    return g.op("Mul", [half_x, g.op("Add", [erf, g.const(1.0, "one")])])


@activation("silu")
def _silu(g, x):
    return g.op("Mul", [x, g.op("Sigmoid", [x])])


@activation("mish")
def _mish(g, x):
    return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])


# ---------------------------------------------------------------- models


@converter("Sequential")
def _sequential(g, model, x, **kwargs):
    for layer in model.layers:
        x = g.layer(layer, x)
    return x


@converter("Functional")
def _functional(g, model, inputs, **kwargs):
    values = {id(spec): name for spec, name in zip(model.inputs, flatten(inputs))}

    def onnx_name(leaf):
        return values[id(leaf)] if hasattr(leaf, "history") else leaf

    for node in model._nodes:
        args = pack_like(node.args, map(onnx_name, flatten(node.args)))
        call_kwargs = pack_like(node.kwargs, map(onnx_name, flatten(node.kwargs)))
        out = g.layer(node.layer, args[0], call_kwargs)
        for spec, name in zip(flatten(node.outputs), flatten(out)):
            values[id(spec)] = name
    return pack_like(model._outputs_struct, [values[id(t)] for t in model.outputs])


# ---------------------------------------------------------------- core


@converter("InputLayer")
@converter("Dropout")
def _identity(g, layer, x, **kwargs):
    return x


@converter("Dense")
def _dense(g, layer, x, **kwargs):
    y = g.op("MatMul", [x, g.weight(layer.kernel)], hint=layer.name)
    if layer.use_bias:
        y = g.op("Add", [y, g.weight(layer.bias)], hint=layer.name)
    return g.activation(layer.activation, y)


@converter("Activation")
def _activation(g, layer, x, **kwargs):
    return g.activation(layer.activation, x)


@converter("LeakyReLU")
def _leaky(g, layer, x, **kwargs):
    return g.op("LeakyRelu", [x], hint=layer.name, alpha=layer.negative_slope)


@converter("Flatten")
def _flatten(g, layer, x, **kwargs):
    return g.op("Flatten", [x], hint=layer.name, axis=1)


@converter("Reshape")
def _reshape(g, layer, x, **kwargs):
    return g.op("Reshape", [x, g.ints([0, *layer.target_shape])], hint=layer.name)


# ---------------------------------------------------------------- images (NHWC <-> NCHW)

_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _pads(layer, window, dilation=(1, 1)):
    """ONNX pads [top, left, bottom, right] ([before, after] for one axis) for the
    layer's padding at its input size."""
    rank = len(window)
    if layer.padding == "valid":
        return [0] * (2 * rank)
    if layer.padding == "causal":
        return [dilation[0] * (window[0] - 1), 0]
    sizes = layer.input_shape[1 : 1 + rank]
    if any(n is None for n in sizes):
        return None  # unknown size: auto_pad SAME_UPPER (the odd pixel after, as Keras)
    befores, afters = zip(*(same_padding(n, k, s, d) for n, k, s, d in
                            zip(sizes, window, layer.strides, dilation)))  # fmt: skip
    return [*befores, *afters]


def _window_attrs(layer, window, dilation=(1, 1)):
    pads = _pads(layer, window, dilation)
    return {"pads": pads} if pads is not None else {"auto_pad": "SAME_UPPER"}


def _windowed_conv(g, layer, x, kernel, group=1, bias=True, hint=None):
    """ONNX's Conv of NHWC x (transposed to NCHW) over the layer's window, with its bias
    unless ``bias`` is False; the result stays NCHW."""
    inputs = [g.op("Transpose", [x], perm=_TO_NCHW), kernel]
    if bias and layer.use_bias:
        inputs.append(g.weight(layer.bias))
    return g.op("Conv", inputs, hint=hint or layer.name, kernel_shape=list(layer.kernel_size),
                strides=list(layer.strides), dilations=list(layer.dilation_rate), group=group,
                **_window_attrs(layer, layer.kernel_size, layer.dilation_rate))  # fmt: skip


def _activation_to_nhwc(g, layer, y):
    """The layer's activation on NCHW y, and y back to NHWC."""
    if activations_module.registry.name_of(layer.activation) in _ELEMENTWISE:
        y = g.activation(layer.activation, y)  # before the transpose: it may cancel
        return g.op("Transpose", [y], perm=_TO_NHWC)
    return g.activation(layer.activation, g.op("Transpose", [y], perm=_TO_NHWC))


@converter("Conv2D")
def _conv2d(g, layer, x, **kwargs):
    return _activation_to_nhwc(g, layer, _windowed_conv(g, layer, x, g.weight(layer.kernel, _OIHW)))


def _depthwise_OIHW(kernel):
    # (KH, KW, C, M) -> (C * M, 1, KH, KW): output channel c * M + m, one input channel each
    KH, KW, C, M = kernel.shape
    return kernel.transpose(2, 3, 0, 1).reshape(C * M, 1, KH, KW)


@converter("DepthwiseConv2D")
def _depthwise_conv2d(g, layer, x, **kwargs):
    kernel = g.weight(layer.kernel, _depthwise_OIHW)
    return _activation_to_nhwc(
        g, layer, _windowed_conv(g, layer, x, kernel, group=layer.kernel.shape[2])
    )


@converter("SeparableConv2D")
def _separable_conv2d(g, layer, x, **kwargs):
    # The depthwise Conv (group = channels, no bias), then a 1x1 Conv with the bias.
    depthwise = layer.depthwise_kernel
    y = _windowed_conv(g, layer, x, g.weight(depthwise, _depthwise_OIHW),
                       group=depthwise.shape[2], bias=False, hint=f"{layer.name}_depthwise")  # fmt: skip
    inputs = [y, g.weight(layer.pointwise_kernel, _OIHW)]
    if layer.use_bias:
        inputs.append(g.weight(layer.bias))
    y = g.op("Conv", inputs, hint=layer.name, kernel_shape=[1, 1])
    return _activation_to_nhwc(g, layer, y)


_ELEMENTWISE = {"linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "softplus",
                "softsign", "hard_sigmoid", "hard_silu", "exponential", "relu6", "gelu",
                "silu", "mish"}  # fmt: skip


def _OIHW(kernel):
    return kernel.transpose(3, 2, 0, 1)  # (KH, KW, C, OC) -> (OC, C, KH, KW)


@converter("MaxPooling2D")
def _max_pooling2d(g, layer, x, **kwargs):
    y = g.op("MaxPool", [g.op("Transpose", [x], perm=_TO_NCHW)], hint=layer.name,
             kernel_shape=list(layer.pool_size), strides=list(layer.strides),
             **_window_attrs(layer, layer.pool_size))  # fmt: skip
    return g.op("Transpose", [y], perm=_TO_NHWC)


@converter("Conv2DTranspose")
def _conv2d_transpose(g, layer, x, **kwargs):
    # Keras' (KH, KW, filters, channels) is ONNX's (C, M, kH, kW) under the same transpose
    # as Conv2D's kernel; 'valid'/'same' become crops and output_padding, as the kernels
    # take them, independent of the input size.
    ((top, bottom), (left, right)), added = conv_transpose_padding(
        layer.padding, layer.kernel_size, layer.strides, layer.dilation_rate,
        layer.output_padding,
    )  # fmt: skip
    inputs = [g.op("Transpose", [x], perm=_TO_NCHW), g.weight(layer.kernel, _OIHW)]
    if layer.use_bias:
        inputs.append(g.weight(layer.bias))
    y = g.op("ConvTranspose", inputs, hint=layer.name, kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate),
             pads=[top, left, bottom, right], output_padding=list(added))  # fmt: skip
    return g.activation(layer.activation, g.op("Transpose", [y], perm=_TO_NHWC))


# ---------------------------------------------------------------- sequences (NLC <-> NCL)

_SWAP_LAST = [0, 2, 1]


def _OIK(kernel):
    return kernel.transpose(2, 1, 0)  # (K, C, OC) -> (OC, C, K)


@converter("Conv1D")
def _conv1d(g, layer, x, **kwargs):
    inputs = [g.op("Transpose", [x], perm=_SWAP_LAST), g.weight(layer.kernel, _OIK)]
    if layer.use_bias:
        inputs.append(g.weight(layer.bias))
    y = g.op("Conv", inputs, hint=layer.name, kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate),
             **_window_attrs(layer, layer.kernel_size, layer.dilation_rate))  # fmt: skip
    return g.activation(layer.activation, g.op("Transpose", [y], perm=_SWAP_LAST))


def _pooling(g, layer, x, op_type):
    rank = len(layer.pool_size)
    to_channels_first = _TO_NCHW if rank == 2 else _SWAP_LAST
    to_channels_last = _TO_NHWC if rank == 2 else _SWAP_LAST
    # count_include_pad=0: 'same' average pooling divides by the positions inside, as Keras.
    extra = {"count_include_pad": 0} if op_type == "AveragePool" else {}
    y = g.op(op_type, [g.op("Transpose", [x], perm=to_channels_first)], hint=layer.name,
             kernel_shape=list(layer.pool_size), strides=list(layer.strides),
             **_window_attrs(layer, layer.pool_size, (1,) * rank), **extra)  # fmt: skip
    return g.op("Transpose", [y], perm=to_channels_last)


@converter("MaxPooling1D")
def _max_pooling1d(g, layer, x, **kwargs):
    return _pooling(g, layer, x, "MaxPool")


@converter("AveragePooling1D")
@converter("AveragePooling2D")
def _average_pooling(g, layer, x, **kwargs):
    return _pooling(g, layer, x, "AveragePool")


@converter("GlobalAveragePooling1D")
@converter("GlobalAveragePooling2D")
@converter("GlobalMaxPooling1D")
@converter("GlobalMaxPooling2D")
def _global_pooling(g, layer, x, **kwargs):
    # A mask on GlobalAveragePooling1D's input is not exported: ONNX inputs carry none.
    op_type = "ReduceMax" if "Max" in type(layer).__name__ else "ReduceMean"
    axes = [1] if type(layer).__name__.endswith("1D") else [1, 2]
    return g.op(op_type, [x], hint=layer.name, axes=axes, keepdims=int(layer.keepdims))


# ---------------------------------------------------------------- recurrent


def _ifco_to_iofc(w):
    i, f, c, o = np.split(w, 4, axis=-1)
    return np.concatenate([i, o, f, c], axis=-1)


# The recurrent layers as ONNX's LSTM, GRU and RNN operators: how each maps its Keras
# weights (gate order, biases) and options onto the operator.


def _lstm_weights(layer):
    U = layer.units
    bias = layer.bias.data if layer.use_bias else np.zeros(4 * U, np.float32)
    return _ifco_to_iofc, np.concatenate([_ifco_to_iofc(bias), np.zeros(4 * U)]), {}


def _gru_weights(layer):
    # Keras' gates z, r, h are ONNX's; reset_after is ONNX's linear_before_reset, with
    # the input and recurrent biases apart as ONNX keeps them
    G = 3 * layer.units
    if not layer.use_bias:
        bias = np.zeros(2 * G)
    else:
        bias = layer.bias.data.reshape(-1)
        bias = bias if layer.reset_after else np.concatenate([bias, np.zeros(G)])
    return None, bias, {"linear_before_reset": int(layer.reset_after)}


def _simple_rnn_weights(layer):
    U = layer.units
    bias = layer.bias.data if layer.use_bias else np.zeros(U, np.float32)
    return None, np.concatenate([bias, np.zeros(U)]), {"activations": [layer.activation.title()]}


# class name -> (ONNX operator, states, the weights' gate reorder, bias and attributes)
_RECURRENT = {"LSTM": ("LSTM", 2, _lstm_weights), "GRU": ("GRU", 1, _gru_weights),
              "SimpleRNN": ("RNN", 1, _simple_rnn_weights)}  # fmt: skip


def _reverse_time(g, x):
    """x (N, T, ...) with its steps in reverse order."""
    big = np.iinfo(np.int64).max
    return g.op("Slice", [x, g.ints([-1]), g.ints([-big]), g.ints([1]), g.ints([-1])])


def _recurrent(g, layers_, x, initial_state, direction):
    """One ONNX recurrent node for ``layers_`` (one layer, or the forward and backward
    layers of a Bidirectional) on x (N, T, I). Returns (Y (T, D, N, U), [state (D, N, U)
    for each of the layer's states])."""
    first = layers_[0]
    op_type, n_states, weights = _RECURRENT[type(first).__name__]
    W, R, B, attrs = [], [], [], {}
    for layer in layers_:
        reorder, bias, attrs = weights(layer)
        ordered = reorder or (lambda w: w)
        W.append(g.weight(layer.kernel, lambda k, f=ordered: f(k).T[None]))
        R.append(g.weight(layer.recurrent_kernel, lambda k, f=ordered: f(k).T[None]))
        B.append(g.const(bias[None], f"{layer.name}_B"))
    if len(layers_) > 1:
        W, R, B = ([g.op("Concat", parts, axis=0)] for parts in (W, R, B))
        if "activations" in attrs:
            attrs["activations"] = attrs["activations"] * 2
    inputs = [g.op("Transpose", [x], perm=[1, 0, 2]), W[0], R[0], B[0], ""]  # time-major
    if initial_state is not None:
        axis0 = g.ints([0], "axis0")
        per_state = [[] for _ in range(n_states)]  # (h states, c states) across directions
        for i, s in enumerate(initial_state):
            per_state[i % n_states].append(g.op("Unsqueeze", [s, axis0]))
        inputs += [p[0] if len(p) == 1 else g.op("Concat", p, axis=0) for p in per_state]
    outputs = g.op(op_type, inputs, hint=first.name, outputs=1 + n_states,
                   hidden_size=first.units, direction=direction, **attrs)  # fmt: skip
    return outputs[0], outputs[1:]


def _sequence_output(g, y):
    """Y (T, 1, N, U) -> (N, T, U)."""
    return g.op("Transpose", [g.op("Squeeze", [y, g.ints([1], "axis1")])], perm=[1, 0, 2])


@converter("LSTM")
@converter("GRU")
@converter("SimpleRNN")
def _rnn(g, layer, x, initial_state=None, mask=None, **kwargs):
    _refuse_mask(layer, mask)
    if layer.go_backwards:  # Keras' outputs come in the order the steps ran
        x = _reverse_time(g, x)
    if initial_state is not None and not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    y, states = _recurrent(g, [layer], x, initial_state, "forward")
    axis0 = g.ints([0], "axis0")
    out = _sequence_output(g, y) if layer.return_sequences else g.op("Squeeze", [states[0], axis0])
    if not layer.return_state:
        return out
    return [out, *(g.op("Squeeze", [s, axis0]) for s in states)]


def _refuse_mask(layer, mask):
    if mask is not None:
        raise ValueError(
            f"ONNX export: {layer.name!r} is called with a mask; ONNX's recurrent operators "
            f"take whole sequences, not per-step masks: export a model without the mask"
        )


@converter("Bidirectional")
def _bidirectional(g, layer, x, initial_state=None, mask=None, **kwargs):
    _refuse_mask(layer, mask)
    forward, backward = layer.forward_layer, layer.backward_layer
    if (type(forward) is not type(backward) or type(forward).__name__ not in _RECURRENT
            or forward.go_backwards or forward.units != backward.units):  # fmt: skip
        raise ValueError(
            f"ONNX export: {layer.name!r} is a Bidirectional that ONNX's bidirectional "
            f"operators do not express: it needs an LSTM, GRU or SimpleRNN running forwards "
            f"and one of the same class and units backwards, got {type(forward).__name__} "
            f"and {type(backward).__name__}"
        )
    if isinstance(forward, type(backward)) and hasattr(forward, "reset_after"):
        if forward.reset_after != backward.reset_after:
            raise ValueError(
                f"ONNX export: {layer.name!r}: ONNX's bidirectional GRU has one "
                f"linear_before_reset; the two layers differ in reset_after"
            )
    y, states = _recurrent(g, [forward, backward], x, initial_state, "bidirectional")
    # ONNX's backward direction writes each output at its step's place, as Keras'
    # Bidirectional puts them back before the merge
    U = forward.units
    if layer.return_sequences:  # Y (T, 2, N, U)
        if layer.merge_mode == "concat":
            perm = g.op("Transpose", [y], perm=[2, 0, 1, 3])  # (N, T, 2, U)
            return _with_states(g, layer, [g.op("Reshape", [perm, g.ints([0, 0, 2 * U])])], states)
        halves = [g.op("Transpose", [g.op("Squeeze", [part, g.ints([1], "axis1")])], perm=[1, 0, 2])
                  for part in g.op("Split", [y], outputs=2, axis=1)]  # fmt: skip
    else:  # the final h of each direction, Y_h (2, N, U)
        axis0 = g.ints([0], "axis0")
        halves = [
            g.op("Squeeze", [part, axis0]) for part in g.op("Split", [states[0]], outputs=2, axis=0)
        ]
    merged = {
        "concat": lambda a, b: g.op("Concat", [a, b], axis=-1),
        "sum": lambda a, b: g.op("Add", [a, b]),
        "mul": lambda a, b: g.op("Mul", [a, b]),
        "ave": lambda a, b: g.op("Mul", [g.op("Add", [a, b]), g.const(0.5, "half")]),
        None: lambda a, b: [a, b],
    }[layer.merge_mode](*halves)
    return _with_states(g, layer, merged if isinstance(merged, list) else [merged], states)


def _with_states(g, layer, outputs, states):
    """The Bidirectional's result: its output(s), then with return_state each
    direction's states (forward h, c, backward h, c)."""
    if not layer.return_state:
        return outputs if len(outputs) > 1 else outputs[0]
    axis0 = g.ints([0], "axis0")
    per_direction = [g.op("Split", [s], outputs=2, axis=0) for s in states]
    ordered = [g.op("Squeeze", [parts[d], axis0]) for d in range(2) for parts in per_direction]
    return [*outputs, *ordered]


@converter("TimeDistributed")
def _time_distributed(g, layer, x, **kwargs):
    """The wrapped layer on (N*T, ...): the steps folded into the batch and back."""
    inner_shape = layer.input_shape[2:]
    folded = g.op("Reshape", [x, g.ints([-1, *inner_shape])], hint=layer.name)
    y = g.layer(layer.layer, folded)
    out_shape = layer.layer.compute_output_shape((None, *inner_shape))[1:]
    steps = g.op("Shape", [x], start=0, end=2)  # (N, T) at run time
    shape = g.op("Concat", [steps, g.ints(list(out_shape))], axis=0)
    return g.op("Reshape", [y, shape], hint=layer.name)


@converter("Masking")
def _masking(g, layer, x, **kwargs):
    raise ValueError(
        f"ONNX export: {layer.name!r} is a Masking layer; ONNX's recurrent operators take "
        f"whole sequences, not per-step masks, so its mask cannot be exported. Export the "
        f"model without the Masking layer (the same weights): it predicts the same on "
        f"sequences without padding"
    )


# ---------------------------------------------------------------- merging

for _name, _op in (("Add", "Sum"), ("Maximum", "Max"), ("Minimum", "Min"), ("Average", "Mean")):
    converter(_name)(lambda g, layer, xs, op=_op, **kw: g.op(op, xs, hint=layer.name))


@converter("Subtract")
def _subtract(g, layer, xs, **kwargs):
    return g.op("Sub", xs, hint=layer.name)


@converter("Multiply")
def _multiply(g, layer, xs, **kwargs):
    y = xs[0]
    for x in xs[1:]:
        y = g.op("Mul", [y, x], hint=layer.name)
    return y


@converter("Concatenate")
def _concatenate(g, layer, xs, **kwargs):
    return g.op("Concat", xs, hint=layer.name, axis=layer.axis)


def _l2_normalize(g, x, axis):
    squares = g.op("ReduceSumSquare", [x], axes=[axis], keepdims=1)  # axes: an input from 18
    norm = g.op("Sqrt", [g.op("Max", [squares, g.const(1e-12, "eps")])])
    return g.op("Div", [x, norm])


@converter("Dot")
def _dot(g, layer, xs, **kwargs):
    a, b = xs
    shape_a, shape_b = layer.input_shape
    ia, ib = layer._axes([shape_a, shape_b])
    if layer.normalize:
        a, b = _l2_normalize(g, a, ia), _l2_normalize(g, b, ib)
    # as Dot.call: the contracted axis last in a, first (after the batch) in b, then one
    # batched matrix product over the flattened remaining axes
    rest_a = [i for i in range(1, len(shape_a)) if i != ia]
    rest_b = [i for i in range(1, len(shape_b)) if i != ib]
    a2 = g.op("Reshape", [g.op("Transpose", [a], perm=[0, *rest_a, ia]),
                          g.ints([0, -1, shape_a[ia]])])  # fmt: skip
    b2 = g.op("Reshape", [g.op("Transpose", [b], perm=[0, ib, *rest_b]),
                          g.ints([0, shape_b[ib], -1])])  # fmt: skip
    out = g.op("MatMul", [a2, b2], hint=layer.name)
    shape = [shape_a[i] for i in rest_a] + [shape_b[i] for i in rest_b]
    return g.op("Reshape", [out, g.ints([0, *shape] if shape else [0, 1])])


# ---------------------------------------------------------------- normalisation


def _to_axis1(rank, axis):
    """The permutation bringing ``axis`` to position 1 (ONNX's channel axis); its
    inverse is itself only for a swap, so both are returned."""
    perm = [0, axis, *(i for i in range(1, rank) if i != axis)]
    return perm, [perm.index(i) for i in range(rank)]


@converter("BatchNormalization")
def _batch_normalization(g, layer, x, **kwargs):
    # exported in inference mode: the moving statistics
    (axis,) = layer._axes
    C = layer.moving_mean.shape[0]
    scale = g.weight(layer.gamma) if layer.scale else g.const(np.ones(C), f"{layer.name}_ones")
    bias = g.weight(layer.beta) if layer.center else g.const(np.zeros(C), f"{layer.name}_zeros")
    stats = [g.weight(layer.moving_mean), g.weight(layer.moving_variance)]
    rank = len(layer.input_shape)
    if axis != 1:
        to, back = _to_axis1(rank, axis)
        x = g.op("Transpose", [x], perm=to)
    y = g.op("BatchNormalization", [x, scale, bias, *stats], hint=layer.name,
             epsilon=layer.epsilon)  # fmt: skip
    return y if axis == 1 else g.op("Transpose", [y], perm=back)


@converter("LayerNormalization")
def _layer_normalization(g, layer, x, **kwargs):
    # ONNX normalises over the trailing axes from ``axis``: other axes are moved there
    axes, rank = layer._axes, len(layer.input_shape)
    shape = tuple(layer.input_shape[a] for a in axes)
    perm = [i for i in range(rank) if i not in axes] + axes
    if perm != list(range(rank)):
        x = g.op("Transpose", [x], perm=perm)
    scale = g.weight(layer.gamma) if layer.scale else g.const(np.ones(shape), f"{layer.name}_ones")
    inputs = [x, scale] + ([g.weight(layer.beta)] if layer.center else [])
    y = g.op("LayerNormalization", inputs, hint=layer.name, axis=rank - len(axes),
             epsilon=layer.epsilon)  # fmt: skip
    if perm == list(range(rank)):
        return y
    return g.op("Transpose", [y], perm=[perm.index(i) for i in range(rank)])


# ---------------------------------------------------------------- embedding, activation layers


@converter("Embedding")
def _embedding(g, layer, x, **kwargs):
    if layer.mask_zero:
        raise ValueError(
            f"ONNX export: layer {layer.name!r} is an Embedding with mask_zero=True; the "
            f"exported graph would not carry its mask to the layers after it"
        )
    # Gather takes int32 and int64 indices as they come: ids above 2**24 stay exact
    indices = x
    if g.dtype(x) not in (np.int32, np.int64):
        indices = g.op("Cast", [x], to=g.onnx.TensorProto.INT64)
    return g.op("Gather", [g.weight(layer.embeddings), indices], hint=layer.name, axis=0)


@converter("ReLU")
def _relu_layer(g, layer, x, **kwargs):
    # as Keras: x above the threshold (clipped to max_value), slope * (x - threshold) below
    t, slope, top = layer.threshold, layer.negative_slope, layer.max_value
    if t == 0 and slope == 0:
        y = g.op("Relu", [x], hint=layer.name)
    else:
        y = g.op("Where", [g.op("Greater", [x, g.const(t, "threshold")]), x,
                           g.const(0.0, "zero")], hint=layer.name)  # fmt: skip
    if top is not None:
        y = g.op("Clip", [y, g.const(0.0, "zero"), g.const(top, "max_value")], hint=layer.name)
    if slope != 0:
        below = g.op("Relu", [g.op("Sub", [g.const(t, "threshold"), x])])
        y = g.op("Sub", [y, g.op("Mul", [below, g.const(slope, "slope")])], hint=layer.name)
    return y


@converter("ELU")
def _elu_layer(g, layer, x, **kwargs):
    return g.op("Elu", [x], hint=layer.name, alpha=layer.alpha)


@converter("PReLU")
def _prelu(g, layer, x, **kwargs):
    return g.op("PRelu", [x, g.weight(layer.alpha)], hint=layer.name)


@converter("Softmax")
def _softmax_layer(g, layer, x, mask=None, **kwargs):
    if mask is not None:
        raise ValueError(f"ONNX export: layer {layer.name!r} is a Softmax called with a mask")
    if not isinstance(layer.axis, list):
        return g.op("Softmax", [x], hint=layer.name, axis=layer.axis)
    # several axes normalised together: x - logsumexp(x) over them
    lse = g.op("ReduceLogSumExp", [x], axes=layer.axis, keepdims=1)
    return g.op("Exp", [g.op("Sub", [x, lse])], hint=layer.name)


# ---------------------------------------------------------------- reshaping, regularisation


@converter("GaussianNoise")
@converter("SpatialDropout2D")
def _inference_identity(g, layer, x, **kwargs):
    return x


@converter("Permute")
def _permute(g, layer, x, **kwargs):
    return g.op("Transpose", [x], hint=layer.name, perm=[0, *layer.dims])


@converter("RepeatVector")
def _repeat_vector(g, layer, x, **kwargs):
    rows = g.op("Unsqueeze", [x, g.ints([1], "axis1")])
    return g.op("Expand", [rows, g.ints([1, layer.n, 1])], hint=layer.name)


@converter("UpSampling2D")
def _upsampling2d(g, layer, x, **kwargs):
    if layer.interpolation == "nearest":  # each pixel repeated: source index floor(i / size)
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                 "nearest_mode": "floor"}  # fmt: skip
    else:  # pixel centres, edges clamped, as Keras' bilinear resize
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    scales = g.const([1, 1, *layer.size], f"{layer.name}_scales")
    y = g.op("Resize", [g.op("Transpose", [x], perm=_TO_NCHW), "", scales], hint=layer.name,
             **attrs)  # fmt: skip
    return g.op("Transpose", [y], perm=_TO_NHWC)


@converter("ZeroPadding2D")
def _zero_padding2d(g, layer, x, **kwargs):
    (t, b), (l, r) = layer.padding
    return g.op("Pad", [x, g.ints([0, t, l, 0, 0, b, r, 0], "pads")], hint=layer.name)


@converter("Cropping2D")
def _cropping2d(g, layer, x, **kwargs):
    (t, b), (l, r) = layer.cropping
    ends = [-b if b else np.iinfo(np.int64).max, -r if r else np.iinfo(np.int64).max]
    return g.op("Slice", [x, g.ints([t, l], "starts"), g.ints(ends, "ends"),
                          g.ints([1, 2], "axes")], hint=layer.name)  # fmt: skip


# ---------------------------------------------------------------- preprocessing

for _name in ("RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast"):
    converter(_name)(_identity)  # augmentation is the identity in inference


@converter("Rescaling")
def _rescaling(g, layer, x, **kwargs):
    scale = g.const(layer.scale, f"{layer.name}_scale")
    return g.op("Add", [g.op("Mul", [x, scale]), g.const(layer.offset, f"{layer.name}_offset")],
                hint=layer.name)  # fmt: skip


@converter("Normalization")
def _normalization(g, layer, x, **kwargs):
    mean = layer.mean
    scale = np.maximum(np.sqrt(layer.variance), 1e-7)
    if layer.invert:
        y = g.op("Mul", [x, g.const(scale, f"{layer.name}_scale")])
        return g.op("Add", [y, g.const(mean, f"{layer.name}_mean")], hint=layer.name)
    y = g.op("Sub", [x, g.const(mean, f"{layer.name}_mean")])
    return g.op("Div", [y, g.const(scale, f"{layer.name}_scale")], hint=layer.name)


# ---------------------------------------------------------------- the whole model


def _cancel_transposes(nodes, outputs):
    """Removes Transpose pairs that undo each other (NHWC -> NCHW -> NHWC between two
    convolutions): consumers of the second read the first's input instead."""
    producer = {out: n for n in nodes for out in n.output}
    rename = {}
    for n in nodes:
        if n.op_type != "Transpose":
            continue
        first = producer.get(n.input[0])
        if first is None or first.op_type != "Transpose":
            continue
        p = list(first.attribute[0].ints)
        q = list(n.attribute[0].ints)
        if [p[i] for i in q] == list(range(len(p))) and n.output[0] not in outputs:
            rename[n.output[0]] = first.input[0]
    if not rename:
        return nodes

    def resolve(name):
        while name in rename:
            name = rename[name]
        return name

    kept = [n for n in nodes if n.output[0] not in rename]
    for n in kept:
        for i, name in enumerate(n.input):
            n.input[i] = resolve(name)
    used = {name for n in kept for name in n.input} | set(outputs)
    return [n for n in kept if any(o in used for o in n.output)]


def _value_info(onnx, name, shape, prefix, dtype=np.float32):
    dims = ["batch" if i == 0 else (f"{prefix}_d{i}" if d is None else d)
            for i, d in enumerate(shape)]  # fmt: skip
    elem_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return onnx.helper.make_tensor_value_info(name, elem_type, dims)


def _graph_input_dtype(dtype):
    """The ONNX input's dtype for an Input declared ``dtype``: integers and bools as
    declared (ids stay exact; each layer casts them where it computes in floats), floats
    as float32, the dtype of the exported weights."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind in "iub" else np.dtype(np.float32)


def to_onnx(model):
    """The ``onnx.ModelProto`` of a built dlcore model."""
    if not model.built:
        raise ValueError(f"{model.name}: build the model (or call it on data) before exporting")
    g = Graph()
    onnx = g.onnx
    functional = hasattr(model, "_inputs")  # a functional model; a Sequential has one input
    if functional:
        specs = [(t.name, t.shape, t.dtype) for t in model.inputs]
    else:
        dtype = getattr(model, "_input_dtype", None) or np.float32
        specs = [("inputs", (None, *model.input_shape[1:]), dtype)]
    names = [g.declare(g.name(n), _graph_input_dtype(dtype)) for n, _, dtype in specs]
    out = g.layer(model, names if functional else names[0])
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    out_names = getattr(model, "output_names", None) or ["outputs"]
    if len(out_names) != len(flatten(out)):
        out_names = [f"output_{i}" for i in range(len(flatten(out)))]
    graph_outputs = []
    for name, value, shape in zip(out_names, flatten(out), shapes):
        final = g.name(name)
        g.nodes.append(onnx.helper.make_node("Identity", [value], [final]))
        graph_outputs.append(_value_info(onnx, final, shape, final, g.dtype(value)))
    nodes = _cancel_transposes(g.nodes, {v.name for v in graph_outputs})
    graph = onnx.helper.make_graph(
        nodes,
        model.name,
        [_value_info(onnx, n, s, n, g.dtype(n)) for n, (_, s, _) in zip(names, specs)],
        graph_outputs,
        initializer=g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="dlcore",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path):
    """Writes ``model`` as an ONNX file at ``path`` (atomically)."""
    from dlcore.saving.atomic import atomic_write

    proto = to_onnx(model)
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    return path
