"""The functional API against Keras 3: branches, several inputs and outputs, shared
layers, models as layers — predict and training steps from copied weights — and its
errors, summary and saving."""

import numpy as np
import pytest

import dlcore
from dlcore import layers, models
from keras_parity import OPTIMIZERS, assert_close, copy_weights, keras_module

RNG = np.random.default_rng(0)
X4 = RNG.standard_normal((16, 4)).astype(np.float32)
X3 = RNG.standard_normal((16, 3)).astype(np.float32)


def build_both(builder):
    """builder(lib) builds the same model with lib = dlcore or keras."""
    keras = keras_module()
    return builder(dlcore), builder(keras)


def branches(lib):
    x = lib.Input((4,), name="x")
    a = lib.layers.Dense(6, activation="relu", name="a")(x)
    b = lib.layers.Dense(6, activation="tanh", name="b")(x)
    merged = lib.layers.Add(name="add")([a, b])
    cat = lib.layers.Concatenate(name="cat")([merged, x])
    return lib.Model(inputs=x, outputs=lib.layers.Dense(2, name="out")(cat))


def two_inputs_shared(lib):
    x = lib.Input((4,), name="left")
    z = lib.Input((4,), name="right")
    shared = lib.layers.Dense(5, activation="tanh", name="shared")
    d = lib.layers.Subtract(name="sub")([shared(x), shared(z)])
    m = lib.layers.Multiply(name="mul")([shared(x), d])
    avg = lib.layers.Average(name="avg")([m, d])
    mx = lib.layers.Maximum(name="max")([avg, lib.layers.Minimum(name="min")([m, d])])
    dot = lib.layers.Dot(axes=1, normalize=True, name="dot")([mx, d])
    return lib.Model(inputs=[x, z], outputs=lib.layers.Dense(1, name="out")(
        lib.layers.Concatenate(name="cat")([mx, dot])))  # fmt: skip


def two_outputs(lib, as_dict=False):
    x = lib.Input((4,), name="x")
    h = lib.layers.Dense(8, activation="relu", name="h")(x)
    cls = lib.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = lib.layers.Dense(1, name="reg")(h)
    outputs = {"cls": cls, "reg": reg} if as_dict else [cls, reg]
    return lib.Model(inputs=x, outputs=outputs)


def nested(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(5, activation="relu", name="i1")],
                           name="inner")  # fmt: skip
    x = lib.Input((4,), name="x")
    y = lib.layers.Dense(2, name="head")(inner(x))
    functional = lib.Model(x, y, name="mid")
    return lib.Sequential([lib.Input((4,)), functional, lib.layers.Dense(1, name="top")],
                          name="outer")  # fmt: skip


def train_and_compare(dl, k, x, y, optimizer, loss, steps=3, **compile_kwargs):
    keras = keras_module()
    copy_weights(dl, k)
    assert_close(dl.predict(x, verbose=0), k.predict(x, verbose=0), "predict")
    make_k, make_d = OPTIMIZERS[optimizer]
    k.compile(optimizer=make_k(keras), loss=loss, **compile_kwargs)
    dl.compile(optimizer=make_d(), loss=loss, **compile_kwargs)
    for step in range(steps):
        lk = k.train_on_batch(x, y, return_dict=True)
        ld = dl.train_on_batch(x, y, return_dict=True)
        assert_close({n: ld[n] for n in lk}, lk, f"logs at step {step}", 2e-4, 2e-5)
    assert_close(dl.get_weights(), k.get_weights(), "weights", 2e-4, 2e-5)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_branches_match_keras(optimizer):
    dl, k = build_both(branches)
    assert [l.name for l in dl.layers] == [l.name for l in k.layers]
    y = RNG.standard_normal((16, 2)).astype(np.float32)
    train_and_compare(dl, k, X4, y, optimizer, "mse")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_inputs_and_shared_layers_match_keras(optimizer):
    dl, k = build_both(two_inputs_shared)
    assert [l.name for l in dl.layers] == [l.name for l in k.layers]
    y = RNG.standard_normal((16, 1)).astype(np.float32)
    train_and_compare(dl, k, [X4, X4[::-1].copy()], y, optimizer, "mse")
    # the same inputs by name
    np.testing.assert_array_equal(
        dl.predict({"left": X4, "right": X4[::-1].copy()}, verbose=0),
        dl.predict([X4, X4[::-1].copy()], verbose=0),
    )


