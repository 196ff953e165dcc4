"""Conv1D, Conv2DTranspose, DepthwiseConv2D and SeparableConv2D against Keras 3 (predict
and training steps from copied weights, weight and output shapes), through finite
differences, and their arguments, configs, files and summary lines."""

import numpy as np
import pytest

import dlcore
from dlcore import layers, models
from gradcheck import check_layer, check_tensor_op
from keras_parity import (
    assert_keras_refuses,
    assert_layer_matches_keras,
    assert_output_shapes,
    assert_round_trip,
    keras_module,
)


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ------------------------------------------------------------ Keras parity

CONV1D = [
    dict(filters=4, kernel_size=3),
    dict(filters=3, kernel_size=5, padding="same", activation="relu"),
    dict(filters=2, kernel_size=3, padding="causal", dilation_rate=2),
    dict(filters=3, kernel_size=4, strides=3, padding="same"),
    dict(filters=2, kernel_size=2, strides=2, padding="causal", use_bias=False),
    dict(filters=5, kernel_size=1),
    dict(filters=2, kernel_size=7, padding="valid"),  # kernel = steps: one output
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kwargs", CONV1D, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_conv1d_matches_keras(kwargs, optimizer):
    assert_layer_matches_keras(
        lambda: layers.Conv1D(**kwargs), lambda k: k.layers.Conv1D(**kwargs), _x(5, 7, 3),
        optimizer=optimizer,
    )  # fmt: skip


# Sequences long enough (40 steps, 8 channels) for the convolution's row-views plan in
# every pass (dx only at stride 1), with and without the relu the kernels apply.
LONG_CONV1D = [
    dict(filters=6, kernel_size=5, padding="same", activation="relu"),
    dict(filters=4, kernel_size=5, padding="causal"),
    dict(filters=5, kernel_size=7, activation="relu"),
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "kwargs", LONG_CONV1D, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_long_conv1d_matches_keras(kwargs, optimizer):
    x = _x(3, 40, 8)
    layer = layers.Conv1D(**kwargs)
    layer(x)
    k = layer.kernel_size[0]
    pad = {"same": ((k - 1) // 2, k // 2), "causal": (k - 1, 0)}.get(kwargs.get("padding"), (0, 0))
    plans = dlcore.ops.conv2d_plan((3, 1, 40, 8), (1, *layer.kernel.shape), padding=((0, 0), pad))
    assert set(plans.values()) == {"row_views"}, plans
    assert_layer_matches_keras(
        lambda: layers.Conv1D(**kwargs), lambda k: k.layers.Conv1D(**kwargs), x,
        optimizer=optimizer,
    )  # fmt: skip


CONV2D_TRANSPOSE = [
    dict(filters=3, kernel_size=3),
    dict(filters=2, kernel_size=4, strides=2, padding="same"),  # the DCGAN layer
    dict(filters=2, kernel_size=3, strides=2, padding="same", activation="tanh"),
    dict(filters=3, kernel_size=(3, 2), strides=(2, 3), padding="valid"),
    dict(filters=2, kernel_size=2, strides=3),  # stride > kernel: Keras pads the output
    dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=0),
    dict(filters=2, kernel_size=3, strides=3, padding="valid", output_padding=2),
    dict(filters=2, kernel_size=(2, 4), strides=(4, 2), padding="same", output_padding=(3, 1)),
    dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=4, kernel_size=1, use_bias=False),
    dict(filters=16, kernel_size=3, padding="same"),  # 3x3 stride 1, 16 channels: Winograd
]


def _ids(kwargs):
    return ",".join(f"{a}={b}" for a, b in kwargs.items())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kwargs", CONV2D_TRANSPOSE, ids=_ids)
def test_conv2d_transpose_matches_keras(kwargs, optimizer):
    channels = 16 if kwargs["filters"] == 16 else 3
    assert_layer_matches_keras(
        lambda: layers.Conv2DTranspose(**kwargs), lambda k: k.layers.Conv2DTranspose(**kwargs),
        _x(4, 5, 4, channels), optimizer=optimizer,
    )  # fmt: skip


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("output_padding", [None, 0, 1, 2])
def test_conv2d_transpose_output_shape_is_keras(kernel, strides, padding, output_padding):
    if output_padding is not None and output_padding >= strides:
        return  # refused by both (tested below)
    keras = keras_module()
    kwargs = dict(filters=2, kernel_size=(kernel, 3), strides=strides, padding=padding,
                  output_padding=output_padding)  # fmt: skip
    want = keras.layers.Conv2DTranspose(**kwargs).compute_output_shape((None, 3, 1, 2))
    layer = layers.Conv2DTranspose(**kwargs)
    assert layer.compute_output_shape((None, 3, 1, 2)) == tuple(want)
    assert layer(np.zeros((1, 3, 1, 2), np.float32)).shape == (1, *want[1:])


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (3, 1), (1, 3)])
def test_conv1d_output_shape_is_keras(padding, strides, dilation):
    keras = keras_module()
    kwargs = dict(filters=2, kernel_size=3, strides=strides, padding=padding,
                  dilation_rate=dilation)  # fmt: skip
    for steps in (1, 3, 7, 8):
        if padding == "valid" and steps < 2 * dilation + 1:
            continue
        want = keras.layers.Conv1D(**kwargs).compute_output_shape((None, steps, 2))
        layer = layers.Conv1D(**kwargs)
        assert layer.compute_output_shape((None, steps, 2)) == tuple(want)
        assert layer(np.zeros((2, steps, 2), np.float32)).shape == (2, *want[1:])


