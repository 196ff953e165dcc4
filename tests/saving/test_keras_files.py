"""Keras 3 files in both directions: ``.keras`` archives and ``.weights.h5`` files written
by Keras load in dlcore and predict the same; those dlcore writes load in Keras and
predict the same; the optimizer's state travels (one more training step on each side
gives the same weights). Files that name a layer or option dlcore lacks, hold code, come
from a newer Keras or are damaged fail with a clear error."""

import json
import zipfile

import numpy as np
import pytest

import dlcore
from dlcore import layers, models, optimizers, regularizers
from dlcore.saving import CheckpointError, KerasFormatError
from keras_parity import assert_close, keras_module

pytest.importorskip("h5py")
RTOL, ATOL = 2e-5, 2e-6


def keras_sequential(keras):
    """Every tutorial layer of a Sequential model."""
    L = keras.layers
    return keras.Sequential([
        keras.Input((9, 9, 2)),
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
        L.MaxPooling2D(2, padding="same"),
        L.Conv2D(3, (2, 1), dilation_rate=(1, 1), use_bias=False),
        L.Reshape((2, 3, 3)),
        L.Flatten(),
        L.Dense(8, activation="tanh", kernel_regularizer=keras.regularizers.L2(1e-3)),
        L.LeakyReLU(negative_slope=0.1),
        L.Dropout(0.0),  # inference is the identity at any rate; training steps compare
        L.Dense(5),
        L.Activation("softmax"),
    ], name="tutorial")  # fmt: skip


def dlcore_sequential():
    return models.Sequential([
        layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(9, 9, 2)),
        layers.MaxPooling2D(2, padding="same"),
        layers.Conv2D(3, (2, 1), use_bias=False),
        layers.Reshape((2, 3, 3)),
        layers.Flatten(),
        layers.Dense(8, activation="tanh", kernel_regularizer=regularizers.L2(1e-3)),
        layers.LeakyReLU(negative_slope=0.1),
        layers.Dropout(0.0),
        layers.Dense(5),
        layers.Activation("softmax"),
    ], name="tutorial")  # fmt: skip


def functional(lib):
    """LSTMs, every merging layer, two inputs, two outputs and a nested Sequential."""
    L = lib.layers
    seq = lib.Input(shape=(6, 3), name="seq")
    vec = lib.Input(shape=(4,), name="vec")
    h = L.LSTM(4, return_sequences=True)(seq)
    out, state_h, state_c = L.LSTM(4, return_state=True)(h)
    d = L.Dense(4, activation="relu")(vec)
    merged = [L.Add()([out, d]), L.Subtract()([out, d]), L.Multiply()([out, state_h]),
              L.Average()([out, state_c, d]), L.Maximum()([out, d]), L.Minimum()([d, state_c])]  # fmt: skip
    joined = L.Concatenate()(merged)
    dot = L.Dot(axes=1, normalize=True)([out, d])
    inner = lib.Sequential([L.Dense(5, activation="sigmoid"), L.Dense(2)], name="head")
    head = inner(joined)
    both = L.Concatenate(axis=-1)([head, dot])
    return lib.Model(inputs=[seq, vec], outputs=[both, L.Dense(1, name="side")(d)], name="graph")


def data(rng, n=6):
    xs = rng.standard_normal((n, 9, 9, 2)).astype(np.float32)
    ys = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    xf = [rng.standard_normal((n, 6, 3)).astype(np.float32),
          rng.standard_normal((n, 4)).astype(np.float32)]  # fmt: skip
    yf = [rng.standard_normal((n, 3)).astype(np.float32),
          rng.standard_normal((n, 1)).astype(np.float32)]  # fmt: skip
    return xs, ys, xf, yf


