"""The recurrent family against Keras 3 from copied weights: LSTM, GRU, SimpleRNN,
Bidirectional, TimeDistributed and Masking, masks included — predict and training
steps; then float64 gradients through the layers, odd shapes, bad arguments, saving."""

import numpy as np
import pytest

import dlcore
from dlcore import layers
from gradcheck import check_tensor_op
from keras_parity import assert_close, assert_layer_matches_keras, assert_models_match, keras_module

RNNS = {
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
    "gru_reset_before": ("GRU", {"reset_after": False}),
    "simple_rnn": ("SimpleRNN", {}),
    "simple_rnn_relu": ("SimpleRNN", {"activation": "relu"}),
}


def rnn(module, which, units=5, **kwargs):
    """The recurrent layer `which` of RNNS from `module` (dlcore.layers or keras.layers)."""
    cls, options = RNNS[which]
    return getattr(module, cls)(units, **options, **kwargs)


def padded(rng, N=6, T=7, F=3, value=0.0):
    """A float batch (N, T, F) whose sequences end in padding steps equal to `value`,
    of random lengths (one sequence all padding, one with none), and one padding step
    inside a sequence."""
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    lengths = rng.integers(1, T, N)
    lengths[0], lengths[-1] = T, 0
    x[np.arange(T)[None, :] >= lengths[:, None]] = value
    x[1, 1] = value
    return x


# Keras warns when a Flatten ends a mask, which the masked training tests do on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")


@pytest.fixture
def x_seq():
    return np.random.default_rng(3).standard_normal((5, 6, 4)).astype(np.float32)


# ------------------------------------------------------------------ against Keras


@pytest.mark.parametrize("which", RNNS)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize(
    "options",
    [dict(), dict(return_sequences=True), dict(go_backwards=True, return_sequences=True),
     dict(go_backwards=True), dict(use_bias=False, return_sequences=True)],
)  # fmt: skip
def test_rnn_matches_keras(x_seq, which, optimizer, options):
    assert_layer_matches_keras(
        lambda: rnn(layers, which, **options),
        lambda k: rnn(k.layers, which, **options),
        x_seq,
        optimizer=optimizer,
    )


@pytest.mark.parametrize("which", RNNS)
@pytest.mark.parametrize("options", [dict(), dict(return_sequences=True),
                                     dict(return_sequences=True, go_backwards=True)])  # fmt: skip
def test_rnn_masked_matches_keras(which, options):
    """Masking(0) before the layer: masked steps carry the state, and with
    return_sequences output it, as Keras does. (A Flatten ends the mask, so every output
    counts in the loss; the loss masking has its own test below.)"""
    keras = keras_module()
    x = padded(np.random.default_rng(4))

    def build(module):
        return [module.Masking(), rnn(module, which, **options), module.Flatten()]

    k_model = keras.Sequential([keras.Input(x.shape[1:]), *build(keras.layers)])
    d_model = dlcore.models.Sequential(build(layers))
    d_model.build((None, *x.shape[1:]))
    y = np.random.default_rng(5).standard_normal(k_model.predict(x, verbose=0).shape)
    assert_models_match(d_model, k_model, x, y.astype(np.float32), optimizer="adam")


@pytest.mark.parametrize("which", RNNS)
def test_masked_sequence_loss_is_the_mean_over_real_steps_as_in_keras(which):
    """return_sequences output with a mask and no Flatten: the loss weighs padded steps
    0 and averages over the real ones, as Keras' loss masking does (compile's loss and
    the training steps from copied weights)."""
    keras = keras_module()
    x = padded(np.random.default_rng(14))

    def build(module):
        return [module.Masking(), rnn(module, which, return_sequences=True), module.Dense(2)]

    k_model = keras.Sequential([keras.Input(x.shape[1:]), *build(keras.layers)])
    d_model = dlcore.models.Sequential(build(layers))
    d_model.build((None, *x.shape[1:]))
    y = np.random.default_rng(15).standard_normal((*x.shape[:2], 2)).astype(np.float32)
    assert_models_match(d_model, k_model, x, y, optimizer="adam")
    # the padded steps' targets do not matter
    y2 = y.copy()
    y2[(x == 0).all(axis=-1)] = 100.0
    assert d_model.evaluate(x, y2, verbose=0) == pytest.approx(d_model.evaluate(x, y, verbose=0))