def test_causal_conv1d_output_never_sees_the_future():
    layer = layers.Conv1D(2, 3, padding="causal", dilation_rate=2)
    x = _x(1, 9, 2)
    y = layer(x).numpy()
    later = x.copy()
    later[0, 5:] += 10.0  # changing steps 5.. leaves outputs 0..4 as they were
    np.testing.assert_array_equal(layer(later).numpy()[0, :5], y[0, :5])
    assert not np.allclose(layer(later).numpy()[0, 5:], y[0, 5:])


def test_conv_layers_in_a_keras_model_with_pooling_train_alike():
    """Conv1D and Conv2DTranspose feeding other layers: Keras' losses and weights."""
    from keras_parity import assert_models_match

    keras = keras_module()
    x = _x(6, 4, 4, 2)
    y = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)

    def build(lib):
        L = lib.layers
        return [L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
                L.Conv2D(2, 3), L.Reshape((-1, 2)), L.Conv1D(3, 3, padding="causal"),
                L.GlobalAveragePooling1D()]  # fmt: skip

    k_model = keras.Sequential([keras.Input((4, 4, 2)), *build(keras)])
    d_model = models.Sequential(build(dlcore))
    d_model.build((None, 4, 4, 2))
    for optimizer in ("sgd", "adam"):
        assert_models_match(d_model, k_model, x, y, optimizer=optimizer)


# ------------------------------------------------------------ gradients and odd shapes


def _grads_through(layer, x):
    """Finite differences of a float64 layer w.r.t. its input and every weight."""
    layer._ensure_built((None, *x.shape[1:]))
    rng = np.random.default_rng(0)
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.weights])
    own = list(layer._weights)

    def fn(x_t, *ws):
        layer._weights = list(ws)
        layer.kernel = ws[0]
        layer.bias = ws[1] if len(ws) > 1 else None
        return layer(x_t)

    try:
        check_tensor_op(fn, x, *[w.data.copy() for w in own])
    finally:
        layer._weights = own


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(kernel_size=3, padding="causal", dilation_rate=2), (2, 7, 3)),
        (dict(kernel_size=2, strides=2, padding="same"), (1, 7, 1)),
        (dict(kernel_size=1, use_bias=False), (3, 1, 2)),
        (dict(kernel_size=3, strides=3, padding="same", activation="tanh"), (2, 3, 2)),
    ],
)
def test_conv1d_gradients(kwargs, shape):
    _grads_through(
        layers.Conv1D(2, dtype="float64", **kwargs), np.random.default_rng(1).standard_normal(shape)
    )


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(kernel_size=3, strides=2, padding="same"), (1, 3, 7, 2)),
        (dict(kernel_size=(2, 3), strides=(3, 1), output_padding=(2, 0)), (2, 1, 3, 1)),
        (dict(kernel_size=4, strides=2, padding="same", use_bias=False), (2, 3, 3, 3)),
        (dict(kernel_size=3, dilation_rate=2, activation="sigmoid"), (1, 2, 3, 2)),
        (dict(kernel_size=3, padding="same"), (2, 3, 3, 16)),  # Winograd
    ],
)
def test_conv2d_transpose_gradients(kwargs, shape):
    _grads_through(layers.Conv2DTranspose(2, dtype="float64", **kwargs),
                   np.random.default_rng(2).standard_normal(shape))  # fmt: skip


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    """<conv2d(a, k), b> == <a, conv2d_transpose(b, k)> for a 'same' stride-2 pair, the
    kernel read in the same (KH, KW, C, OC) array."""
    rng = np.random.default_rng(4)
    a, k = rng.standard_normal((2, 8, 6, 3)), rng.standard_normal((4, 4, 3, 5))
    conv = dlcore.functional.conv2d(a, k, strides=2, padding=((1, 1), (1, 1))).numpy()
    b = rng.standard_normal(conv.shape)
    up = dlcore.functional.conv2d_transpose(b, k, strides=2, padding=((1, 1), (1, 1))).numpy()
    assert up.shape == a.shape
    np.testing.assert_allclose((conv * b).sum(), (a * up).sum(), rtol=1e-12)


