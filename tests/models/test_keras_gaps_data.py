"""What fit / evaluate / predict take and call, against Keras 3: generators and
PyDatasets of empty batches (an error, never a loss of 0), x as a list of one array, a
finite validation generator read in every epoch, the logs and the order of the callback
hooks (fit's validation, evaluate's and predict's callbacks), and inputs lacking or
carrying a trailing axis of size 1 (Keras' Functional._adjust_input_rank)."""

import warnings

import numpy as np
import pytest

import dlcore
from dlcore import callbacks, layers, models, utils
from keras_parity import assert_close, copy_weights, keras_module

RNG = np.random.default_rng(7)
X = RNG.standard_normal((12, 4)).astype(np.float32)
LABELS = RNG.integers(0, 3, 12)
IMAGES = RNG.random((6, 5, 5)).astype(np.float32)
TARGETS = RNG.standard_normal((6, 2)).astype(np.float32)


def classifier(lib):
    model = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    return model


def both(builder):
    """The same model in dlcore and in Keras, with Keras' weights copied into dlcore's."""
    keras = keras_module()
    dl_model, k_model = builder(dlcore), builder(keras)
    copy_weights(dl_model, k_model)
    return dl_model, k_model


def quietly(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on Keras' side: its own warnings (a generator's shuffle, a
    list for one input) are not under test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def generator(batches):
    """A Python generator (Keras takes no other iterator) of ``batches``."""
    yield from batches


class Batches(utils.PyDataset):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]


# ---------------------------------------------------------------- empty batches

EMPTY = (X[:0], LABELS[:0])


@pytest.mark.parametrize("source", ["PyDataset", "generator"])
@pytest.mark.parametrize("call", ["fit", "evaluate", "predict"])
def test_batches_that_are_all_empty_are_data_without_samples(source, call):
    model = classifier(dlcore)
    batches = [EMPTY, EMPTY] if call != "predict" else [(X[:0],), (X[:0],)]
    data = Batches(batches) if source == "PyDataset" else iter(batches)
    run = {"fit": lambda: model.fit(data, verbose=0),
           "evaluate": lambda: model.evaluate(data, verbose=0),
           "predict": lambda: model.predict(data, verbose=0)}[call]  # fmt: skip
    where = f"{call}: the {source} yielded only empty batches"
    with pytest.raises(ValueError, match=f"{where}.*has no samples"):
        run()


def test_empty_validation_batches_name_validation_data():
    model = classifier(dlcore)
    with pytest.raises(ValueError, match=r"fit: validation_data: the generator yielded only "
                                         r"empty batches: the data has no samples"):  # fmt: skip
        model.fit(X, LABELS, validation_data=iter([EMPTY]), verbose=0)


def test_an_empty_batch_among_others_counts_for_nothing():
    model = classifier(dlcore)
    expected = model.evaluate(X, LABELS, batch_size=6, verbose=0)
    batches = [(X[:6], LABELS[:6]), EMPTY, (X[6:], LABELS[6:])]
    np.testing.assert_allclose(model.evaluate(iter(batches), verbose=0), expected, rtol=1e-6)
    out = model.predict(iter([(X[:5],), (X[:0],), (X[5:],)]), verbose=0)
    np.testing.assert_allclose(out, model.predict(X, verbose=0), rtol=1e-6)


# ---------------------------------------------------------------- x as a list of one


@pytest.mark.parametrize("functional", [False, True])
def test_a_list_of_one_array_is_the_one_input_as_in_keras(functional):
    def build(lib):
        if functional:
            inp = lib.Input((4,))
            model = lib.Model(inp, lib.layers.Dense(3, activation="softmax")(inp))
            model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
            return model
        return classifier(lib)

    dl_model, k_model = both(build)
    fit = dict(epochs=2, batch_size=4, shuffle=False, verbose=0, validation_data=([X], LABELS))
    batches = [([X[:6]], LABELS[:6]), ([X[6:]], LABELS[6:])]
    for call, make_args, kwargs in [
        ("predict", lambda: ([X],), dict(verbose=0)),
        ("evaluate", lambda: ([X], LABELS), dict(verbose=0)),
        ("predict_on_batch", lambda: ([X],), {}),
        ("test_on_batch", lambda: ([X], LABELS), {}),
        ("fit", lambda: ([X], LABELS), fit),
        ("train_on_batch", lambda: ([X], LABELS), {}),
        ("fit", lambda: (generator(batches),), dict(verbose=0)),
    ]:
        expected = quietly(getattr(k_model, call), *make_args(), **kwargs)
        out = getattr(dl_model, call)(*make_args(), **kwargs)
        if call == "fit":
            out, expected = out.history, expected.history
        assert_close(out, expected, f"{call}([x])")


