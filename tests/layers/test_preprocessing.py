"""Preprocessing and augmentation layers: Keras 3 parity for the deterministic ones
and for every random layer in inference (the identity); Keras' own transforms
reproduced exactly from the parameters Keras draws; the draws' distributions, the
geometry, seeding, gradients, errors, saving and ONNX export."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, layers, models
from dlcore import functional as F
from gradcheck import check_tensor_op
from keras_parity import assert_close, assert_layer_matches_keras, assert_models_match, keras_module

RANDOM_LAYERS = {
    "RandomFlip": ((), ["flips"]),
    "RandomRotation": ((0.3,), ["angle"]),
    "RandomTranslation": ((0.4, 0.3), ["translations"]),
    "RandomZoom": ((0.5, 0.4), ["height_zoom", "width_zoom"]),
    "RandomContrast": ((0.5,), ["contrast_factor"]),
}


@pytest.fixture
def images():
    return np.random.default_rng(1).random((5, 7, 9, 2)).astype(np.float32)


def draw(layer, x):
    """One training call's output."""
    return layer(x, training=True).data


# ---------------------------------------------------------------- deterministic: Keras parity


@pytest.mark.parametrize(
    "scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), ([0.5, 2.0], [0.1, -0.2])]
)
def test_rescaling_matches_keras_in_a_trained_model(scale, offset):
    keras = keras_module()
    x = np.random.default_rng(0).integers(0, 256, (6, 4, 2)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((6, 4, 3)).astype(np.float32)
    k_model = keras.Sequential([keras.Input((4, 2)), keras.layers.Rescaling(scale, offset),
                                keras.layers.Dense(3)])  # fmt: skip
    d_model = models.Sequential([layers.Input((4, 2)), layers.Rescaling(scale, offset),
                                 layers.Dense(3)])  # fmt: skip
    assert_models_match(d_model, k_model, x, y)


def test_rescaling_takes_integer_images():
    x = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    out = layers.Rescaling(1 / 255)(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, x / 255, rtol=1e-6)


@pytest.mark.parametrize(
    "axis, shape",
    [(-1, (20, 3)), (None, (20, 3)), (-1, (10, 4, 5, 3)), ((1, 2), (10, 4, 5, 3)), (1, (12, 3, 2))],
)
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_adapt_matches_keras(axis, shape, invert):
    keras = keras_module()
    rng = np.random.default_rng(2)
    data = (rng.standard_normal(shape) * rng.uniform(0.5, 3, shape[-1]) + 4).astype(np.float32)
    k_layer = keras.layers.Normalization(axis=axis, invert=invert)
    k_layer.adapt(data)
    d_layer = layers.Normalization(axis=axis, invert=invert)
    d_layer.adapt(data)
    assert_close(d_layer.get_weights(), k_layer.get_weights(), "adapted mean, variance, count",
                 rtol=1e-5, atol=1e-5)  # fmt: skip
    x = rng.standard_normal(shape).astype(np.float32)
    assert_close(d_layer(x).data, np.asarray(k_layer(x)), "normalised", rtol=1e-5, atol=1e-5)
    # and inside models, Keras' statistics copied by set_weights
    k_model = keras.Sequential([keras.Input(shape[1:]), k_layer])
    d_model = models.Sequential(
        [layers.Input(shape[1:]), layers.Normalization(axis=axis, invert=invert)]
    )
    assert_models_match(d_model, k_model, x, None, train=False, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mean, variance", [(3.0, 2.0), ([1.0, 2.0, 3.0], [4.0, 0.25, 1.0])])
def test_normalization_with_given_statistics_matches_keras(mean, variance):
    x = np.random.default_rng(3).standard_normal((6, 5, 3)).astype(np.float32) * 2
    assert_layer_matches_keras(
        lambda: layers.Normalization(mean=mean, variance=variance),
        lambda k: k.layers.Normalization(mean=mean, variance=variance),
        x,
        train=False,
    )


def test_normalization_adapts_from_batches_as_from_the_array():
    rng = np.random.default_rng(4)
    data = rng.standard_normal((100, 3)) * [1, 10, 100] + [5, -5, 50]
    whole = layers.Normalization()
    whole.adapt(data)
    batched = layers.Normalization()
    batched.adapt(data[i : i + 7] for i in range(0, 100, 7))  # a generator, uneven batches
    pairs = layers.Normalization()
    pairs.adapt([(data[:60], None), (data[60:], None)])  # (x, y) batches
    for layer in (whole, batched, pairs):
        np.testing.assert_allclose(layer.adapt_mean.data, data.mean(0), rtol=1e-6)
        np.testing.assert_allclose(layer.adapt_variance.data, data.var(0), rtol=1e-5)
    out = whole(data.astype(np.float32)).data
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1, atol=1e-4)


def test_normalization_errors():
    with pytest.raises(ValueError, match="both mean and variance or neither"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match="axis must be an int"):
        layers.Normalization(axis="last")
    with pytest.raises(ValueError, match="variance must be >= 0"):
        layers.Normalization(mean=0.0, variance=-1.0)
    with pytest.raises(ValueError, match=r"axis \(3,\) is out of range"):
        layers.Normalization(axis=3).build((None, 4))
    with pytest.raises(ValueError, match="known sizes"):
        layers.Normalization(axis=1).build((None, None, 3))
    layer = layers.Normalization()
    layer.adapt(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"adapt got data of shape \(4, 2\)"):
        layer.adapt(np.ones((4, 2)))
    with pytest.raises(ValueError, match="empty iterable"):
        layers.Normalization().adapt([])
    with pytest.raises(TypeError, match="must yield arrays"):
        layers.Normalization().adapt([1.0, 2.0])
    with pytest.raises(ValueError, match="built without mean and variance"):
        layers.Normalization(mean=0.0, variance=1.0).adapt(np.ones((2, 1)))


# ---------------------------------------------------------------- random layers: inference


@pytest.mark.parametrize("name", sorted(RANDOM_LAYERS))
def test_random_layers_are_the_identity_in_inference_as_in_keras(name, images):
    args, _ = RANDOM_LAYERS[name]
    assert_layer_matches_keras(
        lambda: getattr(layers, name)(*args), lambda k: getattr(k.layers, name)(*args),
        images, train=False, rtol=0, atol=0,
    )  # fmt: skip
    # Seeded: unseeded, RandomFlip leaves all 5 images as they are once in 1,024 draws.
    layer = getattr(layers, name)(*args, seed=3)
    assert layer(images).data is images  # a plain call is inference
    assert not np.array_equal(draw(layer, images), images)


def test_augmentation_runs_in_fit_and_not_in_predict():
    # a probe behind the flip sees what fit and predict feed on: flipped images in
    # training (about half of them, each exactly mirrored), the inputs in inference
    x = np.random.default_rng(5).random((64, 4, 4, 1)).astype(np.float32)
    seen = []

    class Probe(layers.Layer):
        def call(self, inputs, training=False):
            seen.append((training, inputs.data.copy()))
            return inputs

    model = models.Sequential([layers.Input((4, 4, 1)), layers.RandomFlip("horizontal", seed=0),
                               Probe(), layers.Flatten(), layers.Dense(1)])  # fmt: skip
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((64, 1)), batch_size=64, epochs=1, shuffle=False, verbose=0)
    training, data = seen[-1]
    assert training
    flipped = [not np.array_equal(a, b) for a, b in zip(data, x)]
    assert 16 < sum(flipped) < 48
    np.testing.assert_array_equal(data[np.logical_not(flipped)], x[np.logical_not(flipped)])
    np.testing.assert_array_equal(data[flipped], x[flipped][:, :, ::-1])
    model.predict(x, batch_size=64, verbose=0)
    assert seen[-1][0] is False
    np.testing.assert_array_equal(seen[-1][1], x)


