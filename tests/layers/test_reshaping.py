"""UpSampling2D, ZeroPadding2D, Cropping2D, Permute and RepeatVector against Keras 3
(predict, and training steps of a Dense layer before them, so the gradient runs through
them), finite-difference gradients, odd shapes, bad arguments, files and the summary."""

import numpy as np
import pytest

from dlcore import layers, models
from gradcheck import check_layer
from keras_parity import (
    assert_layer_matches_keras,
    assert_round_trip,
)


def x_img(shape=(3, 5, 7, 2), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def matches_keras(name, kwargs, x, optimizer="sgd"):
    """Dense, then the layer: training steps reach the Dense weights through it."""
    return assert_layer_matches_keras(
        lambda: [layers.Dense(3), getattr(layers, name)(**kwargs)],
        lambda k: [k.layers.Dense(3), getattr(k.layers, name)(**kwargs)],
        x,
        optimizer=optimizer,
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(size=(2, 3)), dict(size=3, interpolation="bilinear"),
     dict(size=(1, 2), interpolation="bilinear"), dict(size=(3, 2), interpolation="bilinear")],
)  # fmt: skip
def test_up_sampling2d_matches_keras(optimizer, kwargs):
    matches_keras("UpSampling2D", kwargs, x_img(), optimizer)


@pytest.mark.parametrize("padding", [1, (1, 2), ((0, 1), (2, 3)), 0])
def test_zero_padding2d_matches_keras(padding):
    matches_keras("ZeroPadding2D", dict(padding=padding), x_img())


@pytest.mark.parametrize("cropping", [1, (1, 0), ((0, 1), (2, 1)), ((2, 0), (0, 6))])
def test_cropping2d_matches_keras(cropping):
    matches_keras("Cropping2D", dict(cropping=cropping), x_img())


@pytest.mark.parametrize("dims, shape", [((2, 1), (4, 3, 5)), ((3, 1, 2), (2, 3, 4, 5)),
                                         ((1,), (3, 4))])  # fmt: skip
def test_permute_matches_keras(dims, shape):
    matches_keras("Permute", dict(dims=dims), x_img(shape))


@pytest.mark.parametrize("n", [1, 4])
def test_repeat_vector_matches_keras(n):
    matches_keras("RepeatVector", dict(n=n), x_img((5, 3)), optimizer="adam")


@pytest.mark.parametrize(
    "layer, shape",
    [(layers.UpSampling2D((2, 3)), (2, 3, 1, 2)),
     (layers.UpSampling2D(2, interpolation="bilinear"), (1, 3, 4, 2)),
     (layers.UpSampling2D((3, 1), interpolation="bilinear"), (2, 1, 3, 1)),
     (layers.ZeroPadding2D(((1, 0), (2, 1))), (2, 3, 2, 3)),
     (layers.Cropping2D(((1, 0), (0, 2))), (2, 3, 4, 1)),
     (layers.Permute((3, 1, 2)), (2, 3, 1, 4)),
     (layers.RepeatVector(3), (2, 5))],
)  # fmt: skip
def test_gradients(rng, layer, shape):
    layer.dtype = np.dtype("float64")
    check_layer(layer, rng.standard_normal(shape))


def test_bilinear_against_the_formula():
    """Half-pixel centres with the edges extended: a ramp stays a ramp inside."""
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 4, 1)
    y = layers.UpSampling2D((1, 2), interpolation="bilinear")(x).numpy().ravel()
    np.testing.assert_allclose(y, [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3])


def test_bad_arguments_and_inputs():
    for make, match in [
        (lambda: layers.UpSampling2D(0), r"size must be an int or a tuple of 2 ints, each positive"),
        (lambda: layers.UpSampling2D(interpolation="bicubic"),
         r"interpolation must be one of 'nearest', 'bilinear', got 'bicubic'"),
        (lambda: layers.UpSampling2D(data_format="channels_first"), "dlcore is channels-last"),
        (lambda: layers.ZeroPadding2D(-1), r"padding must be an int, .* got -1"),
        (lambda: layers.ZeroPadding2D(((1, 2, 3), (1, 1))), r"padding must be .* got \(\(1, 2, 3"),
        (lambda: layers.Cropping2D((1, 2, 3)), r"cropping must be an int, .*got \(1, 2, 3\)"),
        (lambda: layers.Permute((1, 1)), r"dims must be a permutation of 1..rank .* \(1, 1\)"),
        (lambda: layers.Permute((0, 1)), r"dims must be a permutation"),
        (lambda: layers.RepeatVector(0), "n must be a positive int, got 0"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(TypeError, match=r"RepeatVector: n must be an int, got 2\.0"):
        layers.RepeatVector(2.0)
    for layer, x, match in [
        (layers.UpSampling2D(), np.zeros((2, 3, 4)), r"UpSampling2D needs inputs \(batch, rows"),
        (layers.Cropping2D(((1, 2), (0, 0))), np.zeros((1, 3, 3, 1)),
         r"cropping \(\(1, 2\), \(0, 0\)\) leaves no rows of inputs of shape \(1, 3, 3, 1\)"),
        (layers.Permute((2, 1)), np.zeros((2, 3)), r"Permute needs inputs rank 3"),
        (layers.RepeatVector(2), np.zeros((2, 3, 1)), r"RepeatVector needs inputs \(batch, features\)"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            layer(x.astype(np.float32))


def test_cropping2d_larger_than_the_input_is_named_symbolically():
    """Crops that leave no row or column: a ValueError naming ``cropping`` from a symbolic
    call and from compute_output_shape (once a size of 0 or less), unknown sizes unchecked."""
    match = (
        r"crop: cropping \(\(3, 3\), \(0, 0\)\) leaves no rows of inputs of shape \(None, 5, 5, 2\)"
    )
    with pytest.raises(ValueError, match=match):
        layers.Cropping2D(((3, 3), (0, 0)), name="crop")(layers.Input((5, 5, 2)))
    with pytest.raises(ValueError, match=r"cropping \(\(0, 0\), \(2, 3\)\) leaves no cols"):
        layers.Cropping2D(((0, 0), (2, 3))).compute_output_shape((None, 5, 5, 2))
    assert layers.Cropping2D(3)(layers.Input((None, 7, 2))).shape == (None, None, 1, 2)


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_save_load_round_trip_and_summary(tmp_path, suffix):
    model = models.Sequential([
        layers.ZeroPadding2D(((1, 0), (2, 1)), input_shape=(4, 5, 2)),
        layers.UpSampling2D((2, 1), interpolation="bilinear"),
        layers.Cropping2D(((0, 1), (1, 1))),
        layers.Permute((2, 1, 3)),
        layers.Reshape((-1,)),
        layers.Dense(3),
        layers.RepeatVector(2),
    ])  # fmt: skip
    x = x_img((2, 4, 5, 2))
    _, lines = assert_round_trip(model, x, tmp_path / f"m{suffix}")
    expected = {"ZeroPadding2D": "(None, 5, 8, 2)", "UpSampling2D": "(None, 10, 8, 2)",
                "Cropping2D": "(None, 9, 6, 2)", "Permute": "(None, 6, 9, 2)",
                "RepeatVector": "(None, 2, 3)"}  # fmt: skip
    for name, shape in expected.items():
        assert any(f"({name})" in l and shape in l and l.endswith(" 0") for l in lines), name
