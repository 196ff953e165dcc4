"""The pooling layers against Keras 3 — each after a convolution, so that training steps
from copied weights go through the pooling's backward — and through finite differences,
with masks, arguments, configs, files and summary lines."""

import numpy as np
import pytest

import dlcore
from dlcore import layers, models
from gradcheck import check_tensor_op
from keras_parity import (
    assert_keras_refuses,
    assert_models_match,
    assert_output_shapes,
    keras_module,
)


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _built(layer, shape):
    layer(np.zeros(shape, np.float32))
    return layer


def _after_a_conv(make, x, optimizer, dense=False):
    """conv -> pooling (-> Dense) in both libraries, compared from Keras' weights."""
    keras = keras_module()
    conv = "Conv1D" if x.ndim == 3 else "Conv2D"

    def build(lib):
        out = [getattr(lib.layers, conv)(3, 2, padding="same"), make(lib)]
        return out + ([lib.layers.Flatten(), lib.layers.Dense(2)] if dense else [])

    k_model = keras.Sequential([keras.Input(x.shape[1:]), *build(keras)])
    d_model = models.Sequential(build(dlcore))
    d_model.build((None, *x.shape[1:]))
    y = np.random.default_rng(2).standard_normal(k_model.output_shape[1:])
    y = np.broadcast_to(y, (x.shape[0], *y.shape)).astype(np.float32) + _x(
        *(x.shape[0], *y.shape), seed=5
    )
    assert_models_match(d_model, k_model, x, y, optimizer=optimizer)
    return d_model


POOL_2D = [
    ("AveragePooling2D", dict(pool_size=2)),
    ("AveragePooling2D", dict(pool_size=3, strides=2, padding="same")),  # padding not counted
    ("AveragePooling2D", dict(pool_size=(2, 3), strides=(1, 2), padding="same")),
    ("AveragePooling2D", dict(pool_size=(3, 1), strides=1, padding="valid")),  # overlapping
    ("GlobalAveragePooling2D", dict()),
    ("GlobalAveragePooling2D", dict(keepdims=True)),
    ("GlobalMaxPooling2D", dict()),
    ("GlobalMaxPooling2D", dict(keepdims=True)),
    ("MaxPooling2D", dict(pool_size=(3, 2), strides=(2, 1), padding="same")),
]
POOL_1D = [
    ("AveragePooling1D", dict(pool_size=2)),
    ("AveragePooling1D", dict(pool_size=3, strides=2, padding="same")),
    ("AveragePooling1D", dict(pool_size=4, strides=1, padding="same")),  # even window
    ("MaxPooling1D", dict()),
    ("MaxPooling1D", dict(pool_size=3, strides=2, padding="same")),
    ("GlobalAveragePooling1D", dict()),
    ("GlobalAveragePooling1D", dict(keepdims=True)),
    ("GlobalMaxPooling1D", dict()),
    ("GlobalMaxPooling1D", dict(keepdims=True)),
]


def _ids(case):
    return case[0] + "(" + ",".join(f"{a}={b}" for a, b in case[1].items()) + ")"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", POOL_2D, ids=_ids)
def test_2d_pooling_matches_keras(case, optimizer):
    name, kwargs = case
    _after_a_conv(lambda lib: getattr(lib.layers, name)(**kwargs), _x(4, 7, 6, 2), optimizer)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", POOL_1D, ids=_ids)
def test_1d_pooling_matches_keras(case, optimizer):
    name, kwargs = case
    _after_a_conv(lambda lib: getattr(lib.layers, name)(**kwargs), _x(4, 9, 2), optimizer)


