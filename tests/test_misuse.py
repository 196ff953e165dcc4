"""The public API misused at model level, as an adversarial user would: each case either
works as Keras (or NumPy) would, or raises ValueError/TypeError naming the argument —
never a silent wrong answer, never a bare Python or NumPy error.

Grouped by the numbered items of the reliability issue (autograd and promotion, items 1
and 2, are tests/test_autograd_torch.py; optimizers, item 8, tests/test_optimizers.py;
files, items 9-11 and the MNIST messages, tests/test_hostile_files.py), then the errors
that must say what was wrong."""

import threading
import warnings

import numpy as np
import pytest

from dlcore import callbacks, layers, losses, metrics, models, optimizers


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    return x, x @ np.array([[1.0], [-2.0], [0.5]], np.float32)


def compiled(input_shape=(3,), optimizer="sgd"):
    kwargs = {} if input_shape is None else {"input_shape": input_shape}
    m = models.Sequential([layers.Dense(4, activation="tanh", **kwargs), layers.Dense(1)])
    m.compile(optimizer=optimizer, loss="mse")
    return m


def assert_all_changed(before, model):
    after = model.get_weights()
    assert len(after) == len(before)
    for i, (a, b) in enumerate(zip(before, after)):
        assert not np.array_equal(a, b), f"weight {i} ({model.weights[i].name}) did not train"


# ---------------------------------------------------------------- 3. save before build


def test_saving_a_compiled_unbuilt_model_does_not_stop_it_training(data, tmp_path):
    x, y = data
    m = compiled(input_shape=None, optimizer=optimizers.SGD(0.05))
    m.save(tmp_path / "unbuilt.dlc")
    m.predict(x[:1])  # builds it
    before = m.get_weights()
    history = m.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert_all_changed(before, m)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    loaded = models.load_model(tmp_path / "unbuilt.dlc")  # an unbuilt model loads unbuilt
    assert not loaded.weights
    history = loaded.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert len(loaded.weights) == 4
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


# ---------------------------------------------------------------- 4. layers a model holds


class Tower(models.Model):
    """Layers in a list, in a dict, and one in a list inside a dict."""

    def __init__(self):
        super().__init__()
        self.blocks = [layers.Dense(8, activation="tanh"), layers.Dense(8, activation="tanh")]
        self.heads = {"out": layers.Dense(1), "extra": [layers.Dense(1)]}

    def call(self, x, training=False):
        for block in self.blocks:
            x = block(x)
        return self.heads["out"](x) + self.heads["extra"][0](x)


def test_layers_in_lists_and_dicts_train_and_save(data, tmp_path):
    x, y = data
    m = Tower()
    m.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    m.predict(x[:1])
    assert len(m.trainable_weights) == 8
    before = m.get_weights()
    m.fit(x, y, epochs=2, verbose=0)
    assert_all_changed(before, m)
    m.save_weights(tmp_path / "tower.dlc")
    fresh = Tower()
    fresh.predict(x[:1])
    fresh.load_weights(tmp_path / "tower.dlc")
    np.testing.assert_array_equal(fresh.predict(x), m.predict(x))


def test_a_layer_added_after_compile_trains(data):
    x, y = data
    m = models.Sequential([layers.Dense(4, activation="tanh", input_shape=(3,))])
    m.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    m.add(layers.Dense(1))
    before = m.get_weights()
    m.fit(x, y, epochs=2, verbose=0)
    assert_all_changed(before, m)


def test_a_layer_assigned_after_compile_trains(data):
    x, y = data

    class Late(models.Model):
        def call(self, x, training=False):
            return self.head(x)

    m = Late()
    m.compile(optimizer=optimizers.SGD(0.05), loss="mse")
    m.head = layers.Dense(1)
    m.fit(x, y, epochs=1, verbose=0)
    before = m.get_weights()
    m.fit(x, y, epochs=1, verbose=0)
    assert_all_changed(before, m)


# ---------------------------------------------------------------- 5. lazy build races


def test_concurrent_first_predicts_build_the_model_once(data):
    x, _ = data
    for _ in range(5):
        m = compiled(input_shape=None)
        start, outs = threading.Barrier(4), [None] * 4

        def first_predict(i, m=m, start=start, outs=outs):
            start.wait()
            outs[i] = m.predict(x)

        threads = [threading.Thread(target=first_predict, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(m.weights) == 4
        for out in outs[1:]:
            np.testing.assert_array_equal(out, outs[0])


def test_a_model_built_by_its_first_call_saves_and_loads(data, tmp_path):
    x, _ = data
    m = compiled(input_shape=None)
    m.predict(x[:2])
    m.save(tmp_path / "lazy.dlc")
    loaded = models.load_model(tmp_path / "lazy.dlc")
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))