# ---------------------------------------------------------------- random layers: Keras' transforms


def _modes():
    for fill_mode in ("reflect", "wrap", "constant", "nearest"):
        for interpolation in ("nearest", "bilinear"):
            yield dict(fill_mode=fill_mode, interpolation=interpolation, fill_value=0.3)


CASES = [
    *[(n, kw) for n in ("RandomRotation", "RandomTranslation", "RandomZoom") for kw in _modes()],
    *[("RandomFlip", dict(mode=m)) for m in ("horizontal", "vertical", "horizontal_and_vertical")],
    ("RandomContrast", dict(value_range=(0.2, 0.8))),
    ("RandomZoom", dict(height_factor=(-0.5, 0.2), width_factor=None)),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=lambda v: str(v))
def test_transforms_match_keras_given_keras_draws(name, kwargs, images):
    keras = keras_module()
    args, keys = RANDOM_LAYERS[name]
    if "height_factor" in kwargs:
        args = ()
    k_layer = getattr(keras.layers, name)(*args, seed=3, **kwargs)
    d_layer = getattr(layers, name)(*args, seed=3, **kwargs)
    for x in (images, images[:1], images[:, :5, :5]):  # a batch of 1, square images
        t = k_layer.get_random_transformation(x, training=True)
        expected = np.asarray(k_layer.transform_images(x, t, training=True))
        got = d_layer.transform_images(Tensor(x), {k: np.asarray(t[k]) for k in keys}).data
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert d_layer.get_config()["seed"] == k_layer.get_config()["seed"]


