"""The user's own classes and functions in saved models, as Keras 3 has them: a custom
layer, loss, metric, activation, initializer, regularizer and constraint are saved by name
(no registering needed) and found again through ``custom_objects={name: object}`` given to
``load_model`` / ``model_from_json`` / ``Model.from_config``, a ``custom_object_scope`` or
the global ``get_custom_objects()`` dict; without them, the error names what is missing."""

import json
import threading
import zipfile

import numpy as np
import pytest

import dlcore
from dlcore import (
    activations,
    constraints,
    initializers,
    layers,
    losses,
    models,
    regularizers,
    saving,
)
from dlcore.saving import CheckpointError, KerasFormatError
from keras_parity import assert_close, keras_module

pytest.importorskip("h5py")


class MyLayer(layers.Layer):
    """A Dense without bias whose output is scaled by ``factor``."""

    def __init__(self, units=3, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.factor = units, factor

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), "glorot_uniform")

    def call(self, inputs):
        return (inputs @ self.kernel) * self.factor

    def get_config(self):
        return {**super().get_config(), "units": self.units, "factor": self.factor}


def scaled_mse(y_true, y_pred):
    return ((y_true - y_pred) ** 2).mean(axis=-1) * 0.5


def mean_error(y_true, y_pred):
    return np.mean(np.asarray(y_pred) - np.asarray(y_true), axis=-1)


def half_relu(x):
    return x.relu() * 0.5


class Shrink(regularizers.Regularizer):
    def __init__(self, rate=0.01):
        self.rate = rate

    def __call__(self, weight):
        return (weight * weight).sum() * self.rate

    def get_config(self):
        return {"rate": self.rate}


class Constant(initializers.Initializer):
    def __init__(self, value=0.1):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=dtype or "float32")

    def get_config(self):
        return {"value": self.value}


class Clip(constraints.Constraint):
    def __init__(self, limit=1.0):
        self.limit = limit

    def __call__(self, w):
        return np.clip(w, -self.limit, self.limit)

    def get_config(self):
        return {"limit": self.limit}


ALL = {
    "MyLayer": MyLayer,
    "scaled_mse": scaled_mse,
    "mean_error": mean_error,
    "half_relu": half_relu,
    "Shrink": Shrink,
    "Constant": Constant,
    "Clip": Clip,
}


def data(rng):
    x = rng.standard_normal((16, 4)).astype(np.float32)
    return x, rng.standard_normal((16, 2)).astype(np.float32)


def custom_model():
    model = models.Sequential([
        layers.Input((4,)),
        MyLayer(5, factor=0.5),
        layers.Dense(2, activation=half_relu, kernel_regularizer=Shrink(0.02),
                     bias_initializer=Constant(0.3), kernel_constraint=Clip(0.8)),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss=scaled_mse, metrics=[mean_error, "mae"])
    return model


@pytest.fixture(params=[".keras", ".dlc"])
def saved(request, tmp_path, rng):
    x, y = data(rng)
    model = custom_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / f"custom{request.param}"
    model.save(path)
    return model, path, x, y


def next_step_agrees(loaded, model, x, y):
    """Same predictions and evaluation, and one more training step gives the same
    weights (the optimizer's state came back too)."""
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), 1e-6)
    assert_close(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), "evaluate")
    loaded.train_on_batch(x, y)
    model.train_on_batch(x, y)
    assert_close(loaded.get_weights(), model.get_weights(), "weights after a step", 1e-5, 1e-6)


def test_custom_objects_load_the_model_and_its_compile_settings(saved):
    model, path, x, y = saved
    loaded = models.load_model(path, custom_objects=ALL)
    assert isinstance(loaded.layers[0], MyLayer) and loaded.layers[0].factor == 0.5
    dense = loaded.layers[1]
    assert dense.activation is half_relu
    assert isinstance(dense.kernel_regularizer, Shrink) and dense.kernel_regularizer.rate == 0.02
    assert isinstance(dense.bias_initializer, Constant) and dense.bias_initializer.value == 0.3
    assert isinstance(dense.kernel_constraint, Clip) and dense.kernel_constraint.limit == 0.8
    assert loaded.loss is scaled_mse
    next_step_agrees(loaded, model, x, y)
    assert loaded.metrics_names == model.metrics_names == ["loss", "mean_error", "mae"]