@pytest.mark.parametrize("which", ["lstm", "gru", "simple_rnn"])
def test_rnn_return_state_and_initial_state_match_keras(which):
    """return_state's states and initial_state, through functional models."""
    keras = keras_module()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    n_states = 2 if which == "lstm" else 1
    states = [rng.standard_normal((4, 5)).astype(np.float32) for _ in range(n_states)]

    def build(lib, module):
        inputs = [lib.Input((5, 3))] + [lib.Input((5,)) for _ in range(n_states)]
        out = rnn(module, which, return_sequences=True, return_state=True)(
            inputs[0], initial_state=inputs[1:]
        )
        return lib.Model(inputs, out)

    k_model, d_model = build(keras, keras.layers), build(dlcore, layers)
    d_model.set_weights(k_model.get_weights())
    assert_close(d_model.predict([x, *states], verbose=0), k_model.predict([x, *states], verbose=0),
                 "predict")  # fmt: skip


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("which", ["lstm", "gru", "simple_rnn"])
def test_bidirectional_matches_keras(x_seq, merge_mode, which):
    assert_layer_matches_keras(
        lambda: layers.Bidirectional(rnn(layers, which, return_sequences=True), merge_mode),
        lambda k: k.layers.Bidirectional(rnn(k.layers, which, return_sequences=True), merge_mode),
        x_seq,
        optimizer="adam",
    )


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("which", ["lstm", "gru_reset_before"])
def test_bidirectional_masked_matches_keras(return_sequences, which):
    """The backward layer meets the padding first; with return_sequences Keras makes
    both layers output zeros at masked steps."""
    keras = keras_module()
    x = padded(np.random.default_rng(7))

    def build(lib, module):
        inner = rnn(module, which, return_sequences=return_sequences)
        return [module.Masking(), module.Bidirectional(inner), module.Dense(2), module.Flatten()]

    k_model = keras.Sequential([keras.Input(x.shape[1:]), *build(keras, keras.layers)])
    d_model = dlcore.models.Sequential(build(dlcore, layers))
    d_model.build((None, *x.shape[1:]))
    y = np.random.default_rng(8).standard_normal(k_model.predict(x, verbose=0).shape)
    assert_models_match(d_model, k_model, x, y.astype(np.float32), optimizer="adam")


def test_bidirectional_return_state_and_merge_none_match_keras():
    keras = keras_module()
    x = np.random.default_rng(9).standard_normal((3, 5, 4)).astype(np.float32)

    def build(lib, module):
        inp = lib.Input((5, 4))
        outs = module.Bidirectional(module.LSTM(3, return_state=True), merge_mode=None)(inp)
        return lib.Model(inp, outs)

    k_model, d_model = build(keras, keras.layers), build(dlcore, layers)
    d_model.set_weights(k_model.get_weights())
    got, want = d_model.predict(x, verbose=0), k_model.predict(x, verbose=0)
    assert len(got) == len(want) == 6  # y, y_rev, h, c forward, h, c backward
    assert_close(got, want, "predict")


@pytest.mark.parametrize(
    "make", [lambda m: m.Dense(3, activation="tanh"), lambda m: m.Conv2D(2, 3, padding="same")]
)
def test_time_distributed_matches_keras(make):
    rng = np.random.default_rng(10)
    x = rng.standard_normal(
        (3, 4, 6) if make(layers).__class__.__name__ == "Dense" else (3, 4, 5, 5, 2)
    )
    assert_layer_matches_keras(
        lambda: layers.TimeDistributed(make(layers)),
        lambda k: k.layers.TimeDistributed(make(k.layers)),
        x.astype(np.float32),
        optimizer="adam",
    )


def test_masking_matches_keras_and_passes_its_mask():
    keras = keras_module()
    x = padded(np.random.default_rng(11), value=-1.0)
    x[0, 3, 1] = -1.0  # one feature of a step equal to mask_value does not mask it
    k_mask = keras.layers.Masking(-1.0)
    np.testing.assert_array_equal(layers.Masking(-1.0)(x).numpy(), np.asarray(k_mask(x)))
    got = layers.get_mask(layers.Masking(-1.0)(x))
    np.testing.assert_array_equal(got, np.asarray(k_mask.compute_mask(x)))
    assert got[0, 3] and not got[1, 1] and not got[-1].any()