# ------------------------------------------------------------ arguments and input shapes


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: layers.Conv1D(0, 3), r"Conv1D: filters must be a positive int, got 0"),
        (
            lambda: layers.Conv1D(2, (3, 3)),
            r"Conv1D: kernel_size must be an int, each positive; got \(3, 3\)",
        ),
        (
            lambda: layers.Conv1D(2, 3, strides=0),
            r"Conv1D: strides must be an int, each positive; got 0",
        ),
        (
            lambda: layers.Conv1D(2, 3, padding="full"),
            r"Conv1D: padding must be 'valid' or 'same' or 'causal', got 'full'",
        ),
        (lambda: layers.Conv1D(2, 3, dilation_rate=-1), r"Conv1D: dilation_rate must be an int"),
        (lambda: layers.Conv1D(2, 3, groups=2), r"Conv1D: groups=2 is not supported; expected 1"),
        (
            lambda: layers.Conv1D(2, 3, data_format="channels_first"),
            r"Conv1D: dlcore is channels-last",
        ),
        (
            lambda: layers.Conv2DTranspose(2, 3, padding="causal"),
            r"Conv2DTranspose: padding must be 'valid' or 'same', got 'causal'",
        ),
        (
            lambda: layers.Conv2DTranspose(2, 0),
            r"Conv2DTranspose: kernel_size must be an int or a tuple of 2 ints, each positive; got 0",
        ),
        (
            lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2),
            r"Conv2DTranspose: output_padding must be smaller than strides on each axis; got output_padding=\(2, 2\) with strides \(2, 2\)",
        ),
        (
            lambda: layers.Conv2DTranspose(2, 3, output_padding=-1),
            r"Conv2DTranspose: output_padding must be an int or a tuple of 2 ints, each >= 0; got -1",
        ),
        (
            lambda: layers.Conv2DTranspose(-2, 3),
            r"Conv2DTranspose: filters must be a positive int, got -2",
        ),
        (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0),
         r"DepthwiseConv2D: depth_multiplier must be a positive int, got 0"),
        (lambda: layers.SeparableConv2D(2, 3, depth_multiplier=-1),
         r"SeparableConv2D: depth_multiplier must be a positive int, got -1"),
        (lambda: layers.SeparableConv2D(0, 3), r"SeparableConv2D: filters must be a positive int, got 0"),
        (lambda: layers.DepthwiseConv2D(0), r"DepthwiseConv2D: kernel_size must be an int or a tuple of 2 ints"),
        (lambda: layers.SeparableConv2D(2, (3, 3, 3)), r"SeparableConv2D: kernel_size must be"),
        (lambda: layers.DepthwiseConv2D(3, strides=0), r"DepthwiseConv2D: strides must be"),
        (lambda: layers.SeparableConv2D(2, 3, dilation_rate=0),
         r"SeparableConv2D: dilation_rate must be"),
        (lambda: layers.DepthwiseConv2D(3, padding="causal"),
         r"DepthwiseConv2D: padding must be 'valid' or 'same', got 'causal'"),
        (lambda: layers.SeparableConv2D(2, 3, data_format="channels_first"),
         r"SeparableConv2D: dlcore is channels-last"),
    ],
)  # fmt: skip
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_input_shapes_are_named():
    with pytest.raises(
        ValueError,
        match=r"conv1d: Conv1D needs inputs \(batch, steps, channels\), got shape \(2, 5\)",
    ):
        layers.Conv1D(2, 3, name="conv1d")(np.zeros((2, 5), np.float32))
    with pytest.raises(
        ValueError,
        match=r"Conv2DTranspose needs inputs \(batch, rows, cols, channels\), got shape \(2, 5, 3\)",
    ):
        layers.Conv2DTranspose(2, 3)(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(  # 'valid': fewer steps than the kernel, refused before any weight
        ValueError,
        match=r"short: the window spans 3 steps \(kernel_size 3, dilation_rate 1\) but the input "
        r"has 2 steps \(input shape \(1, 2, 1\)\)",
    ):
        layers.Conv1D(2, 3, name="short")(np.zeros((1, 2, 1), np.float32))
    built = _built(layers.Conv1D(2, 3), (1, 5, 1))  # built for 5 steps: the kernel refuses 2
    with pytest.raises(ValueError, match=r"the width window spans 3 .* padded input has width 2"):
        built(np.zeros((1, 2, 1), np.float32))
    layer = layers.Conv2DTranspose(2, 3)
    layer(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"kernel has shape \(3, 3, 2, 3\) with 3 input channels but x has shape \(1, 4, 4, 5\) with 5",
    ):
        layer(np.zeros((1, 4, 4, 5), np.float32))


# ------------------------------------------------------------ inputs smaller than the window

TOO_SMALL = [
    (lambda: layers.Conv1D(2, 7, name="c1"), (5, 2),
     r"c1: the window spans 7 steps \(kernel_size 7, dilation_rate 1\) but the input has 5 steps "
     r"\(input shape \(None, 5, 2\)\) and padding='valid' adds none; expected an input size >= 7 "
     r"\(the effective window\)"),
    (lambda: layers.Conv1D(2, 3, dilation_rate=3, name="c1_dilated"), (6, 2),
     r"c1_dilated: the window spans 7 steps \(kernel_size 3, dilation_rate 3\) but the input has "
     r"6 steps .*expected an input size >= 7"),
    (lambda: layers.Conv2D(4, 7, name="c2"), (5, 5, 2),
     r"c2: the window spans 7 rows \(kernel_size 7, dilation_rate 1\) but the input has 5 rows "
     r"\(input shape \(None, 5, 5, 2\)\) and padding='valid' adds none; expected an input size >= 7"),
    (lambda: layers.Conv2D(4, (1, 3), strides=2, dilation_rate=(1, 2), name="c2_cols"), (5, 4, 2),
     r"c2_cols: the window spans 5 cols \(kernel_size 3, dilation_rate 2\) but the input has 4 cols"),
    (lambda: layers.Conv2D(4, 7, name="c2_unknown_rows"), (None, 5, 2),  # the known size is checked
     r"c2_unknown_rows: the window spans 7 cols .*\(input shape \(None, None, 5, 2\)"),
    (lambda: layers.DepthwiseConv2D(7, name="dw"), (5, 5, 2),
     r"dw: the window spans 7 rows \(kernel_size 7, dilation_rate 1\) but the input has 5 rows "
     r".*padding='valid'.*>= 7"),
    (lambda: layers.SeparableConv2D(3, (1, 4), dilation_rate=2, name="sep"), (5, 5, 2),
     r"sep: the window spans 7 cols \(kernel_size 4, dilation_rate 2\) but the input has 5 cols "
     r".*padding='valid'.*>= 7"),
]  # fmt: skip


@pytest.mark.parametrize("make,shape,match", TOO_SMALL)
def test_inputs_smaller_than_the_window_are_named(make, shape, match):
    """'valid' padding and a known size below the dilated kernel: a ValueError naming the
    layer, the window, the padding and the size, symbolically (as Keras 3) and from
    compute_output_shape, where the sizes were -1 or 0."""
    with pytest.raises(ValueError, match=match):
        make()(layers.Input(shape))
    with pytest.raises(ValueError, match=match):
        make().compute_output_shape((None, *shape))


def test_inputs_smaller_than_the_window_make_no_weights():
    """An eager first call too small for the window is refused before build makes weights;
    the layer builds once on a later input that fits."""
    for layer, small, fits, n_weights in [
        (layers.Conv1D(2, 7), (1, 5, 2), (1, 7, 2), 2),
        (layers.Conv2D(4, 7), (1, 5, 5, 2), (1, 7, 7, 2), 2),
        (layers.DepthwiseConv2D(7), (1, 7, 5, 2), (1, 7, 7, 2), 2),
        (layers.SeparableConv2D(3, 7), (1, 5, 9, 2), (1, 7, 9, 2), 3),
    ]:
        with pytest.raises(ValueError, match=r"the window spans 7 .* expected an input size >= 7"):
            layer(np.zeros(small, np.float32))
        assert not layer.built and layer.weights == []
        layer(np.zeros(fits, np.float32))
        assert layer.built and len(layer.weights) == n_weights


def test_inputs_smaller_than_the_window_fail_in_keras_too():
    assert_keras_refuses(TOO_SMALL)


def test_conv2d_transpose_that_leaves_no_output_is_named():
    """'same', an even kernel and output_padding 0 leave no row of one input row: where
    Keras' shape says 0 (and the kernel refuses it), a ValueError before any weight."""
    match = (r"ct: kernel_size 2 \(dilation_rate 1\), strides 2, padding='same' and "
             r"output_padding 0 leave 0 output rows for an input of 1 rows \(input shape "
             r"\(None, 1, 3, 1\)\); expected at least 1")  # fmt: skip

    def make():
        return layers.Conv2DTranspose(2, 2, strides=2, padding="same", output_padding=0, name="ct")

    with pytest.raises(ValueError, match=match):
        make()(layers.Input((1, 3, 1)))
    with pytest.raises(ValueError, match=match):
        make().compute_output_shape((None, 1, 3, 1))
    layer = make()
    with pytest.raises(ValueError, match=match.replace("None", "2")):
        layer(np.zeros((2, 1, 3, 1), np.float32))
    assert layer.weights == []
    assert make()(layers.Input((None, 3, 1))).shape == (None, None, 4, 2)  # (3 - 1) * 2


@pytest.mark.parametrize(
    "make,shape,want",
    [
        # the input exactly as large as the (dilated) window: one position
        (lambda: layers.Conv1D(2, 7), (7, 3), (None, 1, 2)),
        (lambda: layers.Conv1D(2, 3, strides=2, dilation_rate=3), (7, 3), (None, 1, 2)),
        (lambda: layers.Conv2D(4, 7, strides=3), (7, 7, 2), (None, 1, 1, 4)),
        (lambda: layers.Conv2D(4, (5, 3), dilation_rate=(1, 2)), (5, 5, 2), (None, 1, 1, 4)),
        (lambda: layers.DepthwiseConv2D(7, depth_multiplier=2), (7, 7, 2), (None, 1, 1, 4)),
        (lambda: layers.SeparableConv2D(3, (1, 4), dilation_rate=2), (1, 7, 2), (None, 1, 1, 3)),
        # unknown sizes stay unknown, whatever the window
        (lambda: layers.Conv1D(2, 7), (None, 3), (None, None, 2)),
        (lambda: layers.Conv2D(4, 7), (None, 7, 2), (None, None, 1, 4)),
        (lambda: layers.DepthwiseConv2D(7), (None, None, 2), (None, None, None, 2)),
        (lambda: layers.SeparableConv2D(3, 7), (7, None, 2), (None, 1, None, 3)),
        # 'same' and 'causal' pad any input to fit, and a transposed convolution fits any
        (lambda: layers.Conv1D(2, 7, padding="same"), (5, 3), (None, 5, 2)),
        (lambda: layers.Conv1D(2, 3, padding="causal", dilation_rate=4), (5, 3), (None, 5, 2)),
        (lambda: layers.Conv2D(4, 7, strides=2, padding="same"), (5, 5, 2), (None, 3, 3, 4)),
        (lambda: layers.DepthwiseConv2D(7, padding="same"), (2, 3, 2), (None, 2, 3, 2)),
        (lambda: layers.SeparableConv2D(3, 7, padding="same"), (5, 1, 2), (None, 5, 1, 3)),
        (lambda: layers.Conv2DTranspose(3, 7), (2, 2, 2), (None, 8, 8, 3)),
    ],
)  # fmt: skip
def test_windows_that_fit_unknown_sizes_and_same_padding(make, shape, want):
    assert_output_shapes(make, shape, want)


# ------------------------------------------------------------ configs, files, summary


@pytest.mark.parametrize(
    "layer,shape",
    [
        (
            layers.Conv1D(3, 3, strides=2, padding="causal", dilation_rate=1, activation="relu"),
            (9, 2),
        ),
        (layers.Conv2DTranspose(2, (3, 2), strides=2, padding="same", output_padding=1), (4, 3, 2)),
        (layers.Conv2DTranspose(2, 3, use_bias=False), (4, 3, 2)),
    ],
)
def test_config_and_file_round_trip(tmp_path, layer, shape):
    x = _x(2, *shape)
    model = models.Sequential([layers.Input(shape), layer])
    y = model.predict(x, verbose=0)
    clone = layers.deserialize(layers.serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    model.save(tmp_path / "m.dlc")
    loaded = models.load_model(tmp_path / "m.dlc")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), y)