# ---------------------------------------------------------------- 6. one layer used twice


def test_one_layer_twice_in_a_sequential_is_refused_naming_it():
    d = layers.Dense(3, input_shape=(3,), name="shared")
    with pytest.raises(ValueError, match="'shared' is already in"):
        models.Sequential([d, d])
    with pytest.raises(ValueError, match="unique"):
        models.Sequential([layers.Dense(3, name="x"), layers.Dense(3, name="x")])


def test_one_layer_applied_twice_in_a_subclassed_model_saves_and_loads(data, tmp_path):
    x, _ = data

    class Twice(models.Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(3, activation="tanh")

        def call(self, x, training=False):
            return self.d(self.d(x))

    m = Twice()
    m.predict(x[:1])
    assert len(m.weights) == 2
    m.save_weights(tmp_path / "twice.dlc")
    fresh = Twice()
    fresh.predict(x[:1])
    fresh.load_weights(tmp_path / "twice.dlc")
    np.testing.assert_array_equal(fresh.predict(x), m.predict(x))


# ---------------------------------------------------------------- 7. numbers where an error belongs


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda m, x, y: m.evaluate(x[:0], y[:0], verbose=0), ValueError, "evaluate: x has no samples"),
        (lambda m, x, y: m.fit(x[:0], y[:0], verbose=0), ValueError, "fit: x has no samples"),
        (lambda m, x, y: m.predict(x[:0]), ValueError, "predict: x has no samples"),
        (lambda m, x, y: m.fit(x, y, batch_size=-4, verbose=0), ValueError, "batch_size must be >= 1, got -4"),
        (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0), ValueError, "batch_size must be >= 1, got 0"),
        (lambda m, x, y: m.evaluate(x, y, batch_size=0, verbose=0), ValueError, "batch_size"),
        (lambda m, x, y: m.predict(x, batch_size=-1), ValueError, "batch_size"),
        (lambda m, x, y: m.fit(x, y, validation_split=1e-17, verbose=0), ValueError, "validation_split=1e-17 of 32 samples holds out none"),
        (lambda m, x, y: m.fit(x[:1], y[:1], validation_split=0.5, verbose=0), ValueError, "leaves none to train on"),
        (lambda m, x, y: m.fit(x, y, validation_split=1.0, verbose=0), ValueError, "validation_split"),
        (lambda m, x, y: m.fit(x, y, validation_split=float("nan"), verbose=0), ValueError, "validation_split"),
        (lambda m, x, y: m.fit(x, y, validation_split=-0.2, verbose=0), ValueError, "validation_split"),
        (lambda m, x, y: m.predict(x[0]), ValueError, r"expected inputs of shape \(None, 3\).*got an array of shape \(3,\)"),
        (lambda m, x, y: m.predict(x[None]), ValueError, r"got an array of shape \(1, 32, 3\)"),
        (lambda m, x, y: m.fit(x, y[:-1], verbose=0), ValueError, "x has 32 samples but y has 31"),
        (lambda m, x, y: m.fit(x[:, :2], y, verbose=0), ValueError, r"expected inputs of shape \(None, 3\)"),
        (lambda m, x, y: m.fit(x, y, epochs=-1, verbose=0), ValueError, "epochs must be >= 0"),
        (lambda m, x, y: m.fit(x, y, initial_epoch=-1, verbose=0), ValueError, "initial_epoch"),
        (lambda m, x, y: m.fit(x, y, verbose=3), ValueError, "verbose"),
        (lambda m, x, y: m.fit(x, None, verbose=0), TypeError, "fit: y must be an array, got None"),
        (lambda m, x, y: m.fit(x, y, validation_data=(x,), verbose=0), ValueError, "validation_data must be a tuple"),
        (lambda m, x, y: m.fit(x, y, validation_split=0.5, validation_data=(x, y), verbose=0), ValueError, "not both"),
    ],
)  # fmt: skip
def test_sizes_counts_and_splits_that_make_no_sense_are_errors(data, call, error, match):
    x, y = data
    m = compiled()
    before = m.get_weights()
    with pytest.raises(error, match=match):
        call(m, x, y)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)  # refused before any training