def compile_both(k_model, d_model, which):
    keras = keras_module()
    k_opt, d_opt = {
        "adam": (keras.optimizers.Adam(0.01, amsgrad=True), optimizers.Adam(0.01, amsgrad=True)),
        "rmsprop": (keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
                    optimizers.RMSprop(0.01, momentum=0.5, centered=True)),
        "sgd": (keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
                optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
        "adamw": (keras.optimizers.AdamW(0.01, weight_decay=0.05),
                  optimizers.AdamW(0.01, weight_decay=0.05)),
    }[which]  # fmt: skip
    model = k_model if k_model is not None else d_model
    loss = ["mse", "mse"] if isinstance(model.output_shape, list) else "categorical_crossentropy"
    metrics = None if isinstance(loss, list) else ["accuracy"]
    if k_model is not None:
        k_model.compile(optimizer=k_opt, loss=loss, metrics=metrics)
    if d_model is not None:
        d_model.compile(optimizer=d_opt, loss=loss, metrics=metrics)


def assert_same(d_model, k_model, x, what):
    assert_close(d_model.predict(x), k_model.predict(x, verbose=0), what, RTOL, ATOL)


def assert_step_agrees(d_model, k_model, x, y, what):
    """One more step on each side: equal weights only if the optimizer state matched."""
    ld, lk = d_model.train_on_batch(x, y), k_model.train_on_batch(x, y)
    assert_close(ld, lk, f"{what}: loss", 1e-4, 1e-5)
    assert_close(d_model.get_weights(), k_model.get_weights(), f"{what}: weights after a step",
                 1e-4, 1e-5)  # fmt: skip


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(7)


@pytest.mark.parametrize("which", ["sequential", "functional"])
def test_keras_archives_load_in_dlcore(tmp_path, rng, which):
    keras = keras_module()
    xs, ys, xf, yf = data(rng)
    k_model, x, y, opt = ((keras_sequential(keras), xs, ys, "adam") if which == "sequential"
                          else (functional(keras), xf, yf, "rmsprop"))  # fmt: skip
    compile_both(k_model, None, opt)
    k_model.train_on_batch(x, y)
    k_model.train_on_batch(x, y)
    path = tmp_path / "k.keras"
    k_model.save(path)
    d_model = models.load_model(path)
    assert [l.name for l in d_model.layers] == [l.name for l in k_model.layers]
    assert type(d_model.optimizer).__name__ == type(k_model.optimizer).__name__
    assert d_model.optimizer.iterations == 2
    assert_same(d_model, k_model, x, f"Keras {which} loaded in dlcore")
    assert_step_agrees(d_model, k_model, x, y, f"Keras {which} loaded in dlcore")


@pytest.mark.parametrize("which", ["sequential", "functional"])
def test_dlcore_archives_load_in_keras(tmp_path, rng, which):
    keras = keras_module()
    xs, ys, xf, yf = data(rng)
    d_model, x, y, opt = ((dlcore_sequential(), xs, ys, "sgd") if which == "sequential"
                          else (functional(dlcore), xf, yf, "adam"))  # fmt: skip
    compile_both(None, d_model, opt)
    d_model.train_on_batch(x, y)
    d_model.train_on_batch(x, y)
    path = tmp_path / "d.keras"
    d_model.save(path)
    k_model = keras.models.load_model(path)
    assert [l.name for l in k_model.layers] == [l.name for l in d_model.layers]
    assert int(k_model.optimizer.iterations) == 2
    assert_same(d_model, k_model, x, f"dlcore {which} loaded in Keras")
    again = models.load_model(path)  # and back into dlcore
    assert_same(again, k_model, x, f"dlcore {which} through a .keras file")
    assert_step_agrees(d_model, k_model, x, y, f"dlcore {which} loaded in Keras")


def test_weights_files_both_ways(tmp_path, rng):
    keras = keras_module()
    xs, ys, _, _ = data(rng)
    k_model, d_model = keras_sequential(keras), dlcore_sequential()
    k_model.save_weights(tmp_path / "k.weights.h5")
    d_model.load_weights(tmp_path / "k.weights.h5")
    assert_same(d_model, k_model, xs, "Keras weights in dlcore")
    fresh = dlcore_sequential()
    fresh.save_weights(tmp_path / "d.weights.h5")
    k_model.load_weights(tmp_path / "d.weights.h5")
    assert_same(fresh, k_model, xs, "dlcore weights in Keras")
    d_model.load_weights(tmp_path / "d.weights.h5")
    np.testing.assert_array_equal(d_model.predict(xs), fresh.predict(xs))


def test_uncompiled_and_float64_models_round_trip(tmp_path, rng):
    keras = keras_module()
    m = models.Sequential([layers.Dense(3, activation="relu", input_shape=(4,)), layers.Dense(2)])
    m.save(tmp_path / "m.keras")
    k = keras.models.load_model(tmp_path / "m.keras")
    assert getattr(k, "optimizer", None) is None
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_allclose(k.predict(x, verbose=0), m.predict(x), rtol=RTOL, atol=ATOL)
    wide = models.Sequential([layers.Dense(3, input_shape=(4,), dtype="float64")])
    wide.save(tmp_path / "wide.keras")  # Keras on JAX runs float32 only: dlcore reads it back
    back = models.load_model(tmp_path / "wide.keras")
    assert back.optimizer is None and back.layers[0].dtype == np.float64
    np.testing.assert_array_equal(
        back.predict(x.astype(np.float64)), wide.predict(x.astype(np.float64))
    )


def normalisation_stack(lib, tokens):
    """Normalisation, activation, embedding and reshaping layers, the same code for both
    libraries (their names and arguments are Keras'); noise and dropout at rate 0, so
    that training steps compare."""
    L = lib.layers
    if tokens:
        return lib.Sequential([
            lib.Input((6,), dtype="int32"),
            L.Embedding(20, 4),  # mask_zero: tests/layers/test_normalization.py
            L.BatchNormalization(),  # before LayerNormalization, whose beta it would cancel
            L.LayerNormalization(epsilon=0.01),
            L.Permute((2, 1)),
            L.Flatten(),
            L.Dense(5, activation="gelu"),
            L.RepeatVector(2),
            L.Softmax(axis=[1, 2]),
            L.Flatten(),
        ], name="tokens")  # fmt: skip
    return lib.Sequential([
        lib.Input((5, 4, 2)),
        L.ZeroPadding2D(((1, 0), (2, 1))),
        L.Conv2D(3, 2, use_bias=False),  # a bias would cancel in the batch statistics
        L.BatchNormalization(momentum=0.9, center=False),
        L.Activation("silu"),
        L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.1),
        L.UpSampling2D((2, 1), interpolation="bilinear"),
        L.Cropping2D(((1, 2), (0, 1))),
        L.UpSampling2D(2),
        L.PReLU(shared_axes=[1, 2]),
        L.SpatialDropout2D(0.0),
        L.GaussianNoise(0.0),
        L.ELU(alpha=0.5),
        L.LayerNormalization(axis=[2, 3], scale=False),
        L.Flatten(),
        L.Dense(5, activation="mish"),
        L.Softmax(),
    ], name="images")  # fmt: skip