@pytest.mark.parametrize("name", ["AveragePooling2D", "MaxPooling2D"])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool,strides", [(1, None), (2, None), (3, 2), ((2, 3), (3, 1)), (4, 1)])
def test_2d_output_shapes_are_keras(name, padding, pool, strides):
    keras = keras_module()
    for shape in [(1, 1, 2), (3, 7, 1), (7, 3, 2), (4, 4, 3)]:
        k_layer = getattr(keras.layers, name)(pool, strides=strides, padding=padding)
        if padding == "valid" and any(n < p for n, p in zip(shape, np.broadcast_to(pool, 2))):
            continue
        want = k_layer.compute_output_shape((None, *shape))
        layer = getattr(layers, name)(pool, strides=strides, padding=padding)
        assert layer.compute_output_shape((None, *shape)) == tuple(want)
        x = _x(2, *shape)
        np.testing.assert_allclose(layer(x).numpy(), k_layer(x), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ masks


def test_global_average_pooling1d_honours_the_mask_as_keras():
    """Embedding(mask_zero=True) -> GlobalAveragePooling1D: the mean over the real tokens,
    in predict and in training; Keras' layers and weights."""
    keras = keras_module()
    if not hasattr(layers, "Embedding"):
        pytest.skip("Embedding is not in this build")
    tokens = np.array([[3, 1, 4, 0, 0], [5, 0, 0, 0, 0], [2, 6, 5, 3, 5], [1, 1, 0, 0, 0]])
    y = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)

    def build(lib):
        return [lib.layers.Embedding(8, 3, mask_zero=True), lib.layers.GlobalAveragePooling1D(),
                lib.layers.Dense(2)]  # fmt: skip

    k_model = keras.Sequential([keras.Input((5,), dtype="int32"), *build(keras)])
    d_model = models.Sequential(build(dlcore))
    d_model.build((None, 5))
    for optimizer in ("sgd", "adam"):
        assert_models_match(d_model, k_model, tokens, y, optimizer=optimizer)


def test_global_average_pooling1d_mask_by_hand():
    x = _x(2, 4, 3)
    mask = np.array([[True, False, True, False], [True, True, True, True]])
    x_t = dlcore.Tensor(x, requires_grad=True)
    layer = layers.GlobalAveragePooling1D()
    y = layer(x_t, mask=mask)
    np.testing.assert_allclose(y.numpy()[0], x[0, [0, 2]].mean(0), rtol=1e-6)
    np.testing.assert_allclose(y.numpy()[1], x[1].mean(0), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x_t.grad[0], mask[0, :, None] * np.full((4, 3), 0.5))
    np.testing.assert_allclose(x_t.grad[1], np.full((4, 3), 0.25))
    assert dlcore.layers.get_mask(y) is None  # the steps are gone, and so is the mask
    # masked steps holding NaN do not reach the mean, as Keras' where(mask, x, 0)
    x[0, 1] = np.nan
    assert np.isfinite(layer(x, mask=mask).numpy()).all()


def test_global_average_pooling1d_takes_the_mask_a_layer_attached():
    x = dlcore.Tensor(_x(2, 3, 2))
    mask = np.array([[True, True, False], [False, True, False]])
    dlcore.layers.set_mask(x, mask)
    y = layers.GlobalAveragePooling1D()(x).numpy()
    np.testing.assert_allclose(y[1], x.numpy()[1, 1], rtol=1e-6)


# ------------------------------------------------------------ gradients and odd shapes


@pytest.mark.parametrize(
    "make,shape",
    [
        (
            lambda: layers.AveragePooling2D(3, strides=2, padding="same", dtype="float64"),
            (2, 7, 5, 3),
        ),
        (lambda: layers.AveragePooling2D((1, 3), strides=(3, 1), dtype="float64"), (1, 3, 7, 1)),
        (lambda: layers.AveragePooling1D(2, padding="same", dtype="float64"), (1, 7, 2)),
        (lambda: layers.AveragePooling1D(3, strides=1, dtype="float64"), (2, 3, 1)),
        (lambda: layers.MaxPooling1D(3, strides=2, padding="same", dtype="float64"), (2, 7, 3)),
        (lambda: layers.GlobalAveragePooling1D(dtype="float64"), (3, 7, 2)),
        (lambda: layers.GlobalAveragePooling2D(keepdims=True, dtype="float64"), (1, 3, 7, 2)),
        (lambda: layers.GlobalMaxPooling1D(dtype="float64"), (2, 7, 3)),
        (lambda: layers.GlobalMaxPooling2D(dtype="float64"), (2, 1, 1, 3)),
    ],
)
def test_gradients_through_pooling(make, shape):
    x = np.random.default_rng(0).permutation(np.prod(shape)).reshape(shape) / 7.0  # no ties
    check_tensor_op(lambda t: make()(t), x)


# ------------------------------------------------------------ arguments and input shapes