def test_stacked_masked_model_trains_as_keras():
    """Masking -> LSTM(seq) -> GRU(seq) -> TimeDistributed(Dense): the mask crosses
    three layers; Keras' fit from copied weights, two epochs."""
    keras = keras_module()
    rng = np.random.default_rng(12)
    x = padded(rng, N=16, T=6, F=3)
    y = rng.standard_normal((16, 12)).astype(np.float32)

    def build(module):
        return [module.Masking(), module.LSTM(4, return_sequences=True),
                module.GRU(3, return_sequences=True), module.TimeDistributed(module.Dense(2)),
                module.Flatten()]  # fmt: skip

    k_model = keras.Sequential([keras.Input(x.shape[1:]), *build(keras.layers)])
    d_model = dlcore.models.Sequential(build(layers))
    d_model.build((None, *x.shape[1:]))
    assert_models_match(d_model, k_model, x, y, optimizer="adam", fit_kwargs={})


# ------------------------------------------------------------------ gradients and shapes


def use_weights(rnns, tensors):
    """Makes the recurrent layers compute with ``tensors`` (their kernel, recurrent
    kernel and bias each, in order), so that gradients reach them."""
    tensors = iter(tensors)
    for layer in rnns:
        layer.kernel, layer.recurrent_kernel, layer.bias = (
            next(tensors),
            next(tensors),
            next(tensors),
        )


@pytest.mark.parametrize("which", RNNS)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_layer_gradients(which, masked, go_backwards):
    """Finite differences through the layer: inputs, initial states and every weight."""
    rng = np.random.default_rng(13)
    layer = rnn(layers, which, units=3, return_sequences=True, go_backwards=go_backwards,
                dtype="float64")  # fmt: skip
    layer.build((None, 4, 2))
    layer.set_weights([rng.standard_normal(w.shape) * 0.6 for w in layer.get_weights()])
    mask = np.array([[1, 0, 1, 1], [1, 1, 1, 0]], bool) if masked else None
    n_states = 2 if which == "lstm" else 1
    states = [rng.standard_normal((2, 3)) for _ in range(n_states)]

    def fn(x, *rest):
        use_weights([layer], rest[n_states:])
        return layer(x, mask=mask, initial_state=list(rest[:n_states]))

    weights = [w.data.copy() for w in layer.weights]
    check_tensor_op(fn, rng.standard_normal((2, 4, 2)), *states, *weights)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_gradients(merge_mode):
    rng = np.random.default_rng(14)
    layer = layers.Bidirectional(layers.GRU(2, return_sequences=True, dtype="float64"), merge_mode,
                                 dtype="float64")  # fmt: skip
    layer.build((None, 3, 2))
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)

    def fn(x, *weights):
        use_weights([layer.forward_layer, layer.backward_layer], weights)
        return layer(x, mask=mask)

    weights = [rng.standard_normal(w.shape) * 0.6 for w in layer.weights]
    check_tensor_op(fn, rng.standard_normal((2, 3, 2)), *weights)


@pytest.mark.parametrize("which", RNNS)
@pytest.mark.parametrize("N,T,F,U", [(1, 1, 1, 1), (1, 5, 3, 7), (3, 1, 2, 3), (2, 9, 1, 33)])
def test_rnn_odd_shapes_and_return_state(which, N, T, F, U):
    x = np.random.default_rng(15).standard_normal((N, T, F)).astype(np.float32)
    layer = rnn(layers, which, units=U, return_sequences=True, return_state=True)
    out, *states = layer(x)
    assert out.shape == (N, T, U) and all(s.shape == (N, U) for s in states)
    assert len(states) == (2 if which == "lstm" else 1)
    np.testing.assert_array_equal(out.numpy()[:, -1], states[0].numpy())
    assert layer.compute_output_shape((None, T, F)) == [(None, T, U)] + [(None, U)] * len(states)


def test_masks_travel_to_the_outputs():
    x = padded(np.random.default_rng(16))
    seq = layers.GRU(4, return_sequences=True)(layers.Masking()(x))
    keep = np.any(x != 0, axis=-1)
    np.testing.assert_array_equal(layers.get_mask(seq), keep)
    assert layers.get_mask(layers.GRU(4)(layers.Masking()(x))) is None
    bi = layers.Bidirectional(layers.LSTM(2, return_sequences=True), merge_mode=None)
    y, y_rev = bi(layers.Masking()(x))
    np.testing.assert_array_equal(layers.get_mask(y), keep)
    np.testing.assert_array_equal(layers.get_mask(y_rev), keep)
    # Bidirectional's layers output zeros at masked steps (Keras' zero_output_for_mask)
    assert not y.numpy()[~keep].any() and not y_rev.numpy()[~keep].any()
    td = layers.TimeDistributed(layers.Dense(2))(layers.Masking()(x))
    np.testing.assert_array_equal(layers.get_mask(td), keep)