@pytest.mark.parametrize("as_dict", [False, True])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_outputs_match_keras(as_dict, optimizer):
    dl, k = build_both(lambda lib: two_outputs(lib, as_dict))
    labels = RNG.integers(0, 3, 16)
    target = RNG.standard_normal((16, 1)).astype(np.float32)
    if as_dict:
        y = {"cls": labels, "reg": target}
        loss = {"cls": "sparse_categorical_crossentropy", "reg": "mse"}
        kwargs = dict(loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]})
    else:
        y = [labels, target]
        loss = ["sparse_categorical_crossentropy", "mse"]
        kwargs = dict(loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    train_and_compare(dl, k, X4, y, optimizer, loss, **kwargs)


def test_models_as_layers_match_keras():
    dl, k = build_both(nested)
    assert [w.shape for w in dl.get_weights()] == [w.shape for w in k.get_weights()]
    train_and_compare(dl, k, X4, RNG.standard_normal((16, 1)).astype(np.float32), "adam", "mse")


def test_weighted_fits_match_keras():
    keras = keras_module()
    labels = RNG.integers(0, 3, 16)
    for kw in (
        dict(sample_weight=RNG.uniform(0.1, 2.0, 16).astype(np.float32)),
        dict(class_weight={0: 0.5, 1: 2.0, 2: 1.0}),
    ):
        dl, k = build_both(lambda lib: lib.Model(*_classifier(lib)))
        copy_weights(dl, k)
        for m, lib in ((dl, dlcore), (k, keras)):
            m.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                      weighted_metrics=["accuracy"])  # fmt: skip
        args = dict(epochs=2, batch_size=5, shuffle=False, verbose=0, **kw)
        hk = k.fit(X4, labels, **args).history
        hd = dl.fit(X4, labels, **args).history
        assert_close({n: hd[n] for n in hk}, hk, f"history with {sorted(kw)}", 2e-4, 2e-5)
        assert_close(dl.get_weights(), k.get_weights(), "weights", 2e-4, 2e-5)


def _classifier(lib):
    x = lib.Input((4,))
    return x, lib.layers.Dense(3, activation="softmax")(lib.layers.Dense(6, activation="relu")(x))


def test_generator_fed_fit_matches_keras():
    keras = keras_module()
    labels = RNG.integers(0, 3, 16)

    def batches():
        while True:
            for i in range(0, 16, 4):
                yield X4[i : i + 4], labels[i : i + 4]

    dl, k = build_both(lambda lib: lib.Model(*_classifier(lib)))
    copy_weights(dl, k)
    for m, lib in ((dl, dlcore), (k, keras)):
        m.compile(optimizer=lib.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # fmt: skip
    hk = k.fit(batches(), steps_per_epoch=4, epochs=3, verbose=0, shuffle=False).history
    hd = dl.fit(batches(), steps_per_epoch=4, epochs=3, verbose=0).history
    assert_close({n: hd[n] for n in hk}, hk, "history", 2e-4, 2e-5)
    assert_close(dl.get_weights(), k.get_weights(), "weights", 2e-4, 2e-5)


# ---------------------------------------------------------------- structure


def test_get_layer_layers_and_summary_connections():
    model = two_inputs_shared(dlcore)
    assert model.get_layer("shared").units == 5
    assert model.get_layer(index=0).name == "left"
    with pytest.raises(ValueError, match=r"no layer named 'nope'.*'shared'"):
        model.get_layer("nope")
    lines = []
    model.summary(print_fn=lines.append)
    assert "Connected to" in lines[2]
    shared = next(line for line in lines if line.startswith("shared (Dense)"))
    assert "left[0][0], right[0][0]" in shared and "multiple" in shared
    sub = next(line for line in lines if line.startswith("sub (Subtract)"))
    assert "shared[0][0], shared[1][0]" in sub


def test_save_and_load_functional(tmp_path):
    model = two_outputs(dlcore, as_dict=True)
    model.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"]})  # fmt: skip
    y = {"cls": RNG.integers(0, 3, 16), "reg": RNG.standard_normal((16, 1))}
    model.fit(X4, y, epochs=1, verbose=0)
    model.save(tmp_path / "f.dlc")
    loaded = models.load_model(tmp_path / "f.dlc")
    assert isinstance(loaded, models.Functional)
    for key in ("cls", "reg"):
        np.testing.assert_array_equal(loaded.predict(X4)[key], model.predict(X4)[key])
    a = model.fit(X4, y, epochs=1, verbose=0, shuffle=False).history
    b = loaded.fit(X4, y, epochs=1, verbose=0, shuffle=False).history
    assert a == b  # the optimizer state travelled


def test_subclassed_call_with_or_without_training():
    class NoTraining(models.Model):
        def __init__(self):
            super().__init__()
            self.blocks = [layers.Dense(3), layers.Dropout(0.5)]  # tracked inside a list

        def call(self, x):
            for block in self.blocks:
                x = block(x)  # Dropout sees fit's training=True through the call context
            return x

    model = NoTraining()
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X4, np.zeros((16, 3)), epochs=1, verbose=0)
    assert len(model.trainable_weights) == 2
    np.testing.assert_array_equal(model.predict(X4), model.predict(X4))  # no dropout
    train_out = model(X4, training=True).numpy()
    assert (train_out == 0).mean() > 0.2  # dropout in training


