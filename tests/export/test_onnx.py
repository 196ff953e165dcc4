"""ONNX export: every layer dlcore has, in Sequential, functional and nested models,
exported with ``model.export`` and run by ONNX Runtime, predicts what dlcore predicts
(float32 rounding), at any batch size."""

import numpy as np
import pytest

import dlcore
from dlcore import layers, models

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
RTOL, ATOL = 1e-5, 2e-6


def run_onnx(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds)))


def assert_exports(model, tmp_path, make_inputs, batches=(1, 5)):
    """Exports ``model`` and compares ONNX Runtime with dlcore at several batch sizes."""
    path = model.export(tmp_path / f"{model.name}.onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in proto.graph.input)
    for n in batches:
        feeds = make_inputs(n)
        expected = model.predict(feeds if len(feeds) > 1 else feeds[0])
        expected = expected if isinstance(expected, list) else [expected]
        got = run_onnx(path, feeds)
        assert len(got) == len(expected)
        for i, (a, e) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(
                a, e, RTOL, ATOL, err_msg=f"{model.name} output {i} at batch {n}"
            )
    return proto


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_image_stack(tmp_path):
    model = models.Sequential([
        layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(9, 10, 2)),
        layers.MaxPooling2D(2, padding="same"),
        layers.Conv2D(5, (3, 2), dilation_rate=(2, 1), padding="same", activation="sigmoid"),
        layers.Conv2D(3, (2, 1), use_bias=False, activation="softmax"),
        layers.MaxPooling2D((2, 3), strides=(1, 2)),
        layers.Reshape((-1, 3)),
        layers.Flatten(),
        layers.Dense(8, activation="tanh"),
        layers.LeakyReLU(negative_slope=0.1),
        layers.Dropout(0.5),
        layers.Dense(6, activation="leaky_relu"),
        layers.Activation("softmax"),
    ], name="images")  # fmt: skip
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 9, 10, 2)])
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Transpose") < 2 * ops.count("Conv") + 2 * ops.count("MaxPool")


def test_unknown_image_size_pads_same_at_run_time(tmp_path):
    x = dlcore.Input(shape=(None, None, 3), name="image")
    y = layers.Conv2D(2, 3, strides=2, padding="same")(x)
    y = layers.MaxPooling2D(3, strides=2, padding="same")(y)
    model = dlcore.Model(x, y, name="any_size")
    path = model.export(tmp_path / "any.onnx")
    for shape in ((2, 7, 9, 3), (1, 8, 5, 3)):
        x = normal(*shape)
        np.testing.assert_allclose(run_onnx(path, [x])[0], model.predict(x), RTOL, ATOL)


@pytest.mark.parametrize("return_sequences", [True, False])
def test_lstm(tmp_path, return_sequences):
    model = models.Sequential([
        layers.LSTM(5, return_sequences=True, input_shape=(7, 3)),
        layers.LSTM(4, return_sequences=return_sequences, use_bias=False),
        layers.Dense(2),
    ], name=f"lstm_{return_sequences}")  # fmt: skip
    rng = np.random.default_rng(1)
    for w in model.weights:  # away from the initial values, so that gate order matters
        w.data[...] = rng.standard_normal(w.shape).astype(np.float32) * 0.5
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 7, 3, seed=n)])
    assert [n.op_type for n in proto.graph.node].count("LSTM") == 2