@pytest.mark.parametrize("name", sorted(RANDOM_LAYERS))
def test_configs_are_keras(name):
    keras = keras_module()
    args, _ = RANDOM_LAYERS[name]
    k_config = getattr(keras.layers, name)(*args, seed=7).get_config()
    d_config = getattr(layers, name)(*args, seed=7).get_config()
    for key, value in d_config.items():
        if key in ("name", "dtype", "trainable"):
            continue
        expected = k_config[key]
        assert (list(expected) if isinstance(expected, tuple) else expected) == value, key


# ---------------------------------------------------------------- random layers: draws and geometry


def test_draws_span_keras_ranges():
    x = np.zeros((4000, 3, 5, 1), np.float32)
    angle = layers.RandomRotation((-0.1, 0.25), seed=0).get_random_transformation(x.shape)["angle"]
    assert -36 <= angle.min() < -35 and 89 < angle.max() <= 90 and abs(angle.mean() - 27) < 2
    t = layers.RandomTranslation((0.2, 0.4), 0.5, seed=0).get_random_transformation(x.shape)
    dx, dy = t["translations"].T
    assert -2.5 <= dx.min() < -2.4 and 2.4 < dx.max() <= 2.5  # ±50% of 5 columns
    assert 0.6 <= dy.min() < 0.62 and 1.18 < dy.max() <= 1.2  # 20% to 40% of 3 rows
    z = layers.RandomZoom(0.3, seed=0).get_random_transformation(x.shape)
    np.testing.assert_array_equal(z["height_zoom"], z["width_zoom"])  # aspect kept
    assert 0.7 <= z["height_zoom"].min() < 0.71 and 1.29 < z["height_zoom"].max() <= 1.3
    c = layers.RandomContrast(0.2, seed=0).get_random_transformation(x.shape)["contrast_factor"]
    assert 1.0 <= c.min() < 1.01 and 1.19 < c.max() <= 1.2  # Keras: f means (0, f)
    flips = layers.RandomFlip(seed=0).get_random_transformation(x.shape)["flips"]
    assert abs(flips.mean() - 0.5) < 0.03


def test_quarter_turns_shifts_and_flips_are_exact():
    x = np.random.default_rng(6).random((3, 7, 7, 2)).astype(np.float32)
    turn = layers.RandomRotation((0.25, 0.25), interpolation="nearest")
    np.testing.assert_array_equal(draw(turn, x), np.rot90(x, 1, axes=(1, 2)))  # counter-clockwise
    smooth = layers.RandomRotation((-0.5, -0.5))  # half a turn, bilinear
    np.testing.assert_allclose(draw(smooth, x), x[:, ::-1, ::-1], atol=1e-5)
    shift = layers.RandomTranslation((2 / 7, 2 / 7), (-1 / 7, -1 / 7), fill_mode="constant",
                                      fill_value=-1.0)  # fmt: skip
    expected = np.full_like(x, -1.0)
    expected[:, 2:, :-1] = x[:, :-2, 1:]  # two rows down, one column left
    np.testing.assert_allclose(draw(shift, x), expected, atol=1e-6)
    wrap = layers.RandomTranslation((3 / 7, 3 / 7), (0.0, 0.0), fill_mode="wrap")
    np.testing.assert_allclose(draw(wrap, x), np.roll(x, 3, axis=1), atol=1e-6)
    same = layers.RandomZoom((0.0, 0.0))
    np.testing.assert_allclose(draw(same, x), x, atol=1e-6)
    vertical = layers.RandomFlip("vertical", seed=1)
    out = draw(vertical, x)
    for o, image in zip(out, x):
        assert np.array_equal(o, image) or np.array_equal(o, image[::-1])