# ---------------------------------------------------------------- errors


def test_construction_errors_name_what_is_wrong():
    x = dlcore.Input((4,), name="x")
    other = dlcore.Input((4,), name="other")
    y = layers.Add()([layers.Dense(3)(x), layers.Dense(3)(other)])
    with pytest.raises(ValueError, match=r"depend on Input 'other'.*add it to inputs"):
        dlcore.Model(inputs=x, outputs=y)
    with pytest.raises(
        ValueError, match=r"Add layer must have the same shape.*\(None, 3\).*\(None, 2\)"
    ):
        layers.Add()([layers.Dense(3)(x), layers.Dense(2)(x)])
    with pytest.raises(ValueError, match=r"Concatenate\(axis=-1\) needs the other dimensions"):
        layers.Concatenate()([dlcore.Input((2, 3)), dlcore.Input((4, 3))])
    with pytest.raises(TypeError, match="must be KerasTensors"):
        dlcore.Model(inputs=x, outputs=np.zeros(3))
    with pytest.raises(TypeError, match="combined with layers"):
        x + x


def test_data_errors_name_what_is_wrong():
    model = two_outputs(dlcore, as_dict=True)
    with pytest.raises(ValueError, match=r"loss keys \['klass'\] name no output.*\['cls', 'reg'\]"):
        model.compile(optimizer="sgd", loss={"klass": "mse"})
    model.compile(optimizer="sgd", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"})
    with pytest.raises(ValueError, match=r"y keys \['regr'\] name no output"):
        model.fit(X4, {"cls": np.zeros(16), "regr": np.zeros((16, 1))}, verbose=0)
    two = two_inputs_shared(dlcore)
    with pytest.raises(ValueError, match=r"inputs \['lft'\] name no input.*\['left', 'right'\]"):
        two.predict({"lft": X4, "right": X4})
    with pytest.raises(ValueError, match=r"input 'right' expects shape \(None, 4\).*\(16, 3\)"):
        two.predict([X4, X3])

    clf = dlcore.Model(*_classifier(dlcore))
    clf.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(
        ValueError, match=r"class_weight names class 5, but the model has 3 classes"
    ):
        clf.fit(X4, np.zeros(16), class_weight={0: 1.0, 5: 2.0}, verbose=0)

    def bad():
        while True:
            yield (X4,)

    with pytest.raises(ValueError, match=r"generator yielded tuple of 1 items; expected \(x, y\)"):
        clf.fit(bad(), steps_per_epoch=2, verbose=0)


def test_model_from_config_json_and_clone(rng):
    from dlcore import layers, models

    inp = layers.Input((4,))
    out = layers.Dense(2, name="out")(layers.Dense(3, name="hidden")(inp))
    m = models.Model(inp, out)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    for rebuilt in (models.Model.from_config(m.get_config()),
                    models.model_from_json(m.to_json()), models.clone_model(m)):  # fmt: skip
        assert type(rebuilt) is type(m) and [l.name for l in rebuilt.layers] == [
            l.name for l in m.layers
        ]
        assert not np.allclose(rebuilt.get_weights()[0], m.get_weights()[0])  # new weights
        rebuilt.set_weights(m.get_weights())
        np.testing.assert_array_equal(rebuilt.predict(x, verbose=0), m.predict(x, verbose=0))
    seq = models.Sequential([layers.Input((4,)), layers.Dense(3), layers.Dense(1)])
    wide = models.clone_model(
        seq, clone_function=lambda l: layers.Dense(l.units * 2) if l.units == 3 else
        type(l).from_config(l.get_config()))  # fmt: skip
    assert [l.units for l in wide.layers] == [6, 1] and wide.built
    with pytest.raises(ValueError, match="not a JSON model description"):
        models.model_from_json("{nope")
    with pytest.raises(ValueError, match="describes a Dense, not a model"):
        models.model_from_json('{"class_name": "Dense", "config": {"units": 2}}')
    with pytest.raises(NotImplementedError, match="clone_function"):
        models.clone_model(m, clone_function=lambda l: l)


def test_save_model_function(tmp_path):
    from dlcore import layers, models

    m = models.Sequential([layers.Input((3,)), layers.Dense(2)])
    models.save_model(m, tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        models.save_model(m, tmp_path / "m.keras", overwrite=False)
    loaded = models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.get_weights()[0], m.get_weights()[0])


def test_a_sequential_models_graph_makes_a_feature_extractor(rng):
    """The Keras guide's recipe: Model(inputs=seq.inputs, outputs=[l.output for l in
    seq.layers])."""
    seq = models.Sequential([layers.Input((6,)), layers.Dense(5, activation="relu", name="a"),
                             layers.Dense(4, name="b"), layers.Dense(2, name="c")])  # fmt: skip
    extractor = models.Model(inputs=seq.inputs, outputs=[l.output for l in seq.layers])
    x = rng.standard_normal((3, 6)).astype(np.float32)
    feats = extractor.predict(x, verbose=0)
    assert [f.shape for f in feats] == [(3, 5), (3, 4), (3, 2)]
    np.testing.assert_allclose(feats[-1], seq.predict(x, verbose=0), rtol=1e-6)
    mid = models.Model(seq.input, seq.get_layer("b").output)
    np.testing.assert_allclose(mid.predict(x, verbose=0), feats[1], rtol=1e-6)
    assert seq.output is seq.outputs[0] and seq.layers[0].input is seq.input
    # a layer added afterwards: the graph is made again for the new stack
    seq.add(layers.Dense(1, name="d"))
    longer = models.Model(seq.inputs, seq.layers[-1].output)
    assert longer.predict(x, verbose=0).shape == (3, 1)
    np.testing.assert_allclose(longer.predict(x, verbose=0), seq.predict(x, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="built with a known input shape"):
        _ = models.Sequential([layers.Dense(2)]).inputs
    with pytest.raises(ValueError, match="never was"):
        _ = layers.Dense(2).output


def test_dict_inputs_and_outputs_take_keras_sorted_order(rng, tmp_path):
    keras = keras_module()

    def build(lib, model_cls, inp):
        b, a = inp((3,), name="b_in"), inp((2,), name="a_in")
        h = lib.Dense(4, name="h")(lib.Concatenate()([b, a]))
        outs = {"zz": lib.Dense(1, name="zz_out")(h), "aa": lib.Dense(2, name="aa_out")(h)}
        return model_cls({"b_in": b, "a_in": a}, outs)

    km = build(keras.layers, keras.Model, keras.Input)
    dm = build(layers, models.Model, layers.Input)
    assert [w.shape for w in dm.get_weights()] == [w.shape for w in km.get_weights()]
    dm.set_weights(km.get_weights())
    assert dm.output_names == ["aa", "zz"] and [t.name for t in dm.inputs] == ["a_in", "b_in"]
    x = {"b_in": rng.standard_normal((5, 3)).astype(np.float32),
         "a_in": rng.standard_normal((5, 2)).astype(np.float32)}  # fmt: skip
    y = {"zz": rng.standard_normal((5, 1)).astype(np.float32),
         "aa": rng.standard_normal((5, 2)).astype(np.float32)}  # fmt: skip
    kp, dp = km.predict(x, verbose=0), dm.predict(x, verbose=0)
    for k in ("aa", "zz"):
        np.testing.assert_allclose(dp[k], kp[k], rtol=1e-5, atol=1e-6)
    for loss in ({"zz": "mse", "aa": "mae"}, {"aa": "mae", "zz": "mse"}):  # Keras' list order
        km.compile(optimizer="sgd", loss=loss, metrics={"zz": ["mae"], "aa": ["mse"]})
        dm.compile(optimizer="sgd", loss=loss, metrics={"zz": ["mae"], "aa": ["mse"]})
        np.testing.assert_allclose(dm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0),
                                   rtol=1e-5)  # fmt: skip
    km.save(tmp_path / "k.keras")
    loaded = models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0)["zz"], kp["zz"], rtol=1e-5, atol=1e-6)
    dm.save(tmp_path / "d.keras")
    back = keras.models.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0)["aa"], dp["aa"], rtol=1e-5, atol=1e-6)