def test_keras_aliases_name_the_same_layers():
    assert layers.Convolution1D is layers.Conv1D
    assert layers.Convolution2DTranspose is layers.Conv2DTranspose
    assert layers.SeparableConvolution2D is layers.SeparableConv2D
    config = layers.serialize(layers.Conv1D(2, 3))
    config["class_name"] = "Convolution1D"
    assert type(layers.deserialize(config)) is layers.Conv1D


def test_summary_lines(capsys):
    model = models.Sequential(
        [
            layers.Input((7, 7, 128)),
            layers.Conv2DTranspose(64, 4, strides=2, padding="same"),
            layers.Reshape((196, 64)),
            layers.Conv1D(32, 5, padding="causal"),
        ]
    )
    model.summary()
    out = capsys.readouterr().out
    assert "conv2d_transpose" in out and "(None, 14, 14, 64)" in out and "131,136" in out
    assert "conv1d" in out and "(None, 196, 32)" in out and "10,272" in out


# ------------------------------------------------------------ DepthwiseConv2D, SeparableConv2D

DEPTHWISE = [
    dict(kernel_size=3),
    dict(kernel_size=3, depth_multiplier=2, padding="same"),
    dict(kernel_size=(3, 2), strides=2, padding="same", activation="relu"),
    dict(kernel_size=(2, 3), strides=(2, 1), depth_multiplier=2, padding="valid"),
    dict(kernel_size=3, dilation_rate=2, depth_multiplier=2),
    dict(kernel_size=3, dilation_rate=(2, 1), padding="same", use_bias=False),
    dict(kernel_size=1, depth_multiplier=3),
    # (not l1 on the zero bias: JAX differentiates |b| at 0 as 1, dlcore as 0)
    dict(kernel_size=2, depthwise_regularizer="l1", bias_regularizer="l2"),
]