def test_functional_merges_states_and_nesting(tmp_path):
    seq = dlcore.Input(shape=(6, 3), name="seq")
    vec = dlcore.Input(shape=(4,), name="vec")
    h0 = layers.Dense(4, name="h0")(vec)
    c0 = layers.Dense(4, name="c0")(vec)
    out, state_h, state_c = layers.LSTM(4, return_state=True)(seq, initial_state=[h0, c0])
    d = layers.Dense(4, activation="relu")(vec)
    shared = layers.Dense(4, name="shared")
    a, b = shared(out), shared(d)
    merged = [layers.Add()([a, b, d]), layers.Subtract()([a, b]), layers.Multiply()([a, b, out]),
              layers.Average()([a, state_c]), layers.Maximum()([a, b]), layers.Minimum()([d, state_h])]  # fmt: skip
    joined = layers.Concatenate()(merged)
    grid = layers.Reshape((6, 4))(joined)
    dots = [layers.Dot(axes=1, normalize=True)([out, d]), layers.Dot(axes=(2, 1))([grid, a]),
            layers.Flatten()(layers.Dot(axes=1)([grid, grid]))]  # fmt: skip
    inner = models.Sequential([layers.Dense(5, activation="sigmoid"), layers.Dense(2)], name="head")
    x = dlcore.Input(shape=(9,))
    inner_fn = dlcore.Model(x, layers.Dense(3)(x), name="inner_fn")
    head = inner(layers.Concatenate(axis=-1)([joined, *dots]))
    side = inner_fn(layers.Concatenate()([head, state_h, layers.Dense(3)(d)]))
    model = dlcore.Model(inputs=[seq, vec], outputs=[side, head], name="graph")
    assert_exports(model, tmp_path, lambda n: [normal(n, 6, 3, seed=n), normal(n, 4, seed=n + 9)])


def test_what_cannot_be_exported_is_named(tmp_path):
    class Doubling(layers.Layer):
        def call(self, x):
            return x * 2

    model = models.Sequential([layers.Dense(2, input_shape=(3,)), Doubling(name="twice")])
    with pytest.raises(ValueError, match=r"'twice' is a Doubling, which has no ONNX converter"):
        model.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ValueError, match=r"format 'tf_saved_model'.*\['onnx'\]"):
        model.export(tmp_path / "m", format="tf_saved_model")
    with pytest.raises(ValueError, match="build the model"):
        models.Sequential([layers.Dense(2)]).export(tmp_path / "u.onnx")