@pytest.mark.parametrize(
    "make,error,match",
    [
        (
            lambda: layers.AveragePooling2D(0),
            ValueError,
            r"AveragePooling2D: pool_size must be an int or a tuple of 2 ints, each positive; got 0",
        ),
        (
            lambda: layers.AveragePooling2D(2, strides=(1, 0)),
            ValueError,
            r"AveragePooling2D: strides must be .* got \(1, 0\)",
        ),
        (
            lambda: layers.AveragePooling2D(2, padding="causal"),
            ValueError,
            r"AveragePooling2D: padding must be 'valid' or 'same', got 'causal'",
        ),
        (
            lambda: layers.AveragePooling1D((2, 2)),
            ValueError,
            r"AveragePooling1D: pool_size must be an int, each positive; got \(2, 2\)",
        ),
        (
            lambda: layers.MaxPooling1D(data_format="channels_first"),
            ValueError,
            r"MaxPooling1D: dlcore is channels-last",
        ),
        (
            lambda: layers.GlobalAveragePooling2D(data_format="channels_first"),
            ValueError,
            r"GlobalAveragePooling2D: dlcore is channels-last",
        ),
        (lambda: layers.AveragePooling2D(), TypeError, r"pool_size"),  # required, as in Keras 3
        (
            lambda: layers.GlobalMaxPooling1D(pool_size=2),
            TypeError,
            r"unexpected keyword arguments \['pool_size'\]",
        ),
    ],
)
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "layer,shape,match",
    [
        (
            layers.AveragePooling1D(2),
            (2, 5, 3, 1),
            r"AveragePooling1D needs inputs \(batch, steps, channels\), got shape \(2, 5, 3, 1\)",
        ),
        (
            layers.GlobalAveragePooling2D(),
            (2, 5, 3),
            r"GlobalAveragePooling2D needs inputs \(batch, rows, cols, channels\), got shape \(2, 5, 3\)",
        ),
        (
            layers.GlobalMaxPooling1D(),
            (2, 5),
            r"GlobalMaxPooling1D needs inputs \(batch, steps, channels\)",
        ),
        (
            layers.AveragePooling2D(4),
            (1, 3, 5, 2),
            r"the window spans 4 rows \(pool_size 4\) but the input has 3 rows \(input shape "
            r"\(1, 3, 5, 2\)\) and padding='valid' adds none; expected an input size >= 4",
        ),
        (
            _built(layers.AveragePooling2D(4), (1, 4, 5, 2)),  # the kernel's own check
            (1, 3, 5, 2),
            r"the height window spans 4 .* padded input has height 3",
        ),
        (
            layers.GlobalMaxPooling1D(),
            (2, 0, 3),
            r"global_max_pool: x has shape \(2, 0, 3\), no position",
        ),
    ],
)
def test_bad_input_shapes_are_named(layer, shape, match):
    with pytest.raises(ValueError, match=match):
        layer(np.zeros(shape, np.float32))


TOO_SMALL = [
    (lambda: layers.MaxPooling1D(7, name="mp1"), (5, 2),
     r"mp1: the window spans 7 steps \(pool_size 7\) but the input has 5 steps \(input shape "
     r"\(None, 5, 2\)\) and padding='valid' adds none; expected an input size >= 7 "
     r"\(the effective window\)"),
    (lambda: layers.AveragePooling1D(4, strides=1, name="ap1"), (3, 2),
     r"ap1: the window spans 4 steps \(pool_size 4\) but the input has 3 steps .*>= 4"),
    (lambda: layers.MaxPooling2D(7, name="mp2"), (5, 5, 2),
     r"mp2: the window spans 7 rows \(pool_size 7\) but the input has 5 rows \(input shape "
     r"\(None, 5, 5, 2\)\) and padding='valid' adds none; expected an input size >= 7"),
    (lambda: layers.MaxPooling2D((2, 3), name="mp2_cols"), (None, 2, 1),  # known size checked
     r"mp2_cols: the window spans 3 cols \(pool_size 3\) but the input has 2 cols"),
    (lambda: layers.AveragePooling2D((1, 5), strides=1, name="ap2"), (4, 4, 3),
     r"ap2: the window spans 5 cols \(pool_size 5\) but the input has 4 cols .*padding='valid'"),
]  # fmt: skip


@pytest.mark.parametrize("make,shape,match", TOO_SMALL)
def test_inputs_smaller_than_the_window_are_named(make, shape, match):
    """'valid' padding and a known size below pool_size: a ValueError naming the layer, the
    window, the padding and the size, symbolically (as Keras 3), from compute_output_shape
    and on a first eager call, where the sizes were 0 or less."""
    with pytest.raises(ValueError, match=match):
        make()(layers.Input(shape))
    with pytest.raises(ValueError, match=match):
        make().compute_output_shape((None, *shape))
    if None not in shape:
        with pytest.raises(ValueError, match=match.replace("None", "2")):
            make()(np.zeros((2, *shape), np.float32))