SEPARABLE = [
    dict(filters=4, kernel_size=3),
    dict(filters=2, kernel_size=3, depth_multiplier=2, padding="same", activation="tanh"),
    dict(filters=3, kernel_size=(2, 3), strides=2, padding="same"),
    dict(filters=3, kernel_size=3, strides=(2, 1), depth_multiplier=2, padding="valid"),
    dict(filters=2, kernel_size=3, dilation_rate=2, padding="same", use_bias=False),
    dict(filters=5, kernel_size=1, depth_multiplier=3),
    dict(filters=2, kernel_size=2, depthwise_regularizer="l1", pointwise_regularizer="l2"),
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "cls,kwargs",
    [("DepthwiseConv2D", k) for k in DEPTHWISE] + [("SeparableConv2D", k) for k in SEPARABLE],
    ids=lambda a: _ids(a) if isinstance(a, dict) else a,
)
def test_depthwise_and_separable_match_keras(cls, kwargs, optimizer):
    assert_layer_matches_keras(
        lambda: getattr(layers, cls)(**kwargs), lambda k: getattr(k.layers, cls)(**kwargs),
        _x(4, 7, 6, 3), optimizer=optimizer,
    )  # fmt: skip


@pytest.mark.parametrize(
    "cls,kwargs,names",
    [
        ("DepthwiseConv2D", dict(kernel_size=(3, 2), depth_multiplier=2), ["kernel", "bias"]),
        ("DepthwiseConv2D", dict(kernel_size=3, use_bias=False), ["kernel"]),
        ("SeparableConv2D", dict(filters=5, kernel_size=(2, 3), depth_multiplier=3),
         ["depthwise_kernel", "pointwise_kernel", "bias"]),
        ("SeparableConv2D", dict(filters=4, kernel_size=3, use_bias=False),
         ["depthwise_kernel", "pointwise_kernel"]),
    ],
)  # fmt: skip
def test_depthwise_and_separable_weights_are_keras(cls, kwargs, names):
    """Weight count, order, shapes and names as Keras 3 builds them on 3 channels."""
    keras = keras_module()
    k_layer, layer = getattr(keras.layers, cls)(**kwargs), getattr(layers, cls)(**kwargs)
    k_layer.build((None, 7, 6, 3))
    layer(np.zeros((1, 7, 6, 3), np.float32))
    assert [tuple(w.shape) for w in layer.weights] == [tuple(w.shape) for w in k_layer.weights]
    assert [w.name.split("/")[-1] for w in layer.weights] == names
    assert [w.path.split("/")[-1] for w in k_layer.weights] == names