# ---------------------------------------------------------------- errors that name the argument


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda m, x, y: m.fit(x, y, batch_size=4.0, verbose=0), TypeError, "batch_size must be an int, got 4.0"),
        (lambda m, x, y: m.fit(x, y, epochs=None, verbose=0), TypeError, "epochs must be an int, got None"),
        (lambda m, x, y: m.fit(x, y, epochs=2.0, verbose=0), TypeError, "epochs must be an int"),
        (lambda m, x, y: m.predict(x, batch_size=True), TypeError, "batch_size must be an int, got True"),
        (lambda m, x, y: m.fit(x, y, validation_split="0.2", verbose=0), TypeError, "validation_split must be a number"),
        (lambda m, x, y: m.fit(x, y, callbacks=[object()], verbose=0), TypeError, "callbacks must be Callback objects"),
        (lambda m, x, y: m.fit(x, y, callbacks=callbacks.History(), verbose=0), TypeError, "callbacks must be a list"),
        (lambda m, x, y: m.predict(None), TypeError, "predict: x must be an array, got None"),
        (lambda m, x, y: m.fit([[1, 2], [3]], y, verbose=0), TypeError, "fit: x must be an array"),
        (lambda m, x, y: m.compile(optimizer=None, loss="mse"), TypeError, "as a optimizer"),
        (lambda m, x, y: m.compile(optimizer=int, loss="mse"), TypeError, "class int as a optimizer"),
        (lambda m, x, y: m.compile(optimizer="nope", loss="mse"), ValueError, "unknown optimizer 'nope'"),
        (lambda m, x, y: m.compile(optimizer="sgd", loss="nope"), ValueError, "unknown loss 'nope'"),
        (lambda m, x, y: m.compile(optimizer="sgd", loss="mse", metrics="accuracy"), TypeError, "metrics must be a list"),
        (lambda m, x, y: m.compile(optimizer=optimizers.Adam(beta_1=1.0), loss="mse"), ValueError, r"beta_1 must be a finite number in \[0, 1\)"),
        (lambda m, x, y: m.compile(optimizer={"class_name": "SGD", "config": {"momentum": -0.5}}, loss="mse"), ValueError, "momentum"),
        (lambda m, x, y: models.Sequential([layers.Dense(1)]).fit(x, y, verbose=0), RuntimeError, "compile the model first"),
    ],
)  # fmt: skip
def test_model_arguments_of_the_wrong_kind_are_named(data, call, error, match):
    x, y = data
    with pytest.raises(error, match=match):
        call(compiled(), x, y)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: layers.Reshape((0, -1)), ValueError, "target_shape must be a tuple of positive ints"),
        (lambda: layers.Reshape(None), ValueError, "target_shape"),
        (lambda: layers.Conv2D(2, kernel_size=2.7), ValueError, "kernel_size must be an int or a tuple of 2 ints"),
        (lambda: layers.Conv2D(2, 3, strides=0), ValueError, "strides"),
        (lambda: layers.Conv2D(2, 3, padding="full"), ValueError, "padding must be 'valid' or 'same'"),
        (lambda: layers.MaxPooling2D(2.5), ValueError, "pool_size"),
        (lambda: layers.Dense(2.5), ValueError, "units must be a positive int, got 2.5"),
        (lambda: layers.Dense(3, dtype="float16"), TypeError, "dtype must be float32 or float64"),
        (lambda: layers.Dense(3, dtype="nope"), TypeError, "dtype 'nope' is not a NumPy dtype"),
        (lambda: layers.Dense(3, activaton="relu"), TypeError, r"unexpected keyword arguments \['activaton'\]"),
        (lambda: layers.Dense(3, input_shape=(0,)), ValueError, "input_shape must hold positive ints"),
        (lambda: layers.Dense(3, input_shape="4"), ValueError, "input_shape"),
        (lambda: layers.Dense(3, activation="nope"), ValueError, "unknown activation 'nope'"),
        (lambda: layers.Dense(3, kernel_initializer="nope"), ValueError, "unknown initializer 'nope'"),
        (lambda: layers.Dropout("0.5"), TypeError, "rate must be a number in \\[0, 1\\), got '0.5'"),
        (lambda: layers.Dropout(None), TypeError, "rate"),
        (lambda: layers.Dropout(1.0), ValueError, "rate"),
        (lambda: layers.Dropout(0.5, noise_shape=(0,)), ValueError, "noise_shape"),
        (lambda: layers.Dropout(0.5, seed="a"), TypeError, "seed must be an int"),
        (lambda: layers.LeakyReLU(negative_slope=-1.0), ValueError, "negative_slope must be a number >= 0"),
        (lambda: layers.LeakyReLU(negative_slope="a"), TypeError, "negative_slope"),
        (lambda: layers.LSTM("3"), ValueError, "units must be a positive int"),
        (lambda: layers.Input(shape=(-1,)), ValueError, "input_shape must hold positive ints"),
        (lambda: models.Sequential([3]), TypeError, "expected a layer, got int"),
    ],
)  # fmt: skip
def test_layer_arguments_of_the_wrong_kind_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: layers.Conv2D(2, 3)(np.ones((2, 5), np.float32)), r"Conv2D needs inputs \(batch, rows, cols, channels\)"),
        (lambda: layers.LSTM(2)(np.ones((2, 5), np.float32)), r"LSTM needs inputs \(batch, timesteps, features\)"),
        (lambda: layers.Dense(2)(np.ones(5, np.float32)), r"Dense needs inputs \(batch, ..., features\)"),
        (lambda: layers.MaxPooling2D(5)(np.ones((1, 3, 3, 1), np.float32)), "window spans 5"),
        (lambda: layers.Dropout(0.5, noise_shape=(5,))(np.ones((2, 3), np.float32), training=True), r"noise_shape \(5,\) does not fit inputs of shape \(2, 3\)"),
    ],
)  # fmt: skip
def test_layer_inputs_of_the_wrong_shape_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_an_integer_input_shape_means_one_axis(data):
    x, y = data
    m = models.Sequential([layers.Dense(4, input_shape=3), layers.Dense(1)])
    assert m.input_shape == (None, 3)
    m.compile(optimizer="sgd", loss="mse")
    m.fit(x, y, epochs=1, verbose=0)