def test_a_custom_object_scope_loads_it_too(saved):
    model, path, x, y = saved
    with saving.custom_object_scope(ALL):
        loaded = models.load_model(path)
    next_step_agrees(loaded, model, x, y)  # the compiled loss resolves after the scope, too
    with pytest.raises(ValueError, match="MyLayer"):  # the scope has ended
        models.load_model(path)


def test_the_error_without_them_names_what_is_missing(saved):
    _, path, _, _ = saved
    error = KerasFormatError if path.suffix == ".keras" else CheckpointError
    with pytest.raises(error, match=r"MyLayer.*custom_objects=\{'MyLayer'"):
        models.load_model(path)
    layer_only = {k: v for k, v in ALL.items() if k != "half_relu"}
    with pytest.raises(error, match=r"unknown activation 'half_relu'.*custom_objects"):
        models.load_model(path, custom_objects=layer_only)
    no_loss = {k: v for k, v in ALL.items() if k != "scaled_mse"}
    with pytest.raises(error, match=r"unknown loss 'scaled_mse'"):
        models.load_model(path, custom_objects=no_loss)
    uncompiled = models.load_model(path, custom_objects=no_loss, compile=False)
    assert uncompiled.optimizer is None and isinstance(uncompiled.layers[0], MyLayer)


def test_the_key_is_the_name_in_the_file(saved):
    _, path, _, _ = saved
    renamed = {**ALL, "OtherName": ALL["MyLayer"]}
    del renamed["MyLayer"]
    with pytest.raises(ValueError, match="MyLayer"):
        models.load_model(path, custom_objects=renamed)


def test_the_keras_file_names_them_as_keras_does(tmp_path, rng):
    x, y = data(rng)
    model = custom_model()
    model.train_on_batch(x, y)
    path = tmp_path / "custom.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    layer = config["config"]["layers"][1]
    assert {k: layer[k] for k in ("module", "class_name", "registered_name")} == {
        "module": MyLayer.__module__, "class_name": "MyLayer", "registered_name": "MyLayer"}  # fmt: skip
    assert layer["config"]["units"] == 5 and layer["build_config"] == {"input_shape": [None, 4]}
    dense = config["config"]["layers"][2]["config"]
    assert dense["activation"] == {"module": __name__, "class_name": "function",
                                   "config": "half_relu", "registered_name": "half_relu"}  # fmt: skip
    assert dense["kernel_regularizer"]["class_name"] == "Shrink"
    assert config["compile_config"]["loss"]["config"] == "scaled_mse"


def test_from_config_and_json_take_custom_objects(rng):
    x, _ = data(rng)
    inputs = layers.Input((4,))
    outputs = layers.Dense(2)(MyLayer(3, name="mine")(inputs))
    model = models.Model(inputs, outputs)
    config, text = model.get_config(), model.to_json()
    for rebuild in (
        lambda co: models.Model.from_config(config, custom_objects=co),
        lambda co: models.Functional.from_config(config, custom_objects=co),
        lambda co: models.model_from_json(text, custom_objects=co),
        lambda co: models.model_from_config(layers.serialize(model), custom_objects=co),
    ):
        with pytest.raises(ValueError, match="unknown layer 'MyLayer'"):
            rebuild(None)
        again = rebuild({"MyLayer": MyLayer})
        assert isinstance(again.get_layer("mine"), MyLayer)
        again.set_weights(model.get_weights())
        np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    seq = models.Sequential([layers.Input((4,)), MyLayer(2)])
    again = models.Sequential.from_config(seq.get_config(), custom_objects={"MyLayer": MyLayer})
    assert isinstance(again.layers[0], MyLayer) and again.built


