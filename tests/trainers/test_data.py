"""The data forms fit / evaluate / predict take: arrays, lists and dicts of arrays,
generators, PyDatasets, sample and class weights — and their errors."""

import threading

import numpy as np
import pytest

import dlcore
from dlcore import layers, models, utils
from dlcore.trainers.data_adapter import prefetch

RNG = np.random.default_rng(3)
X = RNG.standard_normal((24, 4)).astype(np.float32)
Y = RNG.standard_normal((24, 1)).astype(np.float32)


def regression(seed=0):
    dlcore.set_random_seed(seed)
    model = models.Sequential([layers.Input((4,)), layers.Dense(1)])
    model.compile(optimizer=dlcore.optimizers.SGD(learning_rate=0.05), loss="mse")
    return model


class Batches(utils.PyDataset):
    def __init__(self, x, y, batch_size, w=None):
        super().__init__()
        self.x, self.y, self.w, self.batch_size = x, y, w, batch_size
        self.epochs_ended = 0
        self.seen = []

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        self.seen.append(i)
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        batch = (self.x[sl], self.y[sl])
        return batch if self.w is None else (*batch, self.w[sl])

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_pydataset_and_generator_train_as_arrays_do():
    w = RNG.uniform(0.5, 1.5, 24).astype(np.float32)
    reference = regression()
    h_arrays = reference.fit(X, Y, sample_weight=w, batch_size=6, epochs=3, shuffle=False,
                             verbose=0).history  # fmt: skip

    ds = Batches(X, Y, 6, w)
    model = regression()
    h_ds = model.fit(ds, epochs=3, shuffle=False, verbose=0).history
    np.testing.assert_allclose(h_ds["loss"], h_arrays["loss"], rtol=1e-6)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert ds.epochs_ended == 3 and ds.seen == [0, 1, 2, 3] * 3

    def gen():
        while True:
            for i in range(0, 24, 6):
                yield X[i : i + 6], Y[i : i + 6], w[i : i + 6]

    model = regression()
    h_gen = model.fit(gen(), steps_per_epoch=4, epochs=3, verbose=0).history
    np.testing.assert_allclose(h_gen["loss"], h_arrays["loss"], rtol=1e-6)


def test_pydataset_shuffle_changes_the_batch_order_not_the_batches():
    ds = Batches(X, Y, 6)
    dlcore.set_random_seed(1)
    regression().fit(ds, epochs=2, shuffle=True, verbose=0)
    assert sorted(ds.seen[:4]) == [0, 1, 2, 3] and sorted(ds.seen[4:]) == [0, 1, 2, 3]
    assert ds.seen[:4] != [0, 1, 2, 3] or ds.seen[4:] != [0, 1, 2, 3]


def test_a_generator_without_steps_is_one_epoch_then_done():
    model = regression()
    history = model.fit(((X[i : i + 8], Y[i : i + 8]) for i in range(0, 24, 8)), epochs=5,
                        verbose=0)  # fmt: skip
    assert len(history.history["loss"]) == 1  # the generator ran out in the first epoch


def test_validation_evaluate_and_predict_take_every_form():
    model = regression()
    ds = Batches(X, Y, 8)
    h = model.fit(X, Y, epochs=2, verbose=0, validation_data=ds)
    assert len(h.history["val_loss"]) == 2
    h = model.fit(X, Y, epochs=1, verbose=0,
                  validation_data=((X[i : i + 4], Y[i : i + 4]) for i in range(0, 24, 4)),
                  validation_steps=3)  # fmt: skip
    assert "val_loss" in h.history
    expected = model.evaluate(X, Y, batch_size=8, verbose=0)
    assert model.evaluate(ds, verbose=0) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(model.predict(ds), model.predict(X), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        model.predict(X[i : i + 5] for i in range(0, 24, 5)), model.predict(X), rtol=1e-5, atol=1e-7
    )


def test_dict_and_list_inputs():
    a, b = dlcore.Input((4,), name="a"), dlcore.Input((2,), name="b")
    out = layers.Dense(1)(layers.Concatenate()([a, b]))
    model = dlcore.Model([a, b], out)
    model.compile(optimizer="sgd", loss="mse")
    xb = RNG.standard_normal((24, 2)).astype(np.float32)
    dlcore.set_random_seed(0)
    w0 = model.get_weights()
    h1 = model.fit({"a": X, "b": xb}, Y, epochs=1, shuffle=False, verbose=0).history
    model.set_weights(w0)
    h2 = model.fit([X, xb], Y, epochs=1, shuffle=False, verbose=0).history
    assert h1 == h2
    with pytest.raises(ValueError, match=r"x has \[24, 23\]|the arrays of x must have the same"):
        model.fit([X, xb[:23]], Y, verbose=0)