@pytest.mark.parametrize("kind", ["optimizer", "loss", "metric"])
def test_a_class_where_an_instance_belongs_is_used_with_its_defaults(data, kind):
    x, y = data
    m = compiled()
    args = {"optimizer": "sgd", "loss": "mse", "metrics": []}
    if kind == "optimizer":
        args["optimizer"] = optimizers.SGD
    elif kind == "loss":
        args["loss"] = losses.MeanSquaredError
    else:
        args["metrics"] = [metrics.Accuracy]
    m.compile(**args)
    before = m.get_weights()
    history = m.fit(x, y, epochs=2, verbose=0)
    assert_all_changed(before, m)
    assert all(np.isfinite(v) for values in history.history.values() for v in values)


def test_the_float16_dtype_is_refused_before_any_training():
    with pytest.raises(TypeError, match="float16"):
        models.Sequential([layers.Dense(3, input_shape=(2,), dtype="float16")])


# ---------------------------------------------------------------- found by this suite; the
# refused by the data adapter and the model classes before any training


def test_mismatched_validation_data_is_refused_before_training(data):
    x, y = data
    m = compiled()
    batches = []
    seen = callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    with pytest.raises(ValueError, match="validation_data"):
        m.fit(x, y, validation_data=(x[:, :2], y), callbacks=[seen], batch_size=8, verbose=0)
    assert batches == [], f"refused only after {len(batches)} training batches"


def test_inputs_of_strings_are_a_type_error_naming_x(data):
    _, y = data
    with pytest.raises(TypeError, match="x"):
        compiled().fit(np.array([["a", "b", "c"]] * 32), y, verbose=0)


def test_complex_inputs_are_never_dropped_silently(data):
    x, y = data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compiled().fit(x + 1j, y, verbose=0)
        except TypeError as e:  # refused: the better answer
            assert "complex" in str(e)
            return
    assert any(issubclass(w.category, np.exceptions.ComplexWarning) for w in caught)


def test_a_single_layer_instead_of_a_list_is_named():
    with pytest.raises(TypeError, match="layers"):
        models.Sequential(layers.Dense(3))


def test_a_subclass_that_skips_super_init_is_told_so(data):
    class NoSuper(models.Model):
        def __init__(self):
            self.d = layers.Dense(1)

        def call(self, x):
            return self.d(x)

    with pytest.raises((TypeError, RuntimeError), match="super"):
        m = NoSuper()
        m.compile(optimizer="sgd", loss="mse")
        m.fit(*data, verbose=0)
