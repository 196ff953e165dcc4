"""GaussianNoise and SpatialDropout2D: the identity in inference (against Keras 3), their
noise in training (its statistics, its shape, seeded reproducibility), gradients, bad
arguments, files and the summary line."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, layers, models
from gradcheck import check_layer
from keras_parity import (
    assert_layer_matches_keras,
    assert_round_trip,
)


def x_img(shape=(4, 5, 6, 8), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "name, kwargs", [("GaussianNoise", dict(stddev=0.5)), ("SpatialDropout2D", dict(rate=0.4))]
)
def test_identity_in_inference_as_keras(name, kwargs):
    # predict, then training steps of the Dense before: in inference mode both are no-ops
    assert_layer_matches_keras(
        lambda: [layers.Dense(3), getattr(layers, name)(**kwargs)],
        lambda k: [k.layers.Dense(3), getattr(k.layers, name)(**kwargs)],
        x_img(),
        train=False,
    )


def test_gaussian_noise_in_training():
    x = np.full((400, 250), 3.0, np.float32)
    noisy = layers.GaussianNoise(0.2)(x, training=True).numpy()
    noise = noisy - x
    assert noisy.dtype == np.float32
    assert abs(noise.mean()) < 0.002 and abs(noise.std() - 0.2) < 0.002
    a, b = layers.GaussianNoise(0.2, seed=5), layers.GaussianNoise(0.2, seed=5)
    first = a(x, training=True).numpy()
    np.testing.assert_array_equal(b(x, training=True).numpy(), first)  # same seed, same noise
    assert not np.array_equal(a(x, training=True).numpy(), first)  # new noise every call
    t = Tensor(x[:3, :4], requires_grad=True)
    layers.GaussianNoise(1.0)(t, training=True).sum().backward()
    np.testing.assert_array_equal(t.grad, np.ones((3, 4)))  # noise is added, not learned
    np.testing.assert_array_equal(layers.GaussianNoise(0.0)(x, training=True).numpy(), x)


def test_spatial_dropout_drops_whole_feature_maps():
    x = np.ones((50, 3, 4, 40), np.float32)
    y = layers.SpatialDropout2D(0.25)(x, training=True).numpy()
    per_map = y.reshape(50, 12, 40)
    assert np.all(per_map == per_map[:, :1])  # the same for every pixel of a map
    assert set(np.unique(per_map)) == {0.0, np.float32(1 / 0.75)}
    assert abs((per_map[:, 0] == 0).mean() - 0.25) < 0.03
    a, b = layers.SpatialDropout2D(0.5, seed=3), layers.SpatialDropout2D(0.5, seed=3)
    np.testing.assert_array_equal(a(x, training=True).numpy(), b(x, training=True).numpy())
    t = Tensor(x[:2], requires_grad=True)
    out = layers.SpatialDropout2D(0.5, seed=1)(t, training=True)
    out.backward(np.ones(out.shape, np.float32))
    np.testing.assert_array_equal(t.grad, out.numpy())  # the gradient takes the same mask


@pytest.mark.parametrize(
    "layer", [layers.GaussianNoise(0.3, seed=2), layers.SpatialDropout2D(0.3, seed=2)]
)
def test_gradients_in_training(rng, layer):
    layer.dtype = np.dtype("float64")

    class Reseeded:  # the same noise for every evaluation of the finite differences
        trainable_weights = ()

        def __call__(self, x, training=False):
            layer._rng = np.random.default_rng(2)
            return layer(x, training=training)

    check_layer(Reseeded(), rng.standard_normal((2, 3, 2, 5)), training=True)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"GaussianNoise: stddev must be in \[0, 1\], got -0.1"):
        layers.GaussianNoise(-0.1)
    with pytest.raises(ValueError, match=r"stddev must be in \[0, 1\], got 2"):
        layers.GaussianNoise(2)  # Keras' bound
    with pytest.raises(TypeError, match="stddev must be a number in"):
        layers.GaussianNoise("0.1")
    with pytest.raises(TypeError, match="GaussianNoise: seed must be an int or None"):
        layers.GaussianNoise(0.1, seed=1.5)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.0"):
        layers.SpatialDropout2D(1.0)
    with pytest.raises(ValueError, match="dlcore is channels-last"):
        layers.SpatialDropout2D(0.1, data_format="channels_first")
    with pytest.raises(ValueError, match=r"SpatialDropout2D needs inputs \(batch, rows, cols"):
        layers.SpatialDropout2D(0.1)(np.zeros((2, 3, 4), np.float32))


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_save_load_round_trip_and_summary(tmp_path, suffix):
    model = models.Sequential([
        layers.Dense(4, input_shape=(3, 5, 2)),
        layers.GaussianNoise(0.1, seed=4),
        layers.SpatialDropout2D(0.2),
    ])  # fmt: skip
    x = x_img((2, 3, 5, 2))
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((2, 3, 5, 4)), epochs=1, verbose=0)
    back, lines = assert_round_trip(model, x, tmp_path / f"m{suffix}")
    assert back.layers[1].stddev == 0.1 and back.layers[1].seed == 4
    assert back.layers[2].rate == 0.2
    for name in ("GaussianNoise", "SpatialDropout2D"):
        assert any(f"({name})" in l and "(None, 3, 5, 4)" in l and l.endswith(" 0") for l in lines)
    assert dlcore.layers.SpatialDropout2D(0.2).get_config()["data_format"] == "channels_last"