def test_several_arrays_for_one_input_are_an_error_naming_x():
    model = classifier(dlcore)
    with pytest.raises(ValueError, match=r"predict: sequential\w* has one input, so x must be "
                                         r"one array \(or a list of one\); got a list of 2"):  # fmt: skip
        model.predict([X, X], verbose=0)
    with pytest.raises(ValueError, match=r"fit: .* has one input.*got a dict of 1"):
        model.fit({"x": X}, LABELS, verbose=0)
    with pytest.raises(ValueError, match=r"fit: validation_data: .* has one input.*list of 2"):
        model.fit(X, LABELS, validation_data=([X, X], LABELS), verbose=0)


# ---------------------------------------------------------------- a finite validation generator


@pytest.mark.parametrize("n_batches", [1, 2])
def test_a_finite_validation_generator_is_validated_on_in_every_epoch_as_in_keras(n_batches):
    """Keras keeps the first two batches of a generator and reads them again once it is
    exhausted: with one or two batches every epoch's val_loss is recomputed on the same
    data (not repeated, not skipped), and the fit completes."""
    dl_model, k_model = both(classifier)

    def fit(model):
        train = ((X, LABELS) for _ in range(100))
        val = ((X[3 * i : 3 * i + 3], LABELS[3 * i : 3 * i + 3]) for i in range(n_batches))
        return model.fit(train, steps_per_epoch=2, epochs=3, validation_data=val,
                         verbose=0).history  # fmt: skip

    with pytest.warns(RuntimeWarning, match=r"fit: validation_data: the generator ran out of "
                                             r"batches; this epoch validates again"):  # fmt: skip
        history = fit(dl_model)
    expected = quietly(lambda: fit(k_model))
    assert_close(history, expected, "history")
    assert len(set(history["val_loss"])) == 3  # recomputed with each epoch's weights


def test_every_epoch_validates_on_the_whole_first_pass_of_a_longer_generator():
    """From three batches on Keras' later epochs see only the two it kept; here each
    epoch's val_loss is that of all the validation data, as evaluate gives it."""
    model = classifier(dlcore)
    expected = []
    check = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: expected.append(model.evaluate(X, LABELS, verbose=0))
    )
    val = ((X[i : i + 4], LABELS[i : i + 4]) for i in (0, 4, 8))
    with pytest.warns(RuntimeWarning, match="validates again on the 3 its first pass gave"):
        history = model.fit(X, LABELS, epochs=3, batch_size=6, validation_data=val, verbose=0,
                            callbacks=[check]).history  # fmt: skip
    np.testing.assert_allclose(history["val_loss"], [e[0] for e in expected], rtol=1e-6)
    np.testing.assert_allclose(history["val_accuracy"], [e[1] for e in expected], rtol=1e-6)


def test_a_validation_generator_read_once_is_neither_kept_nor_replayed():
    model = classifier(dlcore)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(X, LABELS, epochs=2, validation_freq=2, verbose=0,
                            validation_data=iter([(X, LABELS)])).history  # fmt: skip
    assert len(history["val_loss"]) == 1
    with pytest.raises(ValueError, match="evaluate: the generator is exhausted"):
        gen = iter([(X, LABELS)])
        model.evaluate(gen, verbose=0)
        model.evaluate(gen, verbose=0)


# ---------------------------------------------------------------- callback hooks


class Recorder:
    """A Callback subclass (of lib's Callback) that records every hook with its
    arguments: batch and epoch indices, the keys of the logs and the logs of the ends."""

    HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
             "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
             "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
             "on_predict_batch_begin", "on_predict_batch_end")  # fmt: skip

    @classmethod
    def make(cls, lib):
        events = []

        def hook(name):
            def record(self, *args, logs="missing"):
                *index, logs = (*args, logs) if logs != "missing" else args
                events.append((name, *index, logs))

            return record

        recorder = type("Recorder", (lib.callbacks.Callback,), {h: hook(h) for h in cls.HOOKS})
        return recorder(), events