@pytest.mark.parametrize("suffix", [".keras", ".dlc"])
def test_a_custom_layer_inside_a_wrapper(tmp_path, rng, suffix):
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    model = models.Sequential([layers.Input((5, 4)), layers.TimeDistributed(MyLayer(2))])
    model.save(tmp_path / f"wrapped{suffix}")
    loaded = models.load_model(tmp_path / f"wrapped{suffix}", custom_objects={"MyLayer": MyLayer})
    assert isinstance(loaded.layers[0].layer, MyLayer)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_clone_model_needs_no_custom_objects(rng):
    x, _ = data(rng)
    model = custom_model()
    clone = models.clone_model(model)
    assert isinstance(clone.layers[0], MyLayer) and clone.layers[1].activation is half_relu
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bidirectional_copies_a_custom_layer_without_a_registry():
    class MyLSTM(layers.LSTM):
        pass

    wrapped = layers.Bidirectional(MyLSTM(3))
    assert type(wrapped.forward_layer) is MyLSTM and type(wrapped.backward_layer) is MyLSTM


def test_registered_objects_load_anywhere(tmp_path, rng, clean_custom_objects):
    @saving.register_keras_serializable(package="mine")
    class Doubler(layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    @dlcore.utils.register_keras_serializable("mine", name="triple")
    def tripled(x):
        return x * 3.0

    assert saving.get_registered_name(Doubler) == "mine>Doubler"
    assert saving.get_registered_object("mine>triple") is tripled
    assert saving.get_custom_objects()["mine>Doubler"] is Doubler
    x, _ = data(rng)
    model = models.Sequential([layers.Input((4,)), Doubler(), layers.Dense(2, activation=tripled)])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        layer = json.loads(zf.read("config.json"))["config"]["layers"][1]
    assert layer["registered_name"] == "mine>Doubler" and layer["class_name"] == "Doubler"
    loaded = models.load_model(tmp_path / "m.keras")  # no custom_objects: registered
    assert type(loaded.layers[0]) is Doubler and loaded.layers[1].activation is tripled
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="has no get_config"):
        saving.register_keras_serializable()(type("NoConfig", (), {}))
    with pytest.raises(TypeError, match=r"with parentheses"):
        saving.register_keras_serializable(Doubler)


def test_get_custom_objects_is_global_and_live(saved, clean_custom_objects):
    model, path, x, y = saved
    saving.get_custom_objects().update(ALL)
    next_step_agrees(models.load_model(path), model, x, y)


@pytest.fixture
def clean_custom_objects():
    before = dict(saving.get_custom_objects())
    yield
    saving.get_custom_objects().clear()
    saving.get_custom_objects().update(before)


def test_scopes_nest_restore_and_stay_in_their_thread():
    assert dlcore.keras.saving.custom_object_scope is saving.CustomObjectScope
    assert dlcore.keras.utils.custom_object_scope is dlcore.utils.CustomObjectScope
    assert dlcore.keras.utils.get_custom_objects is saving.get_custom_objects
    with saving.CustomObjectScope({"half_relu": half_relu}) as scope:
        assert scope.custom_objects == {"half_relu": half_relu}
        with dlcore.utils.custom_object_scope({"scaled_mse": scaled_mse}):
            assert activations.get("half_relu") is half_relu  # the outer scope's too
            assert losses.get("scaled_mse") is scaled_mse
            seen = []
            thread = threading.Thread(target=lambda: seen.append("scaled_mse" in losses.registry
                                                                 or _finds("scaled_mse")))  # fmt: skip
            thread.start()
            thread.join()
            assert seen == [False]
        with pytest.raises(ValueError, match="unknown loss 'scaled_mse'"):
            losses.get("scaled_mse")
        assert activations.get("half_relu") is half_relu
    with pytest.raises(ValueError, match="unknown activation 'half_relu'"):
        activations.get("half_relu")


def _finds(name):
    try:
        losses.get(name)
    except ValueError:
        return False
    return True


def test_each_kind_deserializes_with_custom_objects():
    assert layers.deserialize(layers.serialize(MyLayer(4)), custom_objects=ALL).units == 4
    assert losses.deserialize("scaled_mse", custom_objects=ALL) is scaled_mse
    assert activations.deserialize("half_relu", custom_objects=ALL) is half_relu
    assert (
        regularizers.deserialize(regularizers.serialize(Shrink(0.5)), custom_objects=ALL).rate
        == 0.5
    )
    assert (
        initializers.deserialize(initializers.serialize(Constant(2.0)), custom_objects=ALL).value
        == 2.0
    )
    assert (
        constraints.deserialize(constraints.serialize(Clip(3.0)), custom_objects=ALL).limit == 3.0
    )
    metric = dlcore.metrics.get(dlcore.metrics.deserialize("mean_error", custom_objects=ALL))
    assert metric.name == "mean_error"