def test_zoom_in_magnifies_the_centre_and_contrast_keeps_the_mean():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 3:6, 3:6] = 1.0  # a 3x3 square in the middle
    zoomed = draw(layers.RandomZoom((-0.5, -0.5), interpolation="nearest"), x)[0, :, :, 0]
    assert zoomed[4, 4] == 1 and zoomed.sum() > 3 * x.sum()  # twice as large each way
    rng = np.random.default_rng(7)
    images = rng.uniform(50, 200, (20, 6, 5, 3)).astype(np.float32)
    layer = layers.RandomContrast((0.3, 0.6), seed=2)
    factor = layer.get_random_transformation(images.shape)["contrast_factor"].reshape(-1, 1, 1, 1)
    out = layer.transform_images(Tensor(images), {"contrast_factor": factor}).data
    np.testing.assert_allclose(out.mean((1, 2)), images.mean((1, 2)), rtol=1e-5)
    centred = images - images.mean((1, 2), keepdims=True)
    np.testing.assert_allclose(out - out.mean((1, 2), keepdims=True), centred * factor, atol=1e-3)
    clipped = layers.RandomContrast((1.0, 1.0), value_range=(60, 190))(images, training=True).data
    assert clipped.min() >= 60 and clipped.max() <= 190


def test_one_image_and_odd_sizes():
    x = np.random.default_rng(8).random((3, 1, 4)).astype(np.float32)  # (H, W, C), one image
    for name, (args, _) in RANDOM_LAYERS.items():
        out = draw(getattr(layers, name)(*args, seed=0), x)
        assert out.shape == x.shape and np.isfinite(out).all(), name
    one = np.random.default_rng(9).random((1, 1, 1, 1)).astype(np.float32)
    for name, (args, _) in RANDOM_LAYERS.items():
        out = draw(getattr(layers, name)(*args, seed=0), one)
        assert out.shape == one.shape and np.isfinite(out).all(), name


# ---------------------------------------------------------------- seeding


@pytest.mark.parametrize("name", sorted(RANDOM_LAYERS))
def test_the_same_seed_gives_the_same_images(name, images):
    args, _ = RANDOM_LAYERS[name]
    a, b, c = (getattr(layers, name)(*args, seed=s) for s in (11, 11, 12))
    first_a, first_b = draw(a, images), draw(b, images)
    np.testing.assert_array_equal(first_a, first_b)
    second_a = draw(a, images)
    np.testing.assert_array_equal(second_a, draw(b, images))  # the generators advance alike
    assert not np.array_equal(first_a, second_a)
    assert not np.array_equal(first_a, draw(c, images))
    unseeded = getattr(layers, name)(*args)
    dlcore.set_random_seed(5)
    once = draw(unseeded, images)
    dlcore.set_random_seed(5)
    np.testing.assert_array_equal(draw(unseeded, images), once)


def test_each_image_gets_its_own_transform():
    x = np.repeat(np.random.default_rng(10).random((1, 6, 6, 1)).astype(np.float32), 8, axis=0)
    out = draw(layers.RandomRotation(0.5, seed=0), x)
    assert len({o.tobytes() for o in out}) == 8


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_affine_transform_gradient(fill_mode, interpolation):
    x = np.random.default_rng(11).standard_normal((2, 5, 4, 3))
    transform = np.array(
        [[0.8, -0.4, 1.3, 0.5, 0.9, -0.7, 0, 0], [1.2, 0.1, -2.1, 0, 1.1, 0.6, 0, 0]]
    )
    check_tensor_op(
        lambda t: F.affine_transform(t, transform, interpolation, fill_mode, fill_value=0.5), x
    )


def test_resize_flip_and_layer_gradients():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 5, 2))
    check_tensor_op(lambda t: F.resize(t, (7, 4)), x)
    check_tensor_op(lambda t: F.flip(t, (1, 2), where=[True, False]), x)
    images = rng.uniform(0.2, 0.8, (3, 4, 5, 2))
    contrast = layers.RandomContrast(0.5, value_range=(0, 1), dtype="float64")
    factor = {"contrast_factor": np.array([0.7, 1.2, 1.4]).reshape(-1, 1, 1, 1)}
    check_tensor_op(lambda t: contrast.transform_images(t, factor), images)
    norm = layers.Normalization(axis=(1, 3), dtype="float64")
    norm.adapt(rng.standard_normal((10, 3, 5, 2)) * 3)
    check_tensor_op(lambda t: norm(t), x)
    check_tensor_op(lambda t: layers.Rescaling([2.0, -1.0], 0.5, dtype="float64")(t), x)
    rotate = layers.RandomRotation(0.2, seed=0, dtype="float64")
    angle = {"angle": np.array([10.0, -50.0])}
    check_tensor_op(lambda t: rotate.transform_images(t, angle), x)