def shapes_of(events):
    """The events with each dict of logs as its sorted keys (values differ by weights)."""
    return [(*e[:-1], sorted(e[-1]) if isinstance(e[-1], dict) else e[-1]) for e in events]


def test_fit_calls_the_hooks_in_keras_order_with_dicts_and_validates_through_on_test():
    keras = keras_module()
    runs = {}
    for lib in (dlcore, keras):
        model = classifier(lib)
        recorder, events = Recorder.make(lib)
        history = quietly(model.fit, X, LABELS, epochs=2, batch_size=5, verbose=0,
                          validation_split=0.25, callbacks=[recorder])  # fmt: skip
        runs[lib] = events, history.history
    events, history = runs[dlcore]
    assert shapes_of(events) == shapes_of(runs[keras][0])
    assert events[0] == ("on_train_begin", {})
    assert ("on_epoch_begin", 0, {}) in events
    assert events[-1] == ("on_train_end", {k: v[-1] for k, v in history.items()})
    test_end = [e for e in events if e[0] == "on_test_end"]
    assert test_end[-1][1] == {k[4:]: v[-1] for k, v in history.items() if k.startswith("val_")}


def test_fit_with_no_epoch_to_run_ends_with_empty_logs():
    recorder, events = Recorder.make(dlcore)
    classifier(dlcore).fit(X, LABELS, epochs=1, initial_epoch=1, verbose=0, callbacks=[recorder])
    assert events == [("on_train_begin", {}), ("on_train_end", {})]


def test_evaluate_and_predict_call_their_hooks_as_keras_does():
    dl_model, k_model = both(classifier)
    for call in ("evaluate", "predict"):
        runs = []
        for lib, model in ((dlcore, dl_model), (keras_module(), k_model)):
            recorder, events = Recorder.make(lib)
            args = (X, LABELS) if call == "evaluate" else (X,)
            out = quietly(getattr(model, call), *args, batch_size=5, verbose=0,
                          callbacks=[recorder])  # fmt: skip
            runs.append((events, out, recorder.params))
        (events, out, params), (k_events, k_out, k_params) = runs
        assert shapes_of(events) == shapes_of(k_events), call
        assert params == k_params == {"verbose": 0, "epochs": 1, "steps": 3}
        assert_close(out, k_out, call)
        ends = [e[-1] for e in events if e[0].endswith("batch_end")]
        k_ends = [e[-1] for e in k_events if e[0].endswith("batch_end")]
        assert_close(ends, k_ends, f"{call}'s batch logs")
    outputs = np.concatenate([logs["outputs"] for logs in ends])
    np.testing.assert_array_equal(outputs, dl_model.predict(X, verbose=0))
    assert events[-1] == ("on_predict_end", {})


def test_callbacks_of_evaluate_and_predict_are_checked():
    model = classifier(dlcore)
    with pytest.raises(TypeError, match=r"evaluate: callbacks must be Callback objects.*got 3"):
        model.evaluate(X, LABELS, verbose=0, callbacks=[3])
    with pytest.raises(TypeError, match=r"predict: callbacks must be a list of Callback objects"):
        model.predict(X, verbose=0, callbacks=callbacks.History())
    recorder, events = Recorder.make(dlcore)
    model.predict(iter([(X[:5],), (X[5:],)]), verbose=0, callbacks=[recorder])
    assert [e[:2] for e in events if e[0] == "on_predict_batch_end"] == [
        ("on_predict_batch_end", 0),
        ("on_predict_batch_end", 1),
    ]
    assert recorder.params["steps"] is None  # a generator's length is not known


# ---------------------------------------------------------------- input rank


def images(lib, functional=False):
    layers_ = [lib.layers.Conv2D(2, 3, activation="relu"), lib.layers.Flatten(),
               lib.layers.Dense(2)]  # fmt: skip
    if functional:
        inp = x = lib.Input((5, 5, 1))
        for layer in layers_:
            x = layer(x)
        model = lib.Model(inp, x)
    else:
        model = lib.Sequential([lib.Input((5, 5, 1)), *layers_])
    model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.05), loss="mse")
    return model


