"""BatchNormalization and LayerNormalization against Keras 3 (predict, training steps
and the moving statistics from copied weights), finite-difference gradients, odd shapes,
bad arguments, files and the summary line."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, layers, models
from gradcheck import check_layer
from keras_parity import (
    OPTIMIZERS,
    assert_close,
    assert_layer_matches_keras,
    assert_round_trip,
    copy_weights,
    keras_module,
)

RTOL, ATOL = 2e-5, 2e-6


def bn_pair(keras, x_shape, kwargs, before=None):
    """The same BatchNormalization model in both libraries, Keras' random weights copied
    into dlcore's (moving variances positive)."""
    k_layers = ([before[0](keras)] if before else []) + [keras.layers.BatchNormalization(**kwargs)]
    k_model = keras.Sequential([keras.Input(x_shape[1:]), *k_layers])
    d_model = models.Sequential(([before[1]()] if before else []) +
                                [layers.BatchNormalization(**kwargs)])  # fmt: skip
    d_model.build((None, *x_shape[1:]))
    rng = np.random.default_rng(3)
    weights = []
    for w, v in zip(k_model.weights, k_model.get_weights()):
        r = rng.standard_normal(v.shape).astype(np.float32)
        weights.append(np.abs(r) + 0.5 if "variance" in w.path else r)
    k_model.set_weights(weights)
    copy_weights(d_model, k_model)
    return d_model, k_model


BN_CASES = [
    dict(),
    dict(momentum=0.9, epsilon=1e-2),
    dict(center=False),
    dict(scale=False, center=False),
    dict(axis=1),
]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("kwargs", BN_CASES, ids=lambda k: ",".join(map(str, k.items())) or "-")
def test_batch_norm_training_steps_match_keras(optimizer, kwargs):
    keras = keras_module()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 5, 3, 4)) * 2 + 1).astype(np.float32)
    y = rng.standard_normal(x.shape).astype(np.float32)
    # no bias before the layer: batch statistics cancel it, leaving Adam a gradient of
    # rounding noise to amplify
    d_model, k_model = bn_pair(keras, x.shape, kwargs, before=(
        lambda k: k.layers.Dense(4, use_bias=False), lambda: layers.Dense(4, use_bias=False)))  # fmt: skip
    assert_close(d_model.predict(x), k_model.predict(x, verbose=0), "predict (inference)")
    make_k, make_d = OPTIMIZERS[optimizer]
    k_model.compile(optimizer=make_k(keras), loss="mse")
    d_model.compile(optimizer=make_d(), loss="mse")
    for step in range(3):
        lk, ld = k_model.train_on_batch(x, y), d_model.train_on_batch(x, y)
        assert_close(ld, lk, f"loss at step {step}", RTOL * 10, ATOL * 10)
    # gamma, beta, then the moving statistics, moved three times
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights and moving statistics",
                 RTOL * 10, ATOL * 10)  # fmt: skip
    assert_close(d_model.predict(x), k_model.predict(x, verbose=0), "predict after training",
                 RTOL * 10, ATOL * 10)  # fmt: skip


def test_batch_norm_fit_matches_keras():
    keras = keras_module()
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((24, 6)) * 3 - 2).astype(np.float32)
    y = rng.standard_normal((24, 2)).astype(np.float32)
    k_model = keras.Sequential([keras.Input((6,)), keras.layers.BatchNormalization(),
                                keras.layers.Dense(2)])  # fmt: skip
    d_model = models.Sequential([layers.BatchNormalization(input_shape=(6,)), layers.Dense(2)])
    copy_weights(d_model, k_model)
    k_model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    d_model.compile(optimizer=dlcore.optimizers.Adam(0.01), loss="mse")
    kw = dict(epochs=2, batch_size=8, verbose=0, shuffle=False, validation_split=0.25)
    hk, hd = k_model.fit(x, y, **kw).history, d_model.fit(x, y, **kw).history
    assert_close({k: hd[k] for k in hk}, hk, "history (validation in inference mode)", 2e-4, 2e-5)
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights after fit", 2e-4, 2e-5)
    moving_mean = d_model.layers[0].moving_mean.numpy()
    assert np.abs(moving_mean).max() > 0.01  # the statistics did move
    assert_close(d_model.predict(x), k_model.predict(x, verbose=0), "predict after fit",
                 2e-4, 2e-5)  # fmt: skip