def test_resize_matches_jax():
    keras = keras_module()
    import jax

    x = np.random.default_rng(13).random((2, 3, 5, 2)).astype(np.float32)
    for size in ((7, 11), (6, 10), (3, 5)):
        expected = jax.image.resize(x, (2, *size, 2), "bilinear", antialias=False)
        np.testing.assert_allclose(F.resize(x, size).data, np.asarray(expected), atol=1e-6)
    del keras


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: layers.Rescaling("half"), ValueError, "Rescaling: scale must be"),
        (lambda: layers.Rescaling(1.0, offset=float("nan")), ValueError, "offset must be a finite"),
        (lambda: layers.RandomFlip("diagonal"), ValueError, "mode must be one of"),
        (lambda: layers.RandomFlip(seed=1.5), TypeError, "seed must be an int"),
        (lambda: layers.RandomFlip(data_format="channels_first"), ValueError, "channels-last"),
        (lambda: layers.RandomRotation(1.5), ValueError, r"factor must be within \[-1.0, 1.0\]"),
        (lambda: layers.RandomRotation((0.1, 0.2, 0.3)), ValueError, "a pair of numbers"),
        (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), ValueError, "fill_mode must be"),
        (lambda: layers.RandomRotation(0.1, interpolation="cubic"), ValueError, "interpolation"),
        (lambda: layers.RandomTranslation(0.1, 2.0), ValueError, "width_factor must be within"),
        (lambda: layers.RandomZoom(-1.0), ValueError, r"height_factor must be within \(-1.0"),
        (lambda: layers.RandomContrast(-0.2), ValueError, r"factor must be within \[0.0, 1.0\]"),
        (lambda: layers.RandomContrast(0.2, value_range=(1, 0)), ValueError, "low <= high"),
        (
            lambda: layers.RandomContrast(0.2, value_range=5),
            ValueError,
            "value_range must be a pair",
        ),
    ],
)
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_inputs():
    with pytest.raises(
        ValueError, match=r"random_flip\w*: RandomFlip takes images .* got shape \(None, 4\)"
    ):
        models.Sequential([layers.Input((4,)), layers.RandomFlip()])
    with pytest.raises(ValueError, match=r"transform must be \(8,\) or \(batch, 8\)"):
        F.affine_transform(np.zeros((2, 3, 3, 1)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="images must be \\(batch, height, width, channels\\)"):
        F.resize(np.zeros((3, 3)), (2, 2))
    with pytest.raises(TypeError, match="float32 or float64"):
        F.affine_transform(np.zeros((1, 3, 3, 1), np.int32), np.zeros(8))


# ---------------------------------------------------------------- saving, summary, export


def augmenting_model():
    norm = layers.Normalization()
    norm.adapt(np.random.default_rng(14).random((50, 6, 6, 1)) * 255)
    return models.Sequential([
        layers.Input((6, 6, 1)),
        layers.Rescaling(1 / 255),
        norm,
        layers.RandomFlip("horizontal", seed=1),
        layers.RandomRotation(0.1, fill_mode="constant", seed=2),
        layers.RandomTranslation(0.1, 0.2, seed=3),
        layers.RandomZoom(0.2, interpolation="nearest"),
        layers.RandomContrast((0.1, 0.3), value_range=(-5, 5)),
        layers.Flatten(),
        layers.Dense(3),
    ])  # fmt: skip


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_save_and_load(tmp_path, suffix):
    model = augmenting_model()
    x = np.random.default_rng(15).random((4, 6, 6, 1)).astype(np.float32) * 255
    model.save(tmp_path / f"m{suffix}")
    loaded = models.load_model(tmp_path / f"m{suffix}")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    for a, b in zip(model.layers, loaded.layers):
        assert a.get_config() == b.get_config()


def test_keras_reads_dlcore_files_and_dlcore_reads_keras(tmp_path):
    keras = keras_module()
    model = augmenting_model()
    x = np.random.default_rng(16).random((4, 6, 6, 1)).astype(np.float32) * 255
    model.save(tmp_path / "d.keras")
    k_model = keras.models.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(k_model.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)  # fmt: skip
    assert [type(l).__name__ for l in k_model.layers] == [type(l).__name__ for l in model.layers]
    k_model.save(tmp_path / "k.keras")
    back = models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_summary_lines():
    lines = []
    augmenting_model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(RandomRotation)" in text and "(None, 6, 6, 1)" in text
    assert "Non-trainable params: 3" in text  # the Normalization's mean, variance and count


def test_onnx_export(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    for invert in (False, True):
        model = augmenting_model()
        if invert:
            model.layers[1].invert = True
        x = np.random.default_rng(17).random((5, 6, 6, 1)).astype(np.float32) * 255
        path = model.export(tmp_path / "m.onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