@pytest.mark.parametrize("functional", [False, True])
def test_images_without_their_channel_axis_get_it_as_in_keras(functional):
    dl_model, k_model = both(lambda lib: images(lib, functional))
    assert_close(dl_model.predict(IMAGES, verbose=0), k_model.predict(IMAGES, verbose=0),
                 "predict((N, 5, 5))")  # fmt: skip
    assert_close(dl_model.evaluate(IMAGES, TARGETS, verbose=0),
                 k_model.evaluate(IMAGES, TARGETS, verbose=0), "evaluate((N, 5, 5))")  # fmt: skip
    fit = dict(epochs=2, batch_size=3, shuffle=False, verbose=0,
               validation_data=(IMAGES[..., None], TARGETS))  # fmt: skip
    assert_close(dl_model.fit(IMAGES, TARGETS, **fit).history,
                 k_model.fit(IMAGES, TARGETS, **fit).history, "fit((N, 5, 5))")  # fmt: skip
    assert_close(dl_model.train_on_batch(IMAGES, TARGETS),
                 k_model.train_on_batch(IMAGES, TARGETS), "train_on_batch")  # fmt: skip
    batches = [(IMAGES[:3], TARGETS[:3]), (IMAGES[3:], TARGETS[3:])]
    assert_close(dl_model.fit(generator(batches), verbose=0).history,
                 quietly(lambda: k_model.fit(generator(batches), verbose=0).history),
                 "fit(generator of (n, 5, 5))")  # fmt: skip
    assert_close(dl_model.predict_on_batch(IMAGES[..., None, None]),
                 k_model.predict_on_batch(IMAGES[..., None, None]), "(N, 5, 5, 1, 1)")  # fmt: skip


def test_a_trailing_axis_of_size_one_goes_or_comes_for_vectors_too():
    def build(lib):
        inp = lib.Input((4,), name="v")
        one = lib.Input((1,), name="s")
        out = lib.layers.Dense(2)(lib.layers.Concatenate()([inp, one]))
        model = lib.Model([inp, one], out)
        model.compile(optimizer="sgd", loss="mse")
        return model

    dl_model, k_model = both(build)
    given = {"v": X[:6, :, None], "s": X[:6, 0]}  # (N, 4, 1) for (4,), (N,) for (1,)
    assert_close(dl_model.predict(given, verbose=0), k_model.predict(given, verbose=0), "dict")
    assert_close(dl_model.predict([X[:6], X[:6, :1]], verbose=0),
                 k_model.predict([X[:6], X[:6, :1]], verbose=0), "as declared")  # fmt: skip


@pytest.mark.parametrize(
    "x,shape",
    [
        (np.ones((6, 5, 5, 2), np.float32), r"\(6, 5, 5, 2\)"),  # another channel count
        (np.ones((6, 4, 5), np.float32), r"\(6, 4, 5\)"),  # an axis of another size
        (np.ones((6, 25), np.float32), r"\(6, 25\)"),  # two axes short
        (np.ones((6, 5, 5, 1, 2), np.float32), r"\(6, 5, 5, 1, 2\)"),  # extra axis not of 1
    ],
)
def test_other_shapes_are_still_refused_with_the_shape_given(x, shape):
    model = images(dlcore)
    with pytest.raises(ValueError, match=rf"expected inputs of shape \(None, 5, 5, 1\).*{shape}"):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=rf"expected inputs of shape.*{shape}"):
        model.fit(x, TARGETS, verbose=0)


def test_a_subclassed_model_takes_its_inputs_as_given():
    class Net(models.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Net()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, TARGETS[:1].repeat(12, 0), verbose=0)
    with pytest.raises(ValueError, match=r"got an array of shape \(12, 4, 1\)"):
        model.predict(X[..., None], verbose=0)


def test_a_model_without_trainable_weights_fits_as_in_keras():
    i = layers.Input((3,))
    frozen = layers.Dense(2, trainable=False)
    for model in (dlcore.Model(i, layers.Activation("relu")(i)),
                  dlcore.Sequential([layers.Input((3,)), frozen])):  # fmt: skip
        model.compile(optimizer="sgd", loss="mse")
        before = [w.copy() for w in model.get_weights()]
        x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
        y = np.ones((4, model.output_shape[-1]), np.float32)
        history = model.fit(x, y, epochs=2, verbose=0).history
        assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
        for a, b in zip(before, model.get_weights()):
            np.testing.assert_array_equal(a, b)