def test_class_weight_is_sample_weight_from_the_labels():
    dlcore.set_random_seed(0)
    model = models.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    labels = RNG.integers(0, 3, 24)
    w0 = model.get_weights()
    weights = {0: 2.0, 1: 0.5, 2: 1.0}
    a = model.fit(X, labels, class_weight=weights, shuffle=False, verbose=0).history
    model.set_weights(w0)
    b = model.fit(X, labels, sample_weight=np.array([weights[c] for c in labels]), shuffle=False,
                  verbose=0).history  # fmt: skip
    assert a == b
    onehot = utils.to_categorical(labels, 3)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.set_weights(w0)
    c = model.fit(X, onehot, class_weight=weights, shuffle=False, verbose=0).history
    np.testing.assert_allclose(c["loss"], a["loss"], rtol=1e-6)


def test_misuse_errors():
    model = regression()
    with pytest.raises(ValueError, match="give sample_weight or class_weight, not both"):
        model.fit(X, Y, sample_weight=np.ones(24), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"y must be None when x is a generator"):
        model.fit(iter([(X, Y)]), Y, verbose=0)
    with pytest.raises(ValueError, match=r"batch_size must be None when x is a generator"):
        model.fit(Batches(X, Y, 6), batch_size=6, verbose=0)
    with pytest.raises(ValueError, match=r"steps_per_epoch must be >= 1, got 0"):
        model.fit(Batches(X, Y, 6), steps_per_epoch=0, verbose=0)
    with pytest.raises(ValueError, match="validation_split needs array data"):
        model.fit(Batches(X, Y, 6), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"PyDataset\[\d\] yielded x, y and sample_weight of "
                                         r"different lengths"):  # fmt: skip
        model.fit(Batches(X, Y[:5], 6), verbose=0)
    with pytest.raises(ValueError, match="the generator is exhausted"):
        model.fit(iter([]), verbose=0)
    with pytest.raises(TypeError, match=r"callbacks must be Callback objects.*got 3"):
        model.fit(X, Y, callbacks=[3], verbose=0)


def test_prefetch_runs_ahead_in_a_thread_and_forwards_errors():
    produced = []

    def source():
        for i in range(5):
            produced.append((i, threading.current_thread().name))
            yield i
        raise RuntimeError("source failed")

    it = prefetch(source(), depth=2)
    assert next(it) == 0
    with pytest.raises(RuntimeError, match="source failed"):
        list(it)
    assert {name for _, name in produced} == {"dlcore-data"}

    stopped = prefetch(iter(range(1000)), depth=2)
    assert next(stopped) == 0
    stopped.close()  # the producer thread ends


def test_keras_namespace_forms():
    import dlcore as tf
    from dlcore import keras
    from dlcore.keras.layers import Dense
    from dlcore.keras.optimizers.schedules import ExponentialDecay

    assert tf.keras.layers.Dense is Dense is keras.layers.Dense is layers.Dense
    assert keras.Sequential is models.Sequential and keras.Model is models.Model
    assert ExponentialDecay is dlcore.optimizers.schedules.ExponentialDecay
    assert tf.constant([[1], [2]]).shape == (2, 1)
    for name in ("Sequential", "Model", "Input", "layers", "models", "optimizers", "losses",
                 "metrics", "callbacks", "activations", "initializers", "regularizers",
                 "datasets", "utils"):  # fmt: skip
        assert hasattr(keras, name), name
    with pytest.warns(DeprecationWarning, match=r"SGD\(lr=\.\.\.\) is Keras 2's spelling"):
        opt = keras.optimizers.SGD(lr=0.3)
    assert opt.learning_rate == 0.3
    with pytest.raises(TypeError, match="give learning_rate or its Keras 2 name lr, not both"):
        keras.optimizers.Adam(learning_rate=0.1, lr=0.2)
    np.testing.assert_allclose(utils.normalize([[3.0, 4.0], [0.0, 0.0]]), [[0.6, 0.8], [0, 0]])