def _scramble(model, seed=2):
    """Weights (and moving statistics) away from their initial values, so that a wrong
    axis or order shows; variances stay positive."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.standard_normal(w.shape).astype(np.float32) * 0.5
        w.data[...] = np.abs(value) + 0.5 if "variance" in w.name else value


def test_normalisation_activations_and_image_reshaping(tmp_path):
    model = models.Sequential([
        layers.ZeroPadding2D(((1, 2), (0, 3)), input_shape=(6, 5, 3)),
        layers.Conv2D(4, 3, activation="gelu"),
        layers.BatchNormalization(),
        layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
        layers.UpSampling2D((2, 3)),
        layers.Cropping2D(((1, 0), (2, 3))),
        layers.Conv2D(3, 2, activation="mish", use_bias=False),
        layers.BatchNormalization(axis=1, center=False, scale=False, epsilon=0.01),
        layers.UpSampling2D(2, interpolation="bilinear"),
        layers.SpatialDropout2D(0.5),
        layers.GaussianNoise(0.3),
        layers.PReLU(shared_axes=[1, 2]),
        layers.LayerNormalization(axis=[1, 3]),
        layers.Permute((2, 1, 3)),
        layers.Reshape((-1, 3)),
        layers.LayerNormalization(center=False),
        layers.ELU(alpha=0.7),
        layers.ReLU(),
        layers.Flatten(),
        layers.Dense(6, activation="selu"),
        layers.RepeatVector(4),
        layers.Softmax(axis=[1, 2]),
        layers.Softmax(axis=1),
        layers.ReLU(max_value=0.5),
    ], name="norm_images")  # fmt: skip
    _scramble(model)
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 6, 5, 3, seed=n)])
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("BatchNormalization") == 2 and ops.count("LayerNormalization") == 2
    assert ops.count("Resize") == 2


@pytest.mark.parametrize(
    "name", ["gelu", "silu", "swish", "elu", "selu", "softplus", "softsign", "hard_sigmoid",
             "hard_silu", "exponential", "relu6", "mish", "log_softmax"],
)  # fmt: skip
def test_activations_by_name(tmp_path, name):
    twice = [] if name == "exponential" else [layers.Activation(name)]  # e^e^x overflows
    model = models.Sequential([layers.Dense(7, activation=name, input_shape=(5,)), *twice],
                              name=f"act_{name}")  # fmt: skip
    _scramble(model)
    assert_exports(model, tmp_path, lambda n: [normal(n, 5, seed=n) * 2])


def test_embedding(tmp_path):
    tokens = dlcore.Input(shape=(7,), name="tokens")
    y = layers.Embedding(50, 4)(tokens)
    y = layers.LayerNormalization()(y)
    y = layers.BatchNormalization(axis=-1)(y)
    model = dlcore.Model(tokens, layers.Flatten()(y), name="embed")
    _scramble(model)
    tokens = lambda n: [np.random.default_rng(n).integers(0, 50, (n, 7)).astype(np.float32)]  # noqa: E731
    proto = assert_exports(model, tmp_path, tokens)
    assert "Gather" in [n.op_type for n in proto.graph.node]
    masked = models.Sequential([layers.Embedding(5, 2, mask_zero=True, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"mask_zero=True.*would not carry its mask"):
        masked.export(tmp_path / "masked.onnx")


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_depthwise_and_separable_convolutions(tmp_path, padding):
    model = models.Sequential([
        layers.DepthwiseConv2D(3, strides=2, padding=padding, depth_multiplier=2,
                               activation="relu", input_shape=(15, 14, 3)),
        layers.SeparableConv2D(4, (2, 3), padding=padding, dilation_rate=2, activation="tanh"),
        layers.DepthwiseConv2D(2, padding=padding, use_bias=False),
        layers.SeparableConv2D(3, 1, depth_multiplier=3, use_bias=False),
    ], name=f"depthwise_{padding}")  # fmt: skip
    _scramble(model)
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 15, 14, 3, seed=n)])
    groups = [next((a.i for a in n.attribute if a.name == "group"), 1)
              for n in proto.graph.node if n.op_type == "Conv"]  # fmt: skip
    # each depthwise Conv has one group per input channel; the pointwise ones one group
    assert groups == [3, 6, 1, 4, 4, 1]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_transposed_convolution_and_pooling_2d(tmp_path, padding):
    model = models.Sequential([
        layers.Conv2DTranspose(3, 3, strides=2, padding=padding, activation="relu",
                               input_shape=(5, 6, 2)),
        layers.AveragePooling2D((2, 3), strides=(1, 2), padding=padding),
        layers.Conv2DTranspose(4, (4, 3), strides=(2, 1), padding=padding, output_padding=(1, 0)),
        layers.Conv2DTranspose(2, 3, dilation_rate=2, padding=padding, use_bias=False),
        layers.AveragePooling2D(3, padding=padding),
        layers.GlobalAveragePooling2D(keepdims=True),
        layers.GlobalMaxPooling2D(),
    ], name=f"transposed_{padding}")  # fmt: skip
    _scramble(model)  # biases away from zero, so that the added rows show them
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 5, 6, 2, seed=n)])
    assert [n.op_type for n in proto.graph.node].count("ConvTranspose") == 3


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_sequence_convolution_and_pooling_1d(tmp_path, padding):
    pool_padding = "same" if padding == "causal" else padding
    x = dlcore.Input(shape=(17, 3), name="seq")
    y = layers.Conv1D(4, 3, strides=2, padding=padding, activation="tanh")(x)
    y = layers.Conv1D(5, 2, dilation_rate=2, padding=padding)(y)
    y = layers.MaxPooling1D(2, padding=pool_padding)(y)
    y = layers.AveragePooling1D(3, strides=1, padding=pool_padding)(y)
    outputs = [layers.GlobalAveragePooling1D()(y), layers.GlobalMaxPooling1D(keepdims=True)(y)]
    model = dlcore.Model(x, outputs, name=f"seq_{padding}")
    assert_exports(model, tmp_path, lambda n: [normal(n, 17, 3, seed=n)])


def test_unknown_sequence_length_pools_same_at_run_time(tmp_path):
    x = dlcore.Input(shape=(None, 2), name="seq")
    y = layers.Conv1D(3, 3, strides=2, padding="same")(x)
    y = layers.AveragePooling1D(3, strides=2, padding="same")(y)
    model = dlcore.Model(x, layers.GlobalMaxPooling1D()(y), name="any_length")
    path = model.export(tmp_path / "any.onnx")
    for shape in ((2, 7, 2), (1, 10, 2)):
        x = normal(*shape)
        np.testing.assert_allclose(run_onnx(path, [x])[0], model.predict(x), RTOL, ATOL)


# ---------------------------------------------------------------- recurrent family

RNNS = {
    "lstm": lambda **kw: layers.LSTM(5, **kw),
    "gru": lambda **kw: layers.GRU(5, **kw),
    "gru_reset_before": lambda **kw: layers.GRU(5, reset_after=False, **kw),
    "simple_rnn": lambda **kw: layers.SimpleRNN(5, **kw),
    "simple_rnn_relu": lambda **kw: layers.SimpleRNN(5, activation="relu", **kw),
}


def scramble(model, seed=1):
    """Weights away from their initial values, so that gate order and biases matter."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.data[...] = rng.standard_normal(w.shape).astype(np.float32) * 0.5