@pytest.mark.parametrize("tokens", [False, True])
def test_normalisation_layers_both_ways(tmp_path, rng, tokens):
    keras = keras_module()
    n = 6
    x = (rng.integers(0, 20, (n, 6)) if tokens
         else rng.standard_normal((n, 5, 4, 2)).astype(np.float32))  # fmt: skip
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    y = np.tile(y, 2) / 2 if tokens else y
    k_model = normalisation_stack(keras, tokens)
    compile_both(k_model, None, "adam")
    k_model.train_on_batch(x, y)
    k_model.save(tmp_path / "k.keras")
    d_model = models.load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in d_model.layers] == [type(l).__name__ for l in k_model.layers]
    assert_same(d_model, k_model, x, "Keras normalisation layers loaded in dlcore")
    assert_step_agrees(d_model, k_model, x, y, "Keras normalisation layers loaded in dlcore")
    d_model = normalisation_stack(dlcore, tokens)
    compile_both(None, d_model, "sgd")
    d_model.train_on_batch(x, y)
    d_model.save(tmp_path / "d.keras")
    k_model = keras.models.load_model(tmp_path / "d.keras")
    assert_same(d_model, k_model, x, "dlcore normalisation layers loaded in Keras")
    assert_step_agrees(d_model, k_model, x, y, "dlcore normalisation layers loaded in Keras")