def test_inputs_smaller_than_the_window_fail_in_keras_too():
    assert_keras_refuses(TOO_SMALL)


@pytest.mark.parametrize(
    "make,shape,want",
    [
        # the input exactly as large as the window: one position
        (lambda: layers.MaxPooling1D(7), (7, 2), (None, 1, 2)),
        (lambda: layers.AveragePooling1D(3, strides=5), (3, 2), (None, 1, 2)),
        (lambda: layers.MaxPooling2D((2, 3)), (2, 3, 1), (None, 1, 1, 1)),
        (lambda: layers.AveragePooling2D(5, strides=2), (5, 5, 3), (None, 1, 1, 3)),
        # unknown sizes stay unknown, whatever the window
        (lambda: layers.MaxPooling1D(7), (None, 2), (None, None, 2)),
        (lambda: layers.AveragePooling1D(7), (None, 2), (None, None, 2)),
        (lambda: layers.MaxPooling2D(7), (None, None, 2), (None, None, None, 2)),
        (lambda: layers.AveragePooling2D(3), (None, 6, 2), (None, None, 2, 2)),
        # 'same' pads any input to fit
        (lambda: layers.MaxPooling1D(7, padding="same"), (5, 2), (None, 1, 2)),
        (lambda: layers.AveragePooling1D(7, strides=2, padding="same"), (5, 2), (None, 3, 2)),
        (lambda: layers.MaxPooling2D(7, strides=1, padding="same"), (2, 3, 1), (None, 2, 3, 1)),
        (lambda: layers.AveragePooling2D(7, padding="same"), (5, 5, 3), (None, 1, 1, 3)),
    ],
)  # fmt: skip
def test_windows_that_fit_unknown_sizes_and_same_padding(make, shape, want):
    assert_output_shapes(make, shape, want)


def test_global_average_pooling_of_no_steps_is_nan_as_keras():
    y = layers.GlobalAveragePooling1D()(np.zeros((2, 0, 3), np.float32)).numpy()
    assert y.shape == (2, 3) and np.isnan(y).all()


# ------------------------------------------------------------ configs, files, summary


@pytest.mark.parametrize(
    "layer,shape",
    [
        (layers.AveragePooling2D((2, 3), strides=1, padding="same"), (5, 4, 2)),
        (layers.AveragePooling1D(3, padding="same"), (7, 2)),
        (layers.MaxPooling1D(2, strides=1), (7, 2)),
        (layers.GlobalAveragePooling1D(keepdims=True), (7, 2)),
        (layers.GlobalAveragePooling2D(), (3, 4, 2)),
        (layers.GlobalMaxPooling1D(), (7, 2)),
        (layers.GlobalMaxPooling2D(keepdims=True), (3, 4, 2)),
    ],
)
def test_config_and_file_round_trip(tmp_path, layer, shape):
    x = _x(2, *shape)
    model = models.Sequential([layers.Input(shape), layers.Dense(3), layer])
    y = model.predict(x, verbose=0)
    clone = layers.deserialize(layers.serialize(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    model.save(tmp_path / "m.dlc")
    np.testing.assert_array_equal(models.load_model(tmp_path / "m.dlc").predict(x, verbose=0), y)


def test_keras_aliases_name_the_same_layers():
    pairs = [("AvgPool1D", "AveragePooling1D"), ("AvgPool2D", "AveragePooling2D"),
             ("MaxPool1D", "MaxPooling1D"), ("MaxPool2D", "MaxPooling2D"),
             ("GlobalAvgPool1D", "GlobalAveragePooling1D"),
             ("GlobalAvgPool2D", "GlobalAveragePooling2D"),
             ("GlobalMaxPool1D", "GlobalMaxPooling1D"),
             ("GlobalMaxPool2D", "GlobalMaxPooling2D")]  # fmt: skip
    for alias, name in pairs:
        assert getattr(layers, alias) is getattr(layers, name)
        assert getattr(dlcore.keras.layers, alias) is getattr(layers, name)


def test_summary_lines(capsys):
    model = models.Sequential(
        [
            layers.Input((26, 26, 32)),
            layers.AveragePooling2D(2),
            layers.GlobalAveragePooling2D(),
        ]
    )
    model.summary()
    out = capsys.readouterr().out
    assert "average_pooling2d" in out and "(None, 13, 13, 32)" in out
    assert "global_average_pooling2d" in out and "(None, 32)" in out
    assert "Total params: 0" in out