@pytest.mark.parametrize("cls", ["DepthwiseConv2D", "SeparableConv2D"])
@pytest.mark.parametrize("kernel", [1, 2, 3, (3, 2)])
@pytest.mark.parametrize("strides", [1, 2, (3, 1)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_depthwise_and_separable_output_shapes_are_keras(cls, kernel, strides, padding):
    keras = keras_module()
    kwargs = dict(kernel_size=kernel, strides=strides, padding=padding, depth_multiplier=2)
    if cls == "SeparableConv2D":
        kwargs["filters"] = 3
    for rows, cols in ((3, 3), (7, 4), (8, 5)):
        want = getattr(keras.layers, cls)(**kwargs).compute_output_shape((None, rows, cols, 2))
        layer = getattr(layers, cls)(**kwargs)
        assert layer.compute_output_shape((None, rows, cols, 2)) == tuple(want)
        assert layer(np.zeros((2, rows, cols, 2), np.float32)).shape == (2, *want[1:])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mobilenet_block_trains_as_keras(optimizer):
    """DepthwiseConv2D and SeparableConv2D between other layers: Keras' losses and weights."""

    def block(lib):
        L = lib.layers
        return [L.Conv2D(4, 3, padding="same", activation="relu"),
                L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                  activation="relu"),
                L.SeparableConv2D(3, 3, padding="same"), L.GlobalAveragePooling2D()]  # fmt: skip

    y = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    assert_layer_matches_keras(lambda: block(dlcore), block, _x(6, 8, 8, 2), y, optimizer=optimizer)


@pytest.mark.parametrize(
    "cls,kwargs,shape",
    [
        ("DepthwiseConv2D", dict(kernel_size=3, strides=2, padding="same", depth_multiplier=2),
         (1, 5, 3, 2)),
        ("DepthwiseConv2D", dict(kernel_size=(2, 3), dilation_rate=(2, 1), use_bias=False,
                                 activation="tanh"), (2, 5, 4, 3)),
        ("SeparableConv2D", dict(filters=2, kernel_size=3, padding="same", depth_multiplier=2),
         (2, 3, 4, 2)),
        ("SeparableConv2D", dict(filters=3, kernel_size=(3, 2), strides=(2, 1), use_bias=False,
                                 activation="sigmoid"), (1, 5, 3, 2)),
    ],
)  # fmt: skip
def test_depthwise_and_separable_gradients(cls, kwargs, shape):
    layer = getattr(layers, cls)(dtype="float64", **kwargs)
    check_layer(layer, np.random.default_rng(5).standard_normal(shape))


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_depthwise_and_separable_files_and_summary(tmp_path, suffix):
    model = models.Sequential([
        layers.Input((7, 6, 3)),
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
        layers.SeparableConv2D(4, 3, strides=2, activation="relu"),
        layers.SeparableConv2D(2, 1, use_bias=False),
    ])  # fmt: skip
    model.set_weights([w + 0.1 for w in model.get_weights()])  # a nonzero bias
    x = _x(2, 7, 6, 3)
    back, lines = assert_round_trip(model, x, tmp_path / f"m{suffix}")
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for layer in model.layers:
        clone = layers.deserialize(layers.serialize(layer))
        assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    # kernel 3*3*3*2 + bias 6; depthwise 3*3*6 + pointwise 6*4 + bias 4; 4*2
    expected = [("(DepthwiseConv2D)", "(None, 7, 6, 6)", " 60"),
                ("(SeparableConv2D)", "(None, 3, 2, 4)", " 82"),
                ("(SeparableConv2D)", "(None, 3, 2, 2)", " 12")]  # fmt: skip
    for name, shape, params in expected:
        assert any(name in l and shape in l and l.endswith(params) for l in lines), (name, lines)


def test_keras_saved_depthwise_and_separable_load_in_dlcore(tmp_path):
    keras = keras_module()
    pytest.importorskip("h5py")
    x = _x(8, 6, 5, 2)
    k_model = keras.Sequential([
        keras.Input((6, 5, 2)),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        keras.layers.SeparableConv2D(3, (2, 3), strides=2, depth_multiplier=2),
    ])  # fmt: skip
    k_model.compile("sgd", "mse")
    k_model.fit(x, np.ones((8, *k_model.output_shape[1:]), np.float32), epochs=1, verbose=0)
    k_model.save(tmp_path / "k.keras")
    model = models.load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in model.layers] == ["DepthwiseConv2D", "SeparableConv2D"]
    np.testing.assert_allclose(model.predict(x, verbose=0), k_model.predict(x, verbose=0),
                               rtol=2e-5, atol=2e-6)  # fmt: skip