# ---------------------------------------------------------------- formats by extension


def small():
    m = models.Sequential([layers.Dense(3, input_shape=(2,)), layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    return m


def test_the_extension_picks_the_format(tmp_path):
    m = small()
    m.save(tmp_path / "m.dlc")
    m.save(tmp_path / "m.keras")
    assert zipfile.ZipFile(tmp_path / "m.dlc").namelist()[0].startswith("__dlcore_header__")
    assert "config.json" in zipfile.ZipFile(tmp_path / "m.keras").namelist()
    for bad in ("m.h5", "m.npz", "m", "m.onnx"):
        with pytest.raises(ValueError, match=r"\.dlc.*\.keras"):
            m.save(tmp_path / bad)
    with pytest.raises(ValueError, match=r"\.dlc.*\.weights\.h5"):
        m.save_weights(tmp_path / "w.h5")
    m.save_weights(tmp_path / "w.weights.h5")
    m.save_weights(tmp_path / "w.dlc")
    x = np.ones((2, 2), np.float32)
    for name in ("m.dlc", "m.keras"):
        np.testing.assert_array_equal(models.load_model(tmp_path / name).predict(x), m.predict(x))
    for name in ("w.weights.h5", "w.dlc", "m.keras", "m.dlc"):
        other = small()
        other.load_weights(tmp_path / name)
        np.testing.assert_array_equal(other.predict(x), m.predict(x))


def test_old_dlcore_checkpoints_named_keras_still_load(tmp_path):
    m = small()
    m.save(tmp_path / "m.dlc")
    (tmp_path / "old.keras").write_bytes((tmp_path / "m.dlc").read_bytes())
    x = np.ones((2, 2), np.float32)
    np.testing.assert_array_equal(models.load_model(tmp_path / "old.keras").predict(x),
                                  m.predict(x))  # fmt: skip


def test_files_that_are_not_models_say_what_they_are(tmp_path):
    m = small()
    m.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match=r"HDF5 file.*load_weights"):
        models.load_model(tmp_path / "w.weights.h5")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(ValueError, match="ONNX"):
        models.load_model(tmp_path / "m.onnx")
    (tmp_path / "text.keras").write_text("hello")
    with pytest.raises(KerasFormatError, match="not a readable Keras archive"):
        models.load_model(tmp_path / "text.keras")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.keras")


# ---------------------------------------------------------------- what dlcore refuses


def rewrite(src, dst, config=None, metadata=None, members=None):
    """A copy of the archive ``src`` with config.json / metadata.json changed by the
    given functions, or members replaced."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json" and config:
                data = json.dumps(config(json.loads(data))).encode()
            if name == "metadata.json" and metadata:
                data = json.dumps(metadata(json.loads(data))).encode()
            if members and name in members:
                data = members[name]
            zout.writestr(name, data)
    return dst


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "conv.keras"
    m = models.Sequential([layers.Conv2D(2, 3, input_shape=(5, 5, 1)), layers.Flatten(),
                           layers.Dense(2, activation="relu")])  # fmt: skip
    m.compile(optimizer="adam", loss="mse")
    m.save(path)
    return path


def layer_config(config, i):
    return config["config"]["layers"][i]["config"]


def set_option(i, key, value):
    def change(config):
        layer_config(config, i)[key] = value
        return config

    return change


def replace_last_layer(spec):
    def change(config):
        config["config"]["layers"][-1] = spec
        return config

    return change


LAMBDA = {"module": "keras.layers", "class_name": "Lambda",
          "config": {"function": {"class_name": "__lambda__", "config": {"code": "x"}}}}  # fmt: skip
CUSTOM = {"module": "my_project.layers", "class_name": "Evil", "config": {},
          "registered_name": "Custom>Evil"}  # fmt: skip
UNKNOWN = {"module": "keras.layers", "class_name": "NoSuchLayer", "config": {}}


@pytest.mark.parametrize(
    "change, message",
    [
        (set_option(1, "groups", 2), r"Conv2D: groups=2 is not supported"),
        (set_option(1, "data_format", "channels_first"), r"channels_first"),
        (set_option(3, "lora_rank", 4), r"no option lora_rank=4"),
        (replace_last_layer(LAMBDA), r"Lambda layer holds Python code.*never executes code"),
        (replace_last_layer(CUSTOM), r"module 'my_project\.layers', not from Keras"),
        (
            replace_last_layer(UNKNOWN),
            r"dlcore has no layer 'NoSuchLayer'; its layers are: .*Conv2D",
        ),
    ],
    ids=["groups", "channels_first", "lora", "lambda", "custom-module", "unknown-layer"],
)
def test_what_dlcore_lacks_is_named(saved, tmp_path, change, message):
    bad = rewrite(saved, tmp_path / "bad.keras", config=change)
    with pytest.raises(KerasFormatError, match=message):
        models.load_model(bad)


def test_a_keras_adamw_archive_trains_on_in_dlcore(tmp_path, rng):
    keras = keras_module()
    xs, ys, _, _ = data(rng)
    k_model = keras_sequential(keras)
    compile_both(k_model, None, "adamw")
    k_model.train_on_batch(xs, ys)
    k_model.save(tmp_path / "k.keras")
    d_model = models.load_model(tmp_path / "k.keras")
    assert type(d_model.optimizer).__name__ == "AdamW"
    assert d_model.optimizer.weight_decay == pytest.approx(0.05)
    assert_step_agrees(d_model, k_model, xs, ys, "Keras AdamW loaded in dlcore")


def test_an_optimizer_dlcore_lacks_is_named_and_compile_false_skips_it(saved, tmp_path):
    def lion(config):
        config["compile_config"]["optimizer"]["class_name"] = "Lion"
        return config

    bad = rewrite(saved, tmp_path / "lion.keras", config=lion)
    with pytest.raises(KerasFormatError, match=r"no optimizer 'Lion'.*compile=False"):
        models.load_model(bad)
    assert models.load_model(bad, compile=False).optimizer is None


def test_a_newer_keras_format_says_so(saved, tmp_path):
    newer = rewrite(
        saved, tmp_path / "k4.keras", metadata=lambda m: {**m, "keras_version": "4.1.0"}
    )
    with pytest.raises(KerasFormatError, match=r"Keras 4\.1\.0, a newer file format"):
        models.load_model(newer)
    with pytest.raises(ValueError, match="safe_mode"):
        models.load_model(saved, safe_mode=False)


def test_damaged_archives_fail_clearly(saved, tmp_path):
    blob = saved.read_bytes()
    for cut in (len(blob) // 3, len(blob) - 30, 100):
        (tmp_path / "cut.keras").write_bytes(blob[:cut])
        with pytest.raises((KerasFormatError, CheckpointError)):
            models.load_model(tmp_path / "cut.keras")
    bad = rewrite(saved, tmp_path / "json.keras", members={"config.json": b"{not json"})
    with pytest.raises(KerasFormatError, match=r"config\.json is not valid JSON"):
        models.load_model(bad)
    bad = rewrite(saved, tmp_path / "h5.keras", members={"model.weights.h5": b"\x89HDF\r\n\x1a\n"})
    with pytest.raises(KerasFormatError, match="not a readable HDF5 file"):
        models.load_model(bad)


def test_weights_that_do_not_fit_are_refused_before_any_is_assigned(tmp_path):
    import h5py

    m = small()
    m.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense_1/vars/0"]
        f["layers/dense_1/vars/0"] = np.zeros((4, 1), np.float32)
    other = small()
    before = other.get_weights()
    with pytest.raises(KerasFormatError, match=r"weight 0 of 'dense_\d+'.*\(4, 1\).*\(3, 1\)"):
        other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_links_to_other_files_are_refused(tmp_path):
    import h5py

    m = small()
    m.save_weights(tmp_path / "w.weights.h5")
    np.save(tmp_path / "secret.npy", np.ones(3))
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
    with pytest.raises(KerasFormatError, match="not a plain dataset"):
        small().load_weights(tmp_path / "w.weights.h5")


def test_schedules_dict_outputs_and_loss_and_metric_objects_travel(tmp_path, rng):
    keras = keras_module()
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = {"a": rng.standard_normal((4, 2)).astype(np.float32),
         "b": rng.standard_normal((4, 1)).astype(np.float32)}  # fmt: skip
    inp = keras.Input((3,), name="inp")
    k_model = keras.Model(inp, {"a": keras.layers.Dense(2, name="a")(inp),
                                "b": keras.layers.Dense(1, name="b")(inp)})  # fmt: skip
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=5, decay_rate=0.5)
    k_model.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.5),
                    loss={"a": "mse", "b": keras.losses.MeanAbsoluteError()},
                    metrics={"a": ["mae"], "b": [keras.metrics.MeanSquaredError()]})  # fmt: skip
    k_model.train_on_batch(x, y)
    k_model.save(tmp_path / "dict.keras")
    d_model = models.load_model(tmp_path / "dict.keras")
    assert isinstance(d_model.optimizer.learning_rate, optimizers.schedules.ExponentialDecay)
    assert_same(d_model, k_model, x, "dict outputs")
    logs_d = d_model.train_on_batch(x, y, return_dict=True)
    logs_k = k_model.train_on_batch(x, y, return_dict=True)
    assert_close(logs_d, logs_k, "a step's logs", 1e-5, 1e-6)
    assert_close(d_model.get_weights(), k_model.get_weights(), "weights after a step", 1e-5, 1e-6)
    d_model.save(tmp_path / "again.keras")  # and the schedule goes back to Keras
    again = keras.models.load_model(tmp_path / "again.keras")
    assert type(again.optimizer._learning_rate).__name__ == "ExponentialDecay"
    assert int(again.optimizer.iterations) == 2


# ---------------------------------------------------------------- convolution and pooling


def conv_family(lib, which):
    """Conv1D/Conv2DTranspose/DepthwiseConv2D/SeparableConv2D and the 1-D, 2-D and global
    pooling layers, written by the same code for Keras and dlcore (their names and options
    are Keras')."""
    L = lib.layers
    if which == "images":
        return lib.Sequential([
            lib.Input((5, 6, 2)),
            L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="relu"),
            L.AveragePooling2D((2, 3), strides=(1, 2), padding="same"),
            L.Conv2DTranspose(4, (4, 3), strides=(2, 1), output_padding=(1, 0), use_bias=False),
            L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
            L.SeparableConv2D(4, (2, 3), strides=(1, 2), depthwise_regularizer="l2"),
            L.AveragePooling2D(2),
            L.GlobalMaxPooling2D(keepdims=True),
            L.GlobalAveragePooling2D(),
            L.Dense(3, activation="softmax"),
        ], name="images")  # fmt: skip
    x = lib.Input(shape=(11, 3), name="seq")
    y = L.Conv1D(4, 3, strides=2, padding="causal", activation="tanh")(x)
    y = L.Conv1D(5, 2, dilation_rate=2, padding="same")(y)
    y = L.MaxPooling1D(2, padding="same")(y)
    y = L.AveragePooling1D(2, strides=1)(y)
    joined = L.Concatenate()([L.GlobalAveragePooling1D()(y), L.GlobalMaxPooling1D()(y)])
    return lib.Model(x, L.Dense(3, activation="softmax")(joined), name="sequences")


@pytest.mark.parametrize("which", ["images", "sequences"])
def test_convolution_and_pooling_files_both_ways(tmp_path, rng, which):
    keras = keras_module()
    shape = (6, 5, 6, 2) if which == "images" else (6, 11, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    k_model, d_model = conv_family(keras, which), conv_family(dlcore, which)
    for model, opt in ((k_model, keras.optimizers.Adam(0.01)), (d_model, optimizers.Adam(0.01))):
        model.compile(optimizer=opt, loss="categorical_crossentropy")
        model.train_on_batch(x, y)
    k_model.save(tmp_path / "k.keras")
    from_keras = models.load_model(tmp_path / "k.keras")
    assert [l.name for l in from_keras.layers] == [l.name for l in k_model.layers]
    assert_same(from_keras, k_model, x, f"Keras {which} loaded in dlcore")
    assert_step_agrees(from_keras, k_model, x, y, f"Keras {which} loaded in dlcore")
    d_model.save(tmp_path / "d.keras")
    to_keras = keras.models.load_model(tmp_path / "d.keras")
    assert_same(d_model, to_keras, x, f"dlcore {which} loaded in Keras")
    assert_step_agrees(d_model, to_keras, x, y, f"dlcore {which} loaded in Keras")


# ---------------------------------------------------------------- the recurrent family


def recurrent(lib):
    """Masking, Bidirectional, GRU both ways, SimpleRNN, TimeDistributed and LSTM."""
    L = lib.layers
    return lib.Sequential([
        L.Input((7, 3)) if hasattr(L, "Input") else L.InputLayer((7, 3)),
        L.Masking(),
        L.Bidirectional(L.GRU(4, return_sequences=True, reset_after=False), merge_mode="sum"),
        L.Bidirectional(L.LSTM(3, return_sequences=True)),
        L.SimpleRNN(3, activation="relu", go_backwards=True, return_sequences=True),
        L.TimeDistributed(L.Dense(2)),
        L.GRU(3),
        L.Dense(2),
    ], name="recurrent")  # fmt: skip


def padded_sequences(rng, n=6):
    x = rng.standard_normal((n, 7, 3)).astype(np.float32)
    x[np.arange(7)[None, :] >= rng.integers(2, 8, n)[:, None]] = 0.0
    return x, rng.standard_normal((n, 2)).astype(np.float32)


@pytest.mark.parametrize("direction", ["keras_to_dlcore", "dlcore_to_keras"])
def test_recurrent_models_both_ways(tmp_path, rng, direction):
    keras = keras_module()
    x, y = padded_sequences(rng)
    source = recurrent(keras) if direction == "keras_to_dlcore" else recurrent(dlcore)
    opt = (keras.optimizers if direction == "keras_to_dlcore" else optimizers).Adam(0.01)
    source.compile(optimizer=opt, loss="mse")
    source.train_on_batch(x, y)
    path = tmp_path / "r.keras"
    source.save(path)
    loaded = (models if direction == "keras_to_dlcore" else keras.models).load_model(path)
    d_model, k_model = (loaded, source) if direction == "keras_to_dlcore" else (source, loaded)
    assert [l.name for l in d_model.layers] == [l.name for l in k_model.layers]
    bi = d_model.layers[0 if d_model.layers[0].__class__.__name__ == "Bidirectional" else 1]
    assert (bi.merge_mode, bi.forward_layer.reset_after, bi.backward_layer.go_backwards) == (
        "sum",
        False,
        True,
    )
    assert_same(d_model, k_model, x, direction)
    assert_step_agrees(d_model, k_model, x, y, direction)


def test_activity_regularizers_cross_in_keras_files(tmp_path, rng):
    keras = keras_module()
    k_model = keras.Sequential([keras.Input((5,)),
                                keras.layers.Dense(3, activity_regularizer=keras.regularizers.L1(0.1))])  # fmt: skip
    k_model.compile(optimizer="sgd", loss="mse")
    k_model.save(tmp_path / "k.keras")
    d_model = models.load_model(tmp_path / "k.keras")
    assert d_model.layers[0].activity_regularizer.l1 == pytest.approx(0.1)
    x, y = rng.standard_normal((8, 5)).astype(np.float32), np.zeros((8, 3), np.float32)
    assert_close(d_model.evaluate(x, y, verbose=0), k_model.evaluate(x, y, verbose=0),
                 "evaluate with the activity penalty", 1e-5, 1e-6)  # fmt: skip
    d_model.save(tmp_path / "d.keras")
    back = keras.models.load_model(tmp_path / "d.keras")
    assert back.layers[0].activity_regularizer is not None