def test_frozen_batch_norm_runs_in_inference_mode_as_keras():
    keras = keras_module()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.standard_normal((8, 5)).astype(np.float32)
    d_model, k_model = bn_pair(keras, x.shape, {}, before=(
        lambda k: k.layers.Dense(5), lambda: layers.Dense(5)))  # fmt: skip
    k_model.layers[-1].trainable = False
    d_model.layers[-1].trainable = False
    frozen = [w.copy() for w in d_model.layers[-1].get_weights()]
    make_k, make_d = OPTIMIZERS["sgd"]
    k_model.compile(optimizer=make_k(keras), loss="mse")
    d_model.compile(optimizer=make_d(), loss="mse")
    for step in range(2):
        assert_close(d_model.train_on_batch(x, y), k_model.train_on_batch(x, y), f"loss {step}",
                     RTOL * 10, ATOL * 10)  # fmt: skip
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights", RTOL * 10, ATOL * 10)
    for before, after in zip(frozen, d_model.layers[-1].get_weights()):
        np.testing.assert_array_equal(before, after)  # neither gamma nor the statistics move
    assert d_model.layers[-1].trainable_weights == []
    assert len(d_model.layers[-1].non_trainable_weights) == 4


@pytest.mark.filterwarnings("ignore:.*does not support masking")  # Keras' Flatten drops it
def test_masked_batch_norm_statistics_match_keras():
    """After Embedding(mask_zero=True), the training statistics skip padded steps."""
    keras = keras_module()
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 9, (6, 5)).astype(np.int32)
    ids[:, 3:] = 0
    ids[0, 1:] = 0
    y = rng.standard_normal((6, 2)).astype(np.float32)

    def stack(lib, L):
        return [L.Embedding(9, 3, mask_zero=True), L.BatchNormalization(momentum=0.5),
                L.Flatten(), L.Dense(2)]  # fmt: skip

    k_model = keras.Sequential([keras.Input((5,), dtype="int32"), *stack(keras, keras.layers)])
    d_model = models.Sequential(stack(dlcore, layers))
    d_model.build((None, 5))
    copy_weights(d_model, k_model)
    make_k, make_d = OPTIMIZERS["adam"]
    k_model.compile(optimizer=make_k(keras), loss="mse")
    d_model.compile(optimizer=make_d(), loss="mse")
    for step in range(2):
        assert_close(d_model.train_on_batch(ids, y), k_model.train_on_batch(ids, y),
                     f"loss {step}", RTOL * 10, ATOL * 10)  # fmt: skip
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights", RTOL * 10, ATOL * 10)


def test_custom_loop_moves_the_statistics_by_keras_rule(rng):
    bn = layers.BatchNormalization(momentum=0.8)
    x = (rng.standard_normal((16, 3)) * [1, 2, 3] + [0, 5, -5]).astype(np.float32)
    bn(x, training=True)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.2 * x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.8 + 0.2 * x.var(0), rtol=1e-5)
    before = bn.get_weights()
    bn(x)  # inference: nothing moves, and the moving statistics normalise
    for a, b in zip(before, bn.get_weights()):
        np.testing.assert_array_equal(a, b)
    expected = (x - before[2]) / np.sqrt(before[3] + 1e-3)
    np.testing.assert_allclose(bn(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    with dlcore.no_grad():
        bn(x, training=True)  # a training call moves them under no_grad too
    assert not np.array_equal(bn.moving_mean.numpy(), before[2])


@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False}, {"axis": 1}])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 2, 5), (1, 1, 1, 3), (7, 1)])
def test_batch_norm_gradients(rng, kwargs, training, shape):
    if kwargs.get("axis") == 1 and len(shape) == 2:
        kwargs = {}
    bn = layers.BatchNormalization(dtype="float64", **kwargs)
    bn.build((None, *shape[1:]))
    bn.set_weights([rng.standard_normal(w.shape) if "variance" not in w.name
                    else rng.random(w.shape) + 0.5 for w in bn.weights])  # fmt: skip
    check_layer(bn, rng.standard_normal(shape) * 2 + 1, training=training)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(axis=[1, 2]), dict(axis=1, center=False), dict(scale=False, epsilon=0.1)],
)
def test_layer_norm_matches_keras(optimizer, kwargs):
    x = (np.random.default_rng(5).standard_normal((5, 4, 3, 6)) * 3 + 1).astype(np.float32)
    d_model, k_model = assert_layer_matches_keras(
        lambda: layers.LayerNormalization(**kwargs),
        lambda k: k.layers.LayerNormalization(**kwargs),
        x,
        optimizer=optimizer,
    )
    assert_close(d_model.predict(x), k_model.predict(x, verbose=0), "predict after training",
                 RTOL * 10, ATOL * 10)  # fmt: skip