def _built(layer, shape):
    layer(np.zeros(shape, np.float32))
    return layer


@pytest.mark.parametrize(
    "make,x_shape,match",
    [
        (lambda: layers.DepthwiseConv2D(3), (2, 5, 3),
         r"DepthwiseConv2D needs inputs \(batch, rows, cols, channels\), got shape \(2, 5, 3\)"),
        (lambda: layers.SeparableConv2D(2, 3), (2, 5, 3),
         r"SeparableConv2D needs inputs \(batch, rows, cols, channels\)"),
        (lambda: layers.DepthwiseConv2D(3), (1, 2, 5, 1),  # 'valid': fewer rows than the kernel
         r"the window spans 3 rows \(kernel_size 3, dilation_rate 1\) but the input has 2 rows"),
        (lambda: layers.SeparableConv2D(2, (1, 4), dilation_rate=2), (1, 5, 5, 1),
         r"the window spans 7 cols \(kernel_size 4, dilation_rate 2\) but the input has 5 cols"),
        (lambda: _built(layers.DepthwiseConv2D(3), (1, 5, 5, 1)), (1, 2, 5, 1),  # the kernel's own
         r"the height window spans 3 .* padded input has height 2"),
        (lambda: _built(layers.SeparableConv2D(2, (1, 4), dilation_rate=2), (1, 7, 7, 1)),
         (1, 5, 5, 1), r"the width window spans 7 .* padded input has width 5"),
        (lambda: _built(layers.DepthwiseConv2D(3, depth_multiplier=2), (1, 4, 4, 3)), (1, 4, 4, 5),
         r"kernel has shape \(3, 3, 3, 2\) with 3 input channels but x has shape \(1, 4, 4, 5\) "
         r"with 5"),
        (lambda: _built(layers.SeparableConv2D(2, 3), (1, 4, 4, 3)), (1, 4, 4, 2),
         r"kernel has shape \(3, 3, 3, 1\) with 3 input channels but x has shape \(1, 4, 4, 2\)"),
    ],
)  # fmt: skip
def test_depthwise_and_separable_bad_inputs_are_named(make, x_shape, match):
    layer = make()
    with pytest.raises(ValueError, match=match):
        layer(np.zeros(x_shape, np.float32))
