"""The logging callbacks: CSVLogger writes what Keras' CSVLogger writes for the same
logs; TensorBoard's event files, read back with TensorBoard's own reader, hold the
epoch's loss, metrics and learning rate, the validation figures, and histograms of the
weights."""

import numpy as np
import pytest

import dlcore
from dlcore import callbacks, layers, models, optimizers
from keras_parity import keras_module


def classifier(lr=0.05):
    m = models.Sequential([layers.Dense(6, activation="relu", input_shape=(4,)),
                           layers.Dense(3, activation="softmax")])  # fmt: skip
    m.compile(optimizer=optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])  # fmt: skip
    return m


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


def keras_csv(keras, path, epochs_logs, append=False, separator=","):
    cb = keras.callbacks.CSVLogger(str(path), separator=separator, append=append)
    cb.on_train_begin()
    for epoch, logs in epochs_logs:
        cb.on_epoch_end(epoch, logs)
    cb.on_train_end()
    return path.read_text()


def epochs_of(history):
    return [(e, {k: v[i] for k, v in history.history.items()}) for i, e in enumerate(history.epoch)]


def test_csv_logger_writes_what_keras_writes(tmp_path, data):
    keras = keras_module()
    x, y = data
    m = classifier()
    path = tmp_path / "log.csv"
    first = m.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25,
                  callbacks=[callbacks.CSVLogger(path)])  # fmt: skip
    assert path.read_text() == keras_csv(keras, tmp_path / "k.csv", epochs_of(first))
    second = m.fit(x, y, epochs=4, initial_epoch=2, batch_size=8, verbose=0,
                   validation_split=0.25, callbacks=[callbacks.CSVLogger(path, append=True)])  # fmt: skip
    keras_csv(keras, tmp_path / "k.csv", epochs_of(second), append=True)
    assert path.read_text() == (tmp_path / "k.csv").read_text()
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_accuracy,val_loss" and len(lines) == 5
    no_val = m.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(path, separator=";")])
    assert path.read_text() == keras_csv(
        keras, tmp_path / "k2.csv", epochs_of(no_val), separator=";"
    )
    assert path.read_text().splitlines()[0] == "epoch;accuracy;loss;val_accuracy;val_loss"


def read_events(directory):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(
        str(directory),
        size_guidance={event_accumulator.SCALARS: 0, event_accumulator.HISTOGRAMS: 0},
    )
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_event_files_read_back(tmp_path, data):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("tensorboard")
    x, y = data
    schedule = optimizers.schedules.ExponentialDecay(0.1, decay_steps=3, decay_rate=0.5)
    m = classifier(lr=schedule)
    history = m.fit(x, y, epochs=3, batch_size=10, verbose=0, validation_split=0.25,
                    callbacks=[callbacks.TensorBoard(tmp_path / "logs", histogram_freq=2)])  # fmt: skip
    train, val = (
        read_events(tmp_path / "logs" / "train"),
        read_events(tmp_path / "logs" / "validation"),
    )
    h = history.history
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(
            [v for _, v in scalars(train, f"epoch_{name}")], h[name], rtol=1e-6
        )
        np.testing.assert_allclose([v for _, v in scalars(val, f"epoch_{name}")], h[f"val_{name}"],
                                   rtol=1e-6)  # fmt: skip
    assert [s for s, _ in scalars(train, "epoch_loss")] == [0, 1, 2]
    steps_per_epoch = 3  # 30 training samples in batches of 10
    np.testing.assert_allclose([v for _, v in scalars(train, "epoch_learning_rate")],
                               [schedule(steps_per_epoch * (e + 1)) for e in range(3)], rtol=1e-6)  # fmt: skip
    tags = train.Tags()["histograms"]
    assert sorted(tags) == sorted(f"{w.name}/histogram" for w in m.weights)
    kernel = m.layers[1].kernel
    events = train.Histograms(f"{kernel.name}/histogram")
    assert [e.step for e in events] == [0, 2]
    last = events[-1].histogram_value
    assert last.num == kernel.size
    np.testing.assert_allclose([last.min, last.max, last.sum],
                               [kernel.data.min(), kernel.data.max(), kernel.data.sum()], rtol=1e-5)  # fmt: skip