@pytest.mark.parametrize("bad, message", [
    (["MyLayer"], r"custom_objects must be a dict of name -> class or function.*got list"),
    ({MyLayer: MyLayer}, r"custom_objects' keys are the names the file uses .*got <class"),
    ({"MyLayer": "MyLayer"}, r"custom_objects\['MyLayer'\] must be a class or a function, got 'MyLayer'"),
])  # fmt: skip
def test_bad_custom_objects_are_named(saved, bad, message):
    _, path, _, _ = saved
    with pytest.raises(TypeError, match=r"load_model: " + message):
        models.load_model(path, custom_objects=bad)
    with pytest.raises(TypeError, match=message):
        saving.custom_object_scope(bad)
    with pytest.raises(TypeError, match=message):
        models.model_from_json("{}", custom_objects=bad)


def test_compile_given_second_still_works_with_a_warning(saved):
    _, path, _, _ = saved
    with saving.custom_object_scope(ALL):
        with pytest.warns(DeprecationWarning, match="second argument is custom_objects"):
            model = models.load_model(path, False)
    assert model.optimizer is None
    with saving.custom_object_scope(ALL):
        assert models.load_model(path=path, compile=False).optimizer is None


# ---------------------------------------------------------------- with Keras


def keras_classes(keras):
    """Keras' twins of MyLayer and scaled_mse, under the same names."""

    class MyLayer(keras.layers.Layer):
        def __init__(self, units=3, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.units, self.factor = units, factor

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

        def call(self, inputs):
            return keras.ops.matmul(inputs, self.kernel) * self.factor

        def get_config(self):
            return {**super().get_config(), "units": self.units, "factor": self.factor}

    def scaled_mse(y_true, y_pred):
        return keras.ops.mean((y_true - y_pred) ** 2, axis=-1) * 0.5

    return {"MyLayer": MyLayer, "scaled_mse": scaled_mse}


def test_keras_loads_what_dlcore_saves_with_the_same_custom_objects(tmp_path, rng):
    keras = keras_module()
    x, y = data(rng)
    model = models.Sequential([layers.Input((4,)), MyLayer(5, factor=0.5), layers.Dense(2)])
    model.compile(optimizer="adam", loss=scaled_mse)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "d.keras")
    k_model = keras.models.load_model(tmp_path / "d.keras", custom_objects=keras_classes(keras))
    assert type(k_model.layers[0]).__name__ == "MyLayer" and k_model.layers[0].factor == 0.5
    assert_close(k_model.predict(x, verbose=0), model.predict(x, verbose=0), "predict in Keras")
    assert_close(k_model.train_on_batch(x, y), model.train_on_batch(x, y), "a step in Keras",
                 1e-4, 1e-6)  # fmt: skip


def test_dlcore_loads_what_keras_saves_with_custom_objects(tmp_path, rng):
    keras = keras_module()
    x, y = data(rng)
    K = keras_classes(keras)
    k_model = keras.Sequential(
        [keras.Input((4,)), K["MyLayer"](5, factor=0.5), keras.layers.Dense(2)]
    )
    k_model.compile(optimizer="adam", loss=K["scaled_mse"], metrics=[K["scaled_mse"]])
    k_model.train_on_batch(x, y)
    k_model.save(tmp_path / "k.keras")
    with pytest.raises(KerasFormatError, match=r"MyLayer.*custom_objects"):
        models.load_model(tmp_path / "k.keras")
    model = models.load_model(tmp_path / "k.keras", custom_objects=ALL)
    assert isinstance(model.layers[0], MyLayer) and model.loss is scaled_mse
    assert_close(model.predict(x, verbose=0), k_model.predict(x, verbose=0), "predict in dlcore")
    assert_close(model.train_on_batch(x, y), k_model.train_on_batch(x, y), "a step in dlcore",
                 1e-4, 1e-6)  # fmt: skip