@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2]}, {"axis": 1, "center": False},
                                    {"scale": False}])  # fmt: skip
@pytest.mark.parametrize("shape", [(3, 2, 7), (1, 1, 3), (2, 5, 1)])
def test_layer_norm_gradients(rng, kwargs, shape):
    ln = layers.LayerNormalization(dtype="float64", **kwargs)
    ln.build((None, *shape[1:]))
    ln.set_weights([rng.standard_normal(w.shape) for w in ln.weights])
    check_layer(ln, rng.standard_normal(shape) * 2 + 1)


def test_float64_layers_run_in_float64(rng):
    x = rng.standard_normal((4, 6))
    for layer in (layers.BatchNormalization(dtype="float64"),
                  layers.LayerNormalization(dtype="float64")):  # fmt: skip
        assert layer(x, training=True).dtype == np.float64
        assert all(w.dtype == np.float64 for w in layer.weights)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"momentum must be a finite number in \[0, 1\], got 2"):
        layers.BatchNormalization(momentum=2)
    with pytest.raises(ValueError, match=r"epsilon must be a finite number >= 0, got -1"):
        layers.LayerNormalization(epsilon=-1)
    with pytest.raises(TypeError, match=r"axis must be an int, got 'x'"):
        layers.BatchNormalization(axis="x")
    with pytest.raises(TypeError, match=r"axis must be an int or a list of ints, got 1.5"):
        layers.LayerNormalization(axis=1.5)
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"axis 3 is not a feature axis .* shape \(2, 3, 4\)"):
        layers.BatchNormalization(axis=3)(x)
    with pytest.raises(ValueError, match=r"axis 0 is not a feature axis"):
        layers.LayerNormalization(axis=0)(x)
    with pytest.raises(ValueError, match=r"axis \[1, -2\] names an axis twice"):
        layers.LayerNormalization(axis=[1, -2])(x)
    bn = layers.BatchNormalization()
    bn(x)
    with pytest.raises(
        ValueError, match=r"expected inputs of shape \(None, 3, 4\).*got \(2, 3, 5\)"
    ):
        bn(np.zeros((2, 3, 5), np.float32))
    with pytest.raises(ValueError, match=r"got \(2, 12\)"):
        bn(np.zeros((2, 12), np.float32))
    with pytest.raises(ValueError, match="inference mode needs moving_mean"):
        dlcore.functional.batch_norm(Tensor(x))
    with pytest.raises(ValueError, match=r"the mask has shape \(2, 4\); expected .* \(2, 3\)"):
        dlcore.functional.batch_norm(Tensor(x), training=True, mask=np.ones((2, 4), bool))


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_save_load_round_trip_and_summary(tmp_path, rng, suffix):
    model = models.Sequential([
        layers.Dense(4, input_shape=(3, 5)),
        layers.BatchNormalization(momentum=0.9, center=False),
        layers.LayerNormalization(axis=[1, 2], epsilon=0.01),
    ])  # fmt: skip
    x = rng.standard_normal((6, 3, 5)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, rng.standard_normal((6, 3, 4)), epochs=1, verbose=0)
    back, lines = assert_round_trip(model, x, tmp_path / f"m{suffix}")
    for a, b in zip(back.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any("(BatchNormalization)" in l and "(None, 3, 4)" in l and l.endswith(" 12")
               for l in lines)  # fmt: skip
    assert any("(LayerNormalization)" in l and "(None, 3, 4)" in l and l.endswith(" 24")
               for l in lines)  # fmt: skip
    assert "Non-trainable params: 8" in lines


def test_keras_saved_batch_norm_loads_in_dlcore(tmp_path):
    keras = keras_module()
    pytest.importorskip("h5py")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((8, 4)).astype(np.float32)
    k_model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(),
                                keras.layers.LayerNormalization()])  # fmt: skip
    k_model.compile("sgd", "mse")
    k_model.fit(x, x, epochs=2, verbose=0)
    k_model.save(tmp_path / "k.keras")
    d_model = models.load_model(tmp_path / "k.keras")
    assert_close(d_model.predict(x), k_model.predict(x, verbose=0), "Keras BN file in dlcore")
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights")