def test_tensorboard_batch_scalars_and_bad_arguments(tmp_path, data):
    pytest.importorskip("tensorboardX")
    pytest.importorskip("tensorboard")
    x, y = data
    m = classifier()
    m.fit(x, y, epochs=2, batch_size=10, verbose=0,
          callbacks=[callbacks.TensorBoard(tmp_path, update_freq=2, write_steps_per_second=True)])  # fmt: skip
    train = read_events(tmp_path / "train")
    assert [s for s, _ in scalars(train, "batch_loss")] == [2, 4, 6, 8]
    assert all(v > 0 for _, v in scalars(train, "epoch_steps_per_second"))
    assert not (tmp_path / "validation").exists()
    for bad in ({"update_freq": "often"}, {"write_images": True}, {"histogram_freq": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            callbacks.TensorBoard(tmp_path, **bad)


def _regression_pair(rng, keras):
    from dlcore import layers

    x = rng.standard_normal((32, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    dm = dlcore.Sequential([layers.Input((3,)), layers.Dense(1)])
    dm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    dm.compile(optimizer=dlcore.optimizers.SGD(0.05), loss="mse")
    return x, y, km, dm


@pytest.mark.parametrize("cooldown", [0, 2])
def test_reduce_lr_on_plateau_matches_keras(rng, cooldown):
    keras = pytest.importorskip("keras")
    x, y, km, dm = _regression_pair(rng, keras)
    # nothing improves by 10, so the rate is cut on a timetable
    kw = dict(monitor="loss", factor=0.5, patience=2, min_delta=10.0, cooldown=cooldown,
              min_lr=0.01)  # fmt: skip
    kh = km.fit(x, y, epochs=9, batch_size=8, shuffle=False, verbose=0,
                callbacks=[keras.callbacks.ReduceLROnPlateau(**kw)])  # fmt: skip
    dh = dm.fit(x, y, epochs=9, batch_size=8, shuffle=False, verbose=0,
                callbacks=[callbacks.ReduceLROnPlateau(**kw)])  # fmt: skip
    np.testing.assert_allclose(dh.history["learning_rate"], kh.history["learning_rate"],
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(dh.history["loss"], kh.history["loss"], rtol=1e-4)
    if not cooldown:  # 0.05 -> 0.025 -> 0.0125 -> min_lr
        assert min(dh.history["learning_rate"]) == pytest.approx(0.01)


def test_learning_rate_scheduler_matches_keras(rng):
    keras = pytest.importorskip("keras")
    x, y, km, dm = _regression_pair(rng, keras)

    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.5

    kh = km.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                callbacks=[keras.callbacks.LearningRateScheduler(schedule)])  # fmt: skip
    dh = dm.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0,
                callbacks=[callbacks.LearningRateScheduler(schedule)])  # fmt: skip
    np.testing.assert_allclose(dh.history["learning_rate"], kh.history["learning_rate"],
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(dh.history["loss"], kh.history["loss"], rtol=1e-4)
    # Keras' older one-argument form
    dm.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e: 0.2)])
    assert dm.optimizer.learning_rate == 0.2


def test_learning_rate_callbacks_bad_input(rng):
    from dlcore import layers

    with pytest.raises(ValueError, match=r"factor must be < 1\.0"):
        callbacks.ReduceLROnPlateau(factor=1.5)
    with pytest.raises(TypeError, match="schedule must be a function"):
        callbacks.LearningRateScheduler(0.1)
    m = dlcore.Sequential([layers.Input((2,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    with pytest.raises(ValueError, match="must return a float, got 1"):
        m.fit(x, y, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda e, lr: 1)])
    m.compile(optimizer=dlcore.optimizers.SGD(
        dlcore.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)), loss="mse")  # fmt: skip
    with pytest.raises(ValueError, match="learning rate is a schedule"):
        m.fit(x, y, verbose=0, callbacks=[callbacks.ReduceLROnPlateau(monitor="loss")])