@pytest.mark.parametrize("which", RNNS)
@pytest.mark.parametrize(
    "options",
    [dict(), dict(return_sequences=True), dict(go_backwards=True, return_sequences=True),
     dict(go_backwards=True), dict(use_bias=False, return_sequences=True)],
)  # fmt: skip
def test_recurrent_layers(tmp_path, which, options):
    model = models.Sequential([RNNS[which](input_shape=(6, 3), **options), layers.Dense(2)],
                              name=which)  # fmt: skip
    scramble(model)
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 6, 3, seed=n)])
    op = {"lstm": "LSTM", "gru": "GRU", "simple": "RNN"}[which.split("_")[0]]
    assert [n.op_type for n in proto.graph.node].count(op) == 1


@pytest.mark.parametrize("which", ["lstm", "gru", "simple_rnn"])
def test_recurrent_states_in_and_out(tmp_path, which):
    n_states = 2 if which == "lstm" else 1
    seq = dlcore.Input(shape=(5, 3), name="seq")
    vec = dlcore.Input(shape=(4,), name="vec")
    states = [layers.Dense(5)(vec) for _ in range(n_states)]
    out, *final = RNNS[which](return_sequences=True, return_state=True)(seq, initial_state=states)
    model = dlcore.Model([seq, vec], [layers.Flatten()(out), *final], name=f"{which}_states")
    scramble(model)
    assert_exports(model, tmp_path, lambda n: [normal(n, 5, 3, seed=n), normal(n, 4, seed=n + 1)])


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("which", ["lstm", "gru", "gru_reset_before", "simple_rnn_relu"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional(tmp_path, merge_mode, which, return_sequences):
    x = dlcore.Input(shape=(6, 3))
    out = layers.Bidirectional(RNNS[which](return_sequences=return_sequences), merge_mode)(x)
    name = f"bi_{which}_{merge_mode}_{return_sequences}"
    model = dlcore.Model(x, out, name=name)
    scramble(model)
    proto = assert_exports(model, tmp_path, lambda n: [normal(n, 6, 3, seed=n)])
    directions = [a.s for n in proto.graph.node for a in n.attribute if a.name == "direction"]
    assert directions == [b"bidirectional"]


def test_bidirectional_states_in_and_out(tmp_path):
    seq = dlcore.Input(shape=(5, 3), name="seq")
    vec = dlcore.Input(shape=(4,), name="vec")
    states = [layers.Dense(5)(vec) for _ in range(4)]  # h, c forwards; h, c backwards
    out = layers.Bidirectional(layers.LSTM(5, return_state=True))(seq, initial_state=states)
    model = dlcore.Model([seq, vec], out, name="bi_states")
    scramble(model)
    assert_exports(model, tmp_path, lambda n: [normal(n, 5, 3, seed=n), normal(n, 4, seed=n + 1)])


def test_time_distributed(tmp_path):
    model = models.Sequential([
        layers.TimeDistributed(layers.Conv2D(2, 3, padding="same", activation="relu"),
                               input_shape=(4, 5, 6, 2)),
        layers.TimeDistributed(layers.Flatten()),
        layers.TimeDistributed(layers.Dense(3, activation="tanh")),
        layers.GRU(4, return_sequences=True),
        layers.TimeDistributed(layers.Dense(2)),
    ], name="time_distributed")  # fmt: skip
    scramble(model)
    assert_exports(model, tmp_path, lambda n: [normal(n, 4, 5, 6, 2, seed=n)])


def test_masks_are_an_export_error(tmp_path):
    model = models.Sequential([layers.Masking(input_shape=(5, 3)), layers.GRU(2)])
    with pytest.raises(
        ValueError, match=r"Masking layer; ONNX's recurrent operators .* not per-step masks"
    ):
        model.export(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
