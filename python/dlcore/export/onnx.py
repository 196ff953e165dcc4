"""ONNX export: ``model.export("m.onnx")`` writes the model's inference graph (opset 17,
float32, the batch dimension dynamic) for ONNX Runtime and other ONNX consumers.

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
i, o, f, c); Dropout is the identity, as are GaussianNoise and SpatialDropout2D.
BatchNormalization is exported in inference mode (its moving statistics). An Embedding
with ``mask_zero`` is refused: the graph would not carry its mask.
"""

from __future__ import annotations

import numpy as np

from dlcore import activations as activations_module
from dlcore.functional.window import same_padding
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
    """ONNX pads [top, left, bottom, right] for the layer's padding at its input size."""
    if layer.padding == "valid":
        return [0, 0, 0, 0]
    rows, cols = layer.input_shape[1:3]
    if rows is None or cols is None:
        return None  # unknown size: auto_pad SAME_UPPER (the odd pixel after, as Keras)
    (t, b), (l, r) = (same_padding(n, k, s, d) for n, k, s, d in
                      zip((rows, cols), window, layer.strides, dilation))  # fmt: skip
    return [t, l, b, r]


def _window_attrs(layer, window, dilation=(1, 1)):
    pads = _pads(layer, window, dilation)
    return {"pads": pads} if pads is not None else {"auto_pad": "SAME_UPPER"}


@converter("Conv2D")
def _conv2d(g, layer, x, **kwargs):
    kernel = g.weight(layer.kernel, _OIHW)
    inputs = [g.op("Transpose", [x], perm=_TO_NCHW), kernel]
    if layer.use_bias:
        inputs.append(g.weight(layer.bias))
    y = g.op("Conv", inputs, hint=layer.name, kernel_shape=list(layer.kernel_size),
             strides=list(layer.strides), dilations=list(layer.dilation_rate),
             **_window_attrs(layer, layer.kernel_size, layer.dilation_rate))  # fmt: skip
    if activations_module.registry.name_of(layer.activation) in _ELEMENTWISE:
        y = g.activation(layer.activation, y)  # before the transpose: it may cancel
        return g.op("Transpose", [y], perm=_TO_NHWC)
    return g.activation(layer.activation, g.op("Transpose", [y], perm=_TO_NHWC))


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


# ---------------------------------------------------------------- recurrent


def _ifco_to_iofc(w):
    i, f, c, o = np.split(w, 4, axis=-1)
    return np.concatenate([i, o, f, c], axis=-1)


@converter("LSTM")
def _lstm(g, layer, x, initial_state=None, **kwargs):
    U = layer.units
    W = g.weight(layer.kernel, lambda k: _ifco_to_iofc(k).T[None])  # (1, 4U, I)
    R = g.weight(layer.recurrent_kernel, lambda k: _ifco_to_iofc(k).T[None])  # (1, 4U, U)
    bias = layer.bias.data if layer.use_bias else np.zeros(4 * U, np.float32)
    B = g.const(np.concatenate([_ifco_to_iofc(bias), np.zeros(4 * U)])[None], f"{layer.name}_B")
    inputs = [g.op("Transpose", [x], perm=[1, 0, 2]), W, R, B, ""]  # time-major
    axis0 = g.ints([0], "axis0")
    if initial_state is not None:
        inputs += [g.op("Unsqueeze", [s, axis0]) for s in initial_state]
    y, h, c = g.op("LSTM", inputs, hint=layer.name, outputs=3, hidden_size=U)
    if layer.return_sequences:  # (T, 1, N, U) -> (N, T, U)
        out = g.op("Transpose", [g.op("Squeeze", [y, g.ints([1], "axis1")])], perm=[1, 0, 2])
    else:
        out = g.op("Squeeze", [h, axis0])
    if not layer.return_state:
        return out
    return [out, g.op("Squeeze", [h, axis0]), g.op("Squeeze", [c, axis0])]


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


def _value_info(onnx, name, shape, prefix):
    dims = ["batch" if i == 0 else (f"{prefix}_d{i}" if d is None else d)
            for i, d in enumerate(shape)]  # fmt: skip
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


def to_onnx(model):
    """The ``onnx.ModelProto`` of a built dlcore model."""
    if not model.built:
        raise ValueError(f"{model.name}: build the model (or call it on data) before exporting")
    g = Graph()
    onnx = g.onnx
    functional = hasattr(model, "inputs")
    if functional:
        specs = [(t.name, t.shape) for t in model.inputs]
    else:
        specs = [("inputs", (None, *model.input_shape[1:]))]
    names = [g.name(n) for n, _ in specs]
    out = g.layer(model, names if functional else names[0])
    shapes = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    out_names = getattr(model, "output_names", None) or ["outputs"]
    if len(out_names) != len(flatten(out)):
        out_names = [f"output_{i}" for i in range(len(flatten(out)))]
    graph_outputs = []
    for name, value, shape in zip(out_names, flatten(out), shapes):
        final = g.name(name)
        g.nodes.append(onnx.helper.make_node("Identity", [value], [final]))
        graph_outputs.append(_value_info(onnx, final, shape, final))
    nodes = _cancel_transposes(g.nodes, {v.name for v in graph_outputs})
    graph = onnx.helper.make_graph(
        nodes,
        model.name,
        [_value_info(onnx, n, s, n) for n, (_, s) in zip(names, specs)],
        graph_outputs,
        initializer=g.initializers,
    )
    proto = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="dlcore",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path):
    """Writes ``model`` as an ONNX file at ``path`` (atomically)."""
    from dlcore.saving.atomic import atomic_write

    proto = to_onnx(model)
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    return path
