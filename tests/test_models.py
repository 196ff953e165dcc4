import io
import os

import numpy as np
import pytest

import dlcore
from dlcore import callbacks, layers, models, optimizers
from dlcore.saving import CheckpointError


def blobs(n=240, seed=0):
    """Three separable Gaussian blobs in 4-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)).astype(np.float32) * 0.5 + np.eye(4, dtype=np.float32)[y] * 3
    return x, y


def mlp(seed=0, **compile_kw):
    dlcore.set_random_seed(seed)
    m = models.Sequential(
        [
            layers.Dense(16, activation="relu", input_shape=(4,)),
            layers.Dense(3, activation="softmax"),
        ]
    )
    m.compile(
        **{
            "optimizer": optimizers.Adam(0.01),
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
            **compile_kw,
        }
    )
    return m


def test_fit_learns_and_history_has_the_keys():
    x, y = blobs()
    m = mlp()
    h = m.fit(x, y, epochs=8, batch_size=16, verbose=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 8 for v in h.history.values()) and h.epoch == list(range(8))
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    assert h.history["val_accuracy"][-1] > 0.95
    loss, acc = m.evaluate(x, y, verbose=0)
    assert acc > 0.95 and loss < h.history["loss"][0]
    assert m.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}


def test_validation_data_and_metrics_by_name():
    x, y = blobs()
    m = mlp(metrics=["accuracy", "precision", "recall", "f1"])
    h = m.fit(x[:180], y[:180], validation_data=(x[180:], y[180:]), epochs=2, verbose=0)
    assert {"precision", "recall", "f1", "val_f1"} <= set(h.history)
    logs = m.evaluate(x, y, verbose=0, return_dict=True)
    from dlcore import metrics

    pred = m.predict(x)
    assert logs["accuracy"] == pytest.approx(metrics.accuracy(y, pred))
    assert logs["f1"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))


def test_predict_matches_a_direct_call_and_keeps_no_graph():
    x, _ = blobs(70)
    m = mlp()
    out = m.predict(x, batch_size=16)
    assert out.shape == (70, 3)
    direct = m(x)
    np.testing.assert_allclose(out, direct.numpy(), rtol=1e-6)
    with dlcore.no_grad():
        assert not m(x).requires_grad
    assert m.predict_on_batch(x[:5]).shape == (5, 3)


def test_a_float64_stack_keeps_float64_inputs_exact():
    rng = np.random.default_rng(3)
    m = models.Sequential(
        [
            layers.Dense(5, activation="tanh", dtype="float64", input_shape=(4,)),
            layers.Dense(2, dtype="float64"),
        ]
    )
    x = rng.standard_normal((3, 4))
    layer_by_layer = m.layers[1](m.layers[0](x)).numpy()
    out = m(x)
    assert out.dtype == np.float64
    # a float32 round trip on the way in would cost ~1e-8; within a few ulps is float64
    np.testing.assert_allclose(out.numpy(), layer_by_layer, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(m.predict(x, verbose=0), layer_by_layer, rtol=1e-14, atol=1e-15)


def test_evaluate_loss_includes_regularization():
    x, y = blobs(64)
    dlcore.set_random_seed(0)
    m = models.Sequential([layers.Dense(3, input_shape=(4,), kernel_regularizer="l2")])
    m.compile(optimizer="sgd", loss="mse")
    target = np.eye(3)[y]
    plain = float(((m.predict(x) - target) ** 2).mean())
    penalty = 0.01 * float((m.layers[0].kernel.numpy() ** 2).sum())
    assert m.evaluate(x, target, verbose=0) == pytest.approx(plain + penalty, rel=1e-5)


def test_fit_is_reproducible_with_a_seed():
    x, y = blobs()
    a, b = mlp(seed=1), mlp(seed=1)
    a.fit(x, y, epochs=2, verbose=0, seed=5)
    b.fit(x, y, epochs=2, verbose=0, seed=5)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_batch_size_and_shuffle_off_visit_samples_in_order():
    seen = []

    class Spy(callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    x, y = blobs(50)
    mlp().fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[Spy()])
    assert seen == [0, 1, 2, 3]  # ceil(50 / 16) steps


# ------------------------------------------------------------ progress output


def test_progress_in_a_non_terminal_is_one_line_per_epoch(capsys):
    x, y = blobs(64)
    mlp().fit(x, y, epochs=3, batch_size=16, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3 - 4/4 - ") and "loss: " in lines[0]
    assert "ms/step" in lines[0] or "us/step" in lines[0]


def test_verbose_2_is_one_line_per_epoch_and_0_is_silent(capsys):
    x, y = blobs(64)
    mlp().fit(x, y, epochs=2, batch_size=16, verbose=2, validation_split=0.25)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and "val_accuracy" in out[1]
    mlp().fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_bar_redraws_in_place_on_a_terminal():
    from dlcore.progress import Progbar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = Progbar(4, verbose=1, stream=out, interval=0)
    for i in range(1, 5):
        bar.update(i, {"loss": 1.0 / i})
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "4/4 [==============================]" in text and "ETA" in text


# ------------------------------------------------------------ callbacks


def test_early_stopping_restores_the_best_weights():
    x, y = blobs()
    m = mlp()
    values = iter([1.0, 0.5, 0.7, 0.6, 0.9, 0.4])
    snapshots = []

    class FakeMonitor(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(values)
            snapshots.append(self.model.get_weights())

    stop = callbacks.EarlyStopping(
        monitor="score", patience=2, mode="min", restore_best_weights=True
    )
    h = m.fit(x, y, epochs=6, verbose=0, callbacks=[FakeMonitor(), stop])
    assert len(h.history["loss"]) == 4  # best at epoch 2, two more without improvement
    assert stop.best_epoch == 1
    for w, best in zip(m.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(w, best)


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = blobs()
    m = mlp()
    path = tmp_path / "best.dlc"
    values = iter([0.5, 0.7, 0.3])

    class FakeMonitor(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = next(values)

    saved = []

    class Spy(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved.append(os.path.getmtime(path) if path.exists() else None)

    cp = callbacks.ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True)
    m.fit(x, y, epochs=3, verbose=0, callbacks=[FakeMonitor(), cp, Spy()])
    assert cp.best == 0.3 and path.exists()
    restored = models.load_model(path)
    np.testing.assert_array_equal(restored.predict(x), m.predict(x))
    every = callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}.dlc"), save_weights_only=True)
    m.fit(x, y, epochs=2, verbose=0, callbacks=[every])
    assert (tmp_path / "w-01.dlc").exists() and (tmp_path / "w-02.dlc").exists()


def test_a_nan_loss_stops_training_with_a_message():
    x, y = blobs(64)
    m = mlp()
    x = x.copy()
    x[40:] = np.nan
    with pytest.warns(RuntimeWarning, match=r"the loss became nan at batch 2"):
        h = m.fit(x, y, epochs=5, batch_size=32, verbose=0, shuffle=False)
    assert len(h.history["loss"]) == 1


# ------------------------------------------------------------ saving


def test_save_load_round_trips_predictions_exactly(tmp_path):
    x, y = blobs()
    m = mlp()
    m.fit(x, y, epochs=2, verbose=0)
    m.save(tmp_path / "m.dlc")
    r = models.load_model(tmp_path / "m.dlc")
    np.testing.assert_array_equal(r.predict(x), m.predict(x))
    assert [type(l) for l in r.layers] == [type(l) for l in m.layers]
    assert type(r.optimizer) is optimizers.Adam and r.optimizer.iterations == m.optimizer.iterations
    assert r.evaluate(x, y, verbose=0) == m.evaluate(x, y, verbose=0)


def test_resumed_fit_matches_an_uninterrupted_one(tmp_path):
    x, y = blobs()
    full = mlp(seed=3)
    full.fit(x, y, epochs=4, verbose=0, seed=11)
    first = mlp(seed=3)
    first.fit(x, y, epochs=2, verbose=0, seed=11)
    first.save(tmp_path / "half.dlc")
    resumed = models.load_model(tmp_path / "half.dlc")
    resumed.fit(x, y, epochs=4, initial_epoch=2, verbose=0, seed=11)
    for a, b in zip(full.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_and_load_weights(tmp_path):
    x, y = blobs()
    a, b = mlp(seed=1), mlp(seed=2)
    a.fit(x, y, epochs=1, verbose=0)
    a.save_weights(tmp_path / "w.dlc")
    b.load_weights(tmp_path / "w.dlc")
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(CheckpointError, match="holds weights only"):
        models.load_model(tmp_path / "w.dlc")


def test_loading_into_a_different_architecture_names_the_mismatch(tmp_path):
    mlp().save_weights(tmp_path / "w.dlc")
    other = models.Sequential([layers.Dense(8, input_shape=(4,)), layers.Dense(3)])
    with pytest.raises(
        CheckpointError,
        match=r"weight 0 is dense.*/kernel \(4, 16\) in the file "
        r"but dense.*/kernel \(4, 8\) in the model",
    ):
        other.load_weights(tmp_path / "w.dlc")
    deeper = models.Sequential(
        [layers.Dense(16, input_shape=(4,)), layers.Dense(3), layers.Dense(3)]
    )
    with pytest.raises(CheckpointError, match="the file has 4 weights, the model 6"):
        deeper.load_weights(tmp_path / "w.dlc")


def test_damaged_and_foreign_files_raise_clear_errors(tmp_path):
    m = mlp()
    path = tmp_path / "m.dlc"
    m.save(path)
    blob = path.read_bytes()
    (tmp_path / "cut.dlc").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupted or of another format"):
        models.load_model(tmp_path / "cut.dlc")
    flipped = bytearray(blob)
    flipped[len(blob) // 3] ^= 0x40
    (tmp_path / "flip.dlc").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError):
        models.load_model(tmp_path / "flip.dlc")
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(CheckpointError, match="not a dlcore checkpoint"):
        models.load_model(tmp_path / "plain.npz")
    (tmp_path / "text.dlc").write_text("hello")
    with pytest.raises(CheckpointError):
        models.load_model(tmp_path / "text.dlc")
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.dlc")


def test_a_failed_save_leaves_the_previous_file(tmp_path):
    m = mlp()
    path = tmp_path / "m.dlc"
    m.save(path)
    before = path.read_bytes()
    m.layers[0].kernel.data = m.layers[0].kernel.data.astype(object)  # unsaveable
    with pytest.raises(TypeError, match="only numeric arrays"):
        m.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.dlc"]  # no temporary left behind


# ------------------------------------------------------------ structure


def test_summary(capsys):
    m = models.Sequential(
        [
            layers.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    m.summary()
    out = capsys.readouterr().out
    assert "(None, 26, 26, 32)" in out and "(None, 13, 13, 32)" in out and "(None, 5408)" in out
    assert "320" in out and "54,090" in out and "Total params: 54,410" in out
    with pytest.raises(ValueError, match="has not yet been built"):
        models.Sequential([layers.Dense(3)]).summary()


def test_gan_pattern_trainable_is_fixed_at_compile():
    dlcore.set_random_seed(0)
    disc = models.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(2,))])
    disc.compile(optimizer="sgd", loss="binary_crossentropy")
    gen = models.Sequential([layers.Dense(2, input_shape=(3,))])
    disc.trainable = False
    gan = models.Sequential([gen, disc])
    gan.compile(optimizer="sgd", loss="binary_crossentropy")
    d0, g0 = disc.get_weights(), gen.get_weights()
    gan.train_on_batch(np.ones((4, 3)), np.ones((4, 1)))
    assert all((a == b).all() for a, b in zip(disc.get_weights(), d0))  # frozen in gan
    assert any((a != b).any() for a, b in zip(gen.get_weights(), g0))
    disc.train_on_batch(np.ones((4, 2)), np.zeros((4, 1)))
    assert any((a != b).any() for a, b in zip(disc.get_weights(), d0))  # trains on its own


def test_custom_training_loop():
    x, y = blobs()
    dlcore.set_random_seed(0)
    model = models.Sequential([layers.Dense(16, activation="relu"), layers.Dense(3)])
    model(x[:1])
    opt = optimizers.Adam(0.01, params=model.trainable_weights)
    loss_fn = dlcore.losses.SparseCategoricalCrossentropy(from_logits=True)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(y, model(x, training=True))
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.data)
    assert float(loss.data) < 0.2 * first


def test_subclassed_model_tracks_its_layers():
    class TwoLayer(models.Model):
        def __init__(self):
            super().__init__()
            self.hidden = layers.Dense(8, activation="relu")
            self.out = layers.Dense(1)

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    m = TwoLayer()
    m(np.zeros((2, 3), np.float32))
    assert len(m.trainable_weights) == 4
    m.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    x = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    h = m.fit(x, x.sum(1, keepdims=True), epochs=30, verbose=0)
    assert h.history["loss"][-1] < 0.2 * h.history["loss"][0]


def test_fit_errors():
    x, y = blobs(20)
    with pytest.raises(RuntimeError, match="compile the model first"):
        models.Sequential([layers.Dense(3)]).fit(x, y)
    with pytest.raises(ValueError, match="x has 20 samples but y has 19"):
        mlp().fit(x, y[:-1], verbose=0)
    with pytest.raises(ValueError, match="a loss is required"):
        models.Sequential([layers.Dense(3)]).compile(optimizer="adam")


def test_summary_takes_keras_options(capsys):
    from dlcore import layers

    inner = dlcore.Sequential([layers.Input((4,)), layers.Dense(3, name="inner_dense")],
                              name="inner")  # fmt: skip
    m = dlcore.Sequential([layers.Input((4,)), inner, layers.Dropout(0.1, name="drop"),
                           layers.Dense(2, name="head")])  # fmt: skip
    m.layers[2].trainable = False
    m.summary(show_trainable=True, expand_nested=True, line_length=120)
    out = capsys.readouterr().out.splitlines()
    assert "Trainable" in out[2] and len(out[1]) >= 120
    rows = {line.split()[0]: line.split()[-1] for line in out if "(" in line and ")" in line}
    assert rows["inner"] == "Y" and rows["inner_dense"] == "Y"
    assert rows["drop"] == "-" and rows["head"] == "N"
    assert any(line.startswith("  inner_dense") for line in out)
    m.summary(layer_range=("drop", "head"))
    table = capsys.readouterr().out
    assert "head (Dense)" in table and "inner (Sequential)" not in table
    with pytest.raises(ValueError, match="layer_range names 'nope'"):
        m.summary(layer_range=("nope", "head"))


def test_save_takes_keras_arguments(tmp_path):
    from dlcore import layers

    m = dlcore.Sequential([layers.Input((3,)), layers.Dense(2)])
    path = tmp_path / "m.keras"
    m.save(filepath=path)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        m.save(path, overwrite=False)
    m.save(path, overwrite=True)
    m.save(path=tmp_path / "old.keras")  # the earlier keyword still works
    with pytest.raises(NotImplementedError, match="zipped"):
        m.save(tmp_path / "dir.keras", zipped=False)
    with pytest.raises(TypeError, match="unexpected keyword"):
        m.save(path, save_format="h5")