# ------------------------------------------------------------------ arguments and input


@pytest.mark.parametrize(
    "make,msg",
    [
        (lambda: layers.GRU(3, stateful=True), r"GRU: stateful=True is not supported.*initial_state"),
        (lambda: layers.SimpleRNN(3, dropout=1.0), r"SimpleRNN: dropout must be in \[0, 1\), got 1.0"),
        (lambda: layers.GRU(3, recurrent_dropout=-0.1), r"GRU: recurrent_dropout must be in \[0, 1\)"),
        (lambda: layers.GRU(3, activation="relu"), r"GRU: dlcore's kernel computes activation='tanh' and recurrent_activation='sigmoid'.*got activation='relu'"),
        (lambda: layers.SimpleRNN(3, activation="sigmoid"), r"SimpleRNN: .*activation='tanh' or 'relu'.*got activation='sigmoid'"),
        (lambda: layers.SimpleRNN(0), r"SimpleRNN: units must be a positive int, got 0"),
        (lambda: layers.Bidirectional(layers.LSTM(2), merge_mode="max"), r"merge_mode must be one of"),
        (lambda: layers.Bidirectional(layers.Dense(2)), r"must be a recurrent layer .*got Dense"),
        (lambda: layers.Bidirectional("lstm"), r"layer must be a dlcore layer instance"),
        (lambda: layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2)), r"must differ in go_backwards"),
        (lambda: layers.Bidirectional(layers.LSTM(2), backward_layer=layers.LSTM(2, go_backwards=True, return_sequences=True)), r"must agree on return_sequences"),
        (lambda: layers.TimeDistributed(None), r"TimeDistributed: layer must be a dlcore layer"),
    ],
)  # fmt: skip
def test_bad_arguments(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_activation_given_as_a_function_is_accepted():
    assert layers.SimpleRNN(2, activation=dlcore.activations.relu).activation == "relu"
    layers.GRU(2, activation=dlcore.activations.tanh, recurrent_activation="sigmoid")


def test_bad_inputs_masks_and_states():
    x = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"GRU needs inputs \(batch, timesteps, features\)"):
        layers.GRU(2)(np.zeros((2, 3), np.float32))
    g = layers.GRU(2)
    g(x)
    with pytest.raises(ValueError, match=r"expected inputs with 3 features, got shape \(2, 4, 5\)"):
        g(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(
        ValueError, match=r"the mask has shape \(2, 3\); expected \(batch, timesteps\) = \(2, 4\)"
    ):
        g(x, mask=np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"initial_state needs 2 state\(s\) .* for a LSTM, got 1"):
        layers.LSTM(2)(x, initial_state=[np.zeros((2, 2))])
    with pytest.raises(
        ValueError,
        match=r"an initial state has shape \(2, 3\); expected \(batch, units\) = \(2, 2\)",
    ):
        layers.SimpleRNN(2)(x, initial_state=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"TimeDistributed needs inputs with at least 3 axes"):
        layers.TimeDistributed(layers.Dense(2))(np.zeros((2, 3), np.float32))


# ------------------------------------------------------------------ saving and summary


def test_save_load_round_trip_and_summary(tmp_path, capsys):
    rng = np.random.default_rng(17)
    x = padded(rng)
    model = dlcore.models.Sequential([
        layers.Masking(input_shape=x.shape[1:]),
        layers.Bidirectional(layers.GRU(4, return_sequences=True, reset_after=False), "sum"),
        layers.SimpleRNN(3, activation="relu", go_backwards=True, return_sequences=True),
        layers.TimeDistributed(layers.Dense(2)),
        layers.LSTM(2),
    ])  # fmt: skip
    model.save(tmp_path / "m.dlc")
    loaded = dlcore.models.load_model(tmp_path / "m.dlc")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    bi = loaded.layers[1]
    assert (bi.merge_mode, bi.forward_layer.reset_after, bi.backward_layer.go_backwards) == (
        "sum",
        False,
        True,
    )
    model.summary()
    out = capsys.readouterr().out
    assert f"{model.layers[1].name} (Bidirectional)" in out and "(None, 7, 4)" in out
    assert f"{model.layers[3].name} (TimeDistributed)" in out


# ------------------------------------------------------------------ dropout in training

from dlcore.layers.recurrent import _RecurrentBase  # noqa: E402  (whose masks are patched)


def _fixed_masks(rng, rates, shapes):
    """Keep-masks scaled by 1 / (1 - rate), per rate: what both sides' draws return."""
    out = {}
    for rate, shape in zip(rates, shapes):
        out[rate] = [(rng.random(shape) >= rate).astype(np.float32) / np.float32(1 - rate)
                     for _ in range(4)]  # fmt: skip
    return out


@pytest.mark.parametrize("which", sorted(RNNS))
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_dropout_matches_keras_with_the_same_masks(rng, monkeypatch, which, recurrent, masked):
    keras = keras_module()
    from keras.src.layers.rnn import dropout_rnn_cell

    N, T, F, U = 4, 5, 3, 6
    rates = (0.25, 0.4)
    masks = _fixed_masks(rng, rates, [(N, F), (N, U)])

    def keras_masks(self, step_input, rate):
        count = getattr(self, "dropout_mask_count", None)
        chosen = masks[round(float(rate), 6)]
        return chosen[0] if count is None else chosen[:count]

    monkeypatch.setattr(dropout_rnn_cell.DropoutRNNCell, "_create_dropout_mask", keras_masks)
    monkeypatch.setattr(
        _RecurrentBase, "_masks",
        lambda self, count, shape, rate, dtype: masks[round(rate, 6)][:count],
    )  # fmt: skip
    kw = dict(dropout=rates[0], recurrent_dropout=rates[1] if recurrent else 0.0,
              return_sequences=True)  # fmt: skip
    x = padded(rng, N, T, F) if masked else rng.standard_normal((N, T, F)).astype(np.float32)
    y = rng.standard_normal((N, T, 2)).astype(np.float32)

    def model(module, seq, inp):
        body = [module.Masking()] if masked else []
        return seq([inp((T, F)), *body, rnn(module, which, U, **kw), module.Dense(2)])

    km = model(keras.layers, keras.Sequential, keras.Input)
    dm = model(layers, dlcore.Sequential, layers.Input)
    dm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
    dm.compile(optimizer=dlcore.optimizers.SGD(0.1), loss="mse")
    for step in range(3):
        assert_close(dm.train_on_batch(x, y), km.train_on_batch(x, y), f"loss {step}", 1e-4, 1e-5)
    assert_close(dm.get_weights(), km.get_weights(), "weights after 3 steps", 1e-4, 1e-5)
    # inference is untouched by the rates
    assert_close(dm.predict(x), km.predict(x, verbose=0), "predict", 1e-4, 1e-5)


@pytest.mark.parametrize("which", sorted(RNNS))
def test_recurrent_dropout_path_equals_the_fused_kernel_with_masks_of_ones(rng, monkeypatch,
                                                                           which):  # fmt: skip
    monkeypatch.setattr(
        _RecurrentBase,
        "_masks",
        lambda self, count, shape, rate, dtype: [np.ones(shape, dtype)] * count,
    )
    x = padded(rng, 5, 6, 3).astype(np.float64)
    mask = np.abs(x).sum(-1) > 0
    layer = rnn(layers, which, 4, dtype="float64", dropout=0.3, recurrent_dropout=0.3,
                return_sequences=True, return_state=True)  # fmt: skip
    fused = layer(x, mask=mask)
    looped = layer(x, mask=mask, training=True)
    for a, b in zip(fused, looped):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, atol=1e-13)
    check_tensor_op(lambda t: layer(t, training=True)[0], x[:2, :3])


def test_dropout_draws_new_masks_each_call_and_none_in_inference(rng):
    layer = layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3, return_sequences=True)
    x = rng.standard_normal((3, 4, 2)).astype(np.float32)
    a, b = layer(x, training=True).numpy(), layer(x, training=True).numpy()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(layer(x).numpy(), layer(x, training=False).numpy())
    same = layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3, return_sequences=True)
    same.build(x.shape)
    same.set_weights(layer.get_weights())
    layer2 = layers.LSTM(4, dropout=0.5, recurrent_dropout=0.5, seed=3, return_sequences=True)
    layer2.build(x.shape)
    layer2.set_weights(layer.get_weights())
    np.testing.assert_array_equal(same(x, training=True).numpy(), layer2(x, training=True).numpy())
    assert layer.get_config()["recurrent_dropout"] == 0.5


def test_unroll_is_accepted_and_changes_nothing(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    a, b = layers.LSTM(3, unroll=True), layers.LSTM(3)
    a.build(x.shape)
    b.build(x.shape)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert a.get_config()["unroll"] is True
