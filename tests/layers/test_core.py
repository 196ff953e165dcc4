"""Embedding against Keras 3 (predict and training steps from copied weights), its mask,
its integer inputs, finite-difference gradients of the table, bad arguments and inputs,
files and the summary line."""

import warnings

import numpy as np
import pytest

import dlcore
from dlcore import layers, models
from gradcheck import check_layer
from keras_parity import assert_close, assert_layer_matches_keras, assert_models_match, keras_module


def ids(shape, vocab=11, seed=0, zeros=True):
    """Token ids with repeats (the backward adds rows) and, with ``zeros``, padding."""
    out = np.random.default_rng(seed).integers(1, vocab, shape).astype(np.int32)
    if zeros:
        out[..., -2:] = 0
    return out


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("shape", [(6, 7), (1, 1), (3, 2, 4)])
def test_embedding_matches_keras(optimizer, shape):
    x = ids(shape)
    assert_layer_matches_keras(
        lambda: layers.Embedding(11, 5), lambda k: k.layers.Embedding(11, 5), x,
        optimizer=optimizer,
    )  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*does not support masking")  # Keras' Flatten drops it
def test_masked_embedding_model_matches_keras():
    keras = keras_module()
    x, y = ids((8, 6)), np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)

    def stack(L):
        return [L.Embedding(11, 4, mask_zero=True), L.Dense(4, activation="gelu"),
                L.Flatten(), L.Dense(3)]  # fmt: skip

    k_model = keras.Sequential([keras.Input((6,), dtype="int32"), *stack(keras.layers)])
    d_model = models.Sequential(stack(layers))
    d_model.build((None, 6))
    assert_models_match(d_model, k_model, x, y, optimizer="adam")


def test_mask_zero_passes_the_mask_on():
    seen = {}

    class Consumer(layers.Layer):
        def call(self, inputs, mask=None):
            seen["mask"] = mask
            return inputs

    x = ids((3, 5))
    emb = layers.Embedding(11, 2, mask_zero=True)
    np.testing.assert_array_equal(emb.compute_mask(x), x != 0)
    out = layers.Dense(2)(emb(x))  # a layer that supports masking passes it on
    np.testing.assert_array_equal(layers.get_mask(out), x != 0)
    Consumer()(out)
    np.testing.assert_array_equal(seen["mask"], x != 0)
    inp = dlcore.Input((5,), dtype="int32")  # and inside a functional model
    model = models.Model(inp, Consumer()(layers.Embedding(11, 2, mask_zero=True)(inp)))
    seen.clear()
    model.predict(x)
    np.testing.assert_array_equal(seen["mask"], x != 0)
    assert layers.Embedding(11, 2).compute_mask(x) is None
    assert layers.get_mask(layers.Embedding(11, 2)(x)) is None


def test_integer_inputs_are_not_cast_and_whole_floats_are():
    emb = layers.Embedding(11, 3)
    x = ids((2, 4), zeros=False)
    emb(x)
    table = emb.embeddings.numpy()
    for given in (x, x.astype(np.int64), x.astype(np.uint8), x.astype(np.float32),
                  x.astype(np.float64)):  # fmt: skip
        out = emb(given)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out.numpy(), table[x])
    with pytest.raises(
        ValueError, match=r"indices must be whole numbers; got 1.5 at position \(0, 1\)"
    ):
        emb(np.array([[1.0, 1.5]], np.float32))
    with pytest.raises(ValueError, match=r"nan at position \(0, 0\)"):
        emb(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"holds 11 at position \(1, 0\).*\[0, 11\)"):
        emb(np.array([[1, 2], [11, 0]]))
    with pytest.raises(ValueError, match=r"holds -1 at position \(0, 0\)"):
        emb(np.array([[-1]]))
    with pytest.raises(TypeError, match="indices must be integers, got an array of dtype bool"):
        emb(np.array([[True]]))


@pytest.mark.parametrize("shape", [(4, 6), (1, 1), (2, 3, 5)])
def test_embedding_table_gradient(rng, shape):
    emb = layers.Embedding(7, 3, dtype="float64")
    emb.build((None, *shape[1:]))
    emb.set_weights([rng.standard_normal((7, 3))])
    check_layer(emb, rng.integers(0, 7, shape), wrt_input=False)


def test_repeated_ids_add_their_gradients():
    emb = layers.Embedding(4, 2)
    x = np.array([[1, 1, 3, 1]])
    emb(x)
    out = emb(x)
    out.backward(np.ones(out.shape, np.float32))
    np.testing.assert_array_equal(emb.embeddings.grad, [[0, 0], [3, 3], [0, 0], [1, 1]])


def test_initial_weights_and_input_length():
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    emb = layers.Embedding(6, 2, weights=[table])
    np.testing.assert_array_equal(emb(np.array([[5, 0]])).numpy(), table[[[5, 0]]])
    with pytest.warns(DeprecationWarning, match="input_length is deprecated"):
        model = models.Sequential([layers.Embedding(6, 2, input_length=4)])
    assert model.built and model.output_shape == (None, 4, 2)
    with pytest.raises(ValueError, match=r"weight embedding.*/embeddings has shape \(6, 2\)"):
        layers.Embedding(6, 2, weights=np.zeros((6, 3)))(np.array([[1]]))


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_dim must be a positive int, got 0"):
        layers.Embedding(0, 3)
    with pytest.raises(ValueError, match=r"output_dim must be a positive int, got 2\.5"):
        layers.Embedding(3, 2.5)
    with pytest.raises(ValueError, match="unknown initializer 'nope'"):
        layers.Embedding(3, 2, embeddings_initializer="nope")


@pytest.mark.parametrize("suffix", [".dlc", ".keras"])
def test_save_load_round_trip_and_summary(tmp_path, suffix):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = models.Sequential([layers.Embedding(11, 4, mask_zero=True, input_length=6),
                                   layers.Flatten(), layers.Dense(2)])  # fmt: skip
    x = ids((5, 6))
    model.compile("adam", "mse")
    model.fit(x, np.ones((5, 2)), epochs=1, verbose=0)
    model.save(tmp_path / f"m{suffix}")
    back = models.load_model(tmp_path / f"m{suffix}")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    assert back.layers[0].mask_zero
    lines = []
    model.summary(print_fn=lines.append)
    assert any("(Embedding)" in l and "(None, 6, 4)" in l and l.endswith(" 44") for l in lines)


def test_dlcore_embedding_file_loads_in_keras(tmp_path):
    keras = keras_module()
    pytest.importorskip("h5py")
    inp = dlcore.Input((6,), dtype="int32")
    model = models.Model(inp, layers.Dense(2)(layers.Embedding(11, 3, mask_zero=True)(inp)))
    model.save(tmp_path / "m.keras")
    k_model = keras.models.load_model(tmp_path / "m.keras")
    x = ids((4, 6))
    assert_close(model.predict(x), k_model.predict(x, verbose=0), "predict in Keras")
