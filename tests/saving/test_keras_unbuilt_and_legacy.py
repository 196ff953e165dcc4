"""Keras files at the edges of the format: an unbuilt model's ``.keras`` archive (dlcore's
and Keras') loads as an unbuilt model, as in Keras, and saving one warns; a file in
Keras' legacy HDF5 format (``model.save("m.h5")``) is named as such, with the way to
re-save it, by ``load_model`` and by ``load_weights``."""

import warnings

import numpy as np
import pytest

from dlcore import layers, models
from dlcore.saving import KerasFormatError
from keras_parity import keras_module

h5py = pytest.importorskip("h5py")


def unbuilt():
    return models.Sequential([layers.Dense(3)], name="unbuilt")


def assert_unbuilt_then_trains(model):
    """An unbuilt model as Keras loads it: no weights, built by its first data."""
    assert not model.built and model.weights == []
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    assert model.predict(x).shape == (6, 3)
    assert model.built and len(model.weights) == 2


def test_an_unbuilt_model_saves_with_a_warning_and_loads_unbuilt(tmp_path):
    model = unbuilt()
    model.compile(optimizer="adam", loss="mse")
    with pytest.warns(UserWarning, match=r"unbuilt is not built yet.*no weights"):
        model.save(tmp_path / "m.keras")
    loaded = models.load_model(tmp_path / "m.keras")
    assert loaded.optimizer is not None
    assert_unbuilt_then_trains(loaded)
    loaded.fit(np.ones((4, 4), np.float32), np.zeros((4, 3), np.float32), verbose=0)


def test_an_unbuilt_keras_model_loads_unbuilt(tmp_path):
    keras = keras_module()
    for compiled in (False, True):
        k_model = keras.Sequential([keras.layers.Dense(3)])
        if compiled:  # its file holds the optimizer's step count and learning rate
            k_model.compile(optimizer="adam", loss="mse")
        with warnings.catch_warnings(record=True) as caught:  # with Keras' own deprecations
            warnings.simplefilter("always")
            k_model.save(tmp_path / "k.keras")
        assert any("not yet been built" in str(w.message) for w in caught)
        assert not keras.models.load_model(tmp_path / "k.keras").built
        assert_unbuilt_then_trains(models.load_model(tmp_path / "k.keras"))


def test_weights_are_not_loaded_into_an_unbuilt_model(tmp_path):
    built = models.Sequential([layers.Dense(3, input_shape=(4,))])
    built.save(tmp_path / "built.keras")
    built.save_weights(tmp_path / "built.weights.h5")
    for name in ("built.keras", "built.weights.h5"):
        with pytest.raises(KerasFormatError, match=r"build the model.*holds weights.*dense"):
            unbuilt().load_weights(tmp_path / name)
    with pytest.warns(UserWarning):
        unbuilt().save(tmp_path / "empty.keras")
    model = unbuilt()
    model.load_weights(tmp_path / "empty.keras")  # nothing to load, as the file says
    assert not model.built


@pytest.fixture
def legacy_model_file(tmp_path):
    keras = keras_module()
    k_model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    k_model.save(tmp_path / "legacy.h5")
    with h5py.File(tmp_path / "legacy.h5", "r") as f:  # the layout the check relies on
        assert "model_config" in f.attrs and "layer_names" in f["model_weights"].attrs
    return tmp_path / "legacy.h5"


def test_a_legacy_hdf5_model_is_named_with_the_way_to_resave_it(legacy_model_file):
    message = r"whole model in Keras' legacy HDF5 format.*does not read.*save it again as a \.keras"
    with pytest.raises(KerasFormatError, match=message):
        models.load_model(legacy_model_file)
    model = models.Sequential([layers.Input((8,)), layers.Dense(4)])
    before = model.get_weights()
    with pytest.raises(KerasFormatError, match=message):
        model.load_weights(legacy_model_file)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_legacy_and_keras3_weights_files_given_to_load_model(tmp_path):
    # the legacy weights layout, written by hand: layer_names at the root
    with h5py.File(tmp_path / "old.h5", "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense").attrs["weight_names"] = [b"dense/kernel:0"]
        f["dense/dense/kernel:0"] = np.zeros((8, 4), np.float32)
    resave = r"legacy HDF5 layout.*save_weights\('m\.weights\.h5'\)"
    with pytest.raises(KerasFormatError, match=resave):
        models.load_model(tmp_path / "old.h5")
    models.Sequential([layers.Dense(4, input_shape=(8,))]).save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match=r"HDF5 file \(Keras weights\).*load_weights") as info:
        models.load_model(tmp_path / "w.weights.h5")
    assert not isinstance(info.value, KerasFormatError)
