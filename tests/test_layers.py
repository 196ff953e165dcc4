import numpy as np
import pytest

import dlcore
from dlcore import Tensor, layers, regularizers
from gradcheck import check_tensor_op


def build(layer, input_shape):
    layer._ensure_built((None, *input_shape))
    return layer


def set_random(layer, rng):
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.weights])
    return layer


def swap_weights(layer, new):
    """Points the layer's weight attributes (kernel, bias, ...) at the Tensors in new."""
    for old, w in zip(list(layer._weights), new):
        for attr, value in list(vars(layer).items()):
            if value is old:
                setattr(layer, attr, w)
    layer._weights = list(new)


def grads_through(layer, x):
    """Finite-difference check of a float64 layer w.r.t. its input and every weight."""

    def fn(x_t, *ws):
        swap_weights(layer, ws)
        return layer(x_t, training=False)

    check_tensor_op(fn, x, *[w.data.copy() for w in layer.weights])


# ------------------------------------------------------------ gradients through layers


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense_gradients(rng, activation):
    layer = set_random(build(layers.Dense(3, activation=activation, dtype="float64"), (4,)), rng)
    grads_through(layer, rng.standard_normal((5, 4)))


def test_dense_on_3d_inputs(rng):
    layer = set_random(build(layers.Dense(2, dtype="float64"), (3, 4)), rng)
    grads_through(layer, rng.standard_normal((2, 3, 4)))


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(filters=3, kernel_size=3), (7, 6, 2)),
        (dict(filters=2, kernel_size=(2, 3), strides=2, padding="same"), (5, 7, 1)),
        (
            dict(filters=1, kernel_size=3, dilation_rate=2, padding="same", activation="relu"),
            (7, 7, 2),
        ),
    ],
)
def test_conv2d_gradients(rng, kwargs, shape):
    layer = set_random(build(layers.Conv2D(dtype="float64", **kwargs), shape), rng)
    grads_through(layer, rng.standard_normal((2, *shape)))


def test_maxpool_and_flatten_gradients(rng):
    x = rng.standard_normal((2, 6, 5, 3))
    grads_through(build(layers.MaxPooling2D(2, dtype="float64"), (6, 5, 3)), x)
    grads_through(
        build(layers.MaxPooling2D(3, strides=2, padding="same", dtype="float64"), (6, 5, 3)), x
    )
    grads_through(build(layers.Flatten(dtype="float64"), (6, 5, 3)), x)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm_gradients(rng, return_sequences):
    layer = build(layers.LSTM(3, return_sequences=return_sequences, dtype="float64"), (4, 2))
    set_random(layer, rng)
    grads_through(layer, rng.standard_normal((2, 4, 2)))


def test_stacked_lstm_gradients(rng):
    model = dlcore.models.Sequential(
        [
            layers.LSTM(3, return_sequences=True, dtype="float64", input_shape=(5, 2)),
            layers.LSTM(2, dtype="float64"),
            layers.Dense(1, dtype="float64"),
        ]
    )
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.weights])

    def fn(x_t, *ws):
        it = iter(ws)
        for layer in model.layers:
            swap_weights(layer, [next(it) for _ in layer.weights])
        return model(x_t)

    check_tensor_op(fn, rng.standard_normal((2, 5, 2)), *[w.data.copy() for w in model.weights])


def test_lstm_return_state(rng):
    layer = build(layers.LSTM(3, return_state=True), (4, 2))
    out, h, c = layer(rng.standard_normal((2, 4, 2)).astype(np.float32))
    assert out.shape == h.shape == c.shape == (2, 3)
    np.testing.assert_array_equal(out.numpy(), h.numpy())
    seq = build(layers.LSTM(3, return_sequences=True), (4, 2))
    seq.set_weights(layer.get_weights())
    y = seq(rng.standard_normal((2, 4, 2)).astype(np.float32))
    assert y.shape == (2, 4, 3)


# ------------------------------------------------------------ shapes


@pytest.mark.parametrize(
    "kwargs,shape",
    [
        (dict(kernel_size=3), (28, 28, 1)),
        (dict(kernel_size=3, padding="same"), (28, 28, 1)),
        (dict(kernel_size=(3, 5), strides=2, padding="same"), (15, 16, 3)),
        (dict(kernel_size=3, strides=3), (11, 7, 2)),
        (dict(kernel_size=3, dilation_rate=2), (9, 9, 1)),
        (dict(kernel_size=2, strides=(1, 2), padding="same"), (5, 6, 2)),
    ],
)
def test_conv2d_output_shape_matches_compute_output_shape(kwargs, shape):
    layer = layers.Conv2D(4, **kwargs)
    y = layer(np.zeros((2, *shape), np.float32))
    assert y.shape == (2, *layer.compute_output_shape((2, *shape))[1:])
    if kwargs.get("padding") == "same":
        strides = kwargs.get("strides", 1)
        strides = (strides, strides) if isinstance(strides, int) else strides
        assert y.shape[1:3] == tuple(-(-n // s) for n, s in zip(shape[:2], strides))


@pytest.mark.parametrize(
    "pool,strides,padding,shape",
    [
        (2, None, "valid", (26, 26, 32)),
        (2, None, "same", (7, 7, 1)),
        (3, 2, "same", (9, 8, 2)),
        ((2, 3), (1, 2), "valid", (6, 7, 1)),
    ],
)
def test_maxpool_output_shape(pool, strides, padding, shape):
    layer = layers.MaxPooling2D(pool, strides=strides, padding=padding)
    y = layer(np.random.rand(1, *shape).astype(np.float32))
    assert y.shape == (1, *layer.compute_output_shape((1, *shape))[1:])


def test_layer_values_against_numpy(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    dense = layers.Dense(3, activation="relu")
    y = dense(x).numpy()
    np.testing.assert_allclose(
        y, np.maximum(x @ dense.kernel.numpy() + dense.bias.numpy(), 0), rtol=1e-5, atol=1e-6
    )
    img = rng.standard_normal((2, 4, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(layers.Flatten()(img).numpy(), img.reshape(2, -1))
    pooled = layers.MaxPooling2D(2)(img).numpy()
    np.testing.assert_array_equal(pooled, img.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))


# ------------------------------------------------------------ dropout


def test_dropout_only_in_training(rng):
    dlcore.set_random_seed(3)
    x = np.ones((2000, 10), np.float32)
    layer = layers.Dropout(0.25)
    np.testing.assert_array_equal(layer(x).numpy(), x)  # inference: identity
    y = layer(x, training=True).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)  # survivors scaled up
    t = Tensor(x, requires_grad=True)
    out = layer(t, training=True)
    out.sum().backward()
    np.testing.assert_array_equal(t.grad != 0, out.numpy() != 0)  # gradient follows the mask
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.5"):
        layers.Dropout(1.5)


# ------------------------------------------------------------ initializers


def test_default_initializers_follow_keras(rng):
    dlcore.set_random_seed(0)
    dense = layers.Dense(300)
    dense(np.zeros((1, 200), np.float32))
    limit = np.sqrt(6 / (200 + 300))  # glorot_uniform
    k = dense.kernel.numpy()
    assert k.dtype == np.float32 and np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    assert abs(k.std() - limit / np.sqrt(3)) < 0.01 * limit
    np.testing.assert_array_equal(dense.bias.numpy(), 0)
    conv = layers.Conv2D(64, 3)
    conv(np.zeros((1, 8, 8, 32), np.float32))
    limit = np.sqrt(6 / (9 * 32 + 9 * 64))  # fans count the 3x3 field
    assert np.abs(conv.kernel.numpy()).max() <= limit
    lstm = layers.LSTM(16)
    lstm(np.zeros((1, 3, 5), np.float32))
    r = lstm.recurrent_kernel.numpy().astype(np.float64)  # orthogonal rows
    np.testing.assert_allclose(r @ r.T, np.eye(16), atol=1e-5)
    b = lstm.bias.numpy()  # unit forget bias
    np.testing.assert_array_equal(b[16:32], 1)
    np.testing.assert_array_equal(np.delete(b, np.s_[16:32]), 0)


def test_seeded_initialization_is_reproducible():
    dlcore.set_random_seed(7)
    a = layers.Dense(5)(np.zeros((1, 3), np.float32))
    first = a.numpy().copy()
    dlcore.set_random_seed(7)
    w1 = layers.Dense(5)
    w1(np.zeros((1, 3), np.float32))
    dlcore.set_random_seed(7)
    w2 = layers.Dense(5)
    w2(np.zeros((1, 3), np.float32))
    np.testing.assert_array_equal(w1.kernel.numpy(), w2.kernel.numpy())
    assert first.shape == (1, 5)


# ------------------------------------------------------------ regularizers


def test_regularizer_penalties(rng):
    w = rng.standard_normal((3, 4))
    np.testing.assert_allclose(float(regularizers.L2(0.1)(Tensor(w)).data), 0.1 * (w**2).sum())
    np.testing.assert_allclose(float(regularizers.L1(0.2)(Tensor(w)).data), 0.2 * np.abs(w).sum())
    np.testing.assert_allclose(
        float(regularizers.L1L2(0.2, 0.1)(Tensor(w)).data),
        0.2 * np.abs(w).sum() + 0.1 * (w**2).sum(),
    )
    dense = layers.Dense(
        4, kernel_regularizer=regularizers.L2(0.5), bias_regularizer="l1", dtype="float64"
    )
    dense(np.zeros((1, 3)))
    penalties = dense.losses
    assert len(penalties) == 2
    np.testing.assert_allclose(float(penalties[0].data), 0.5 * (dense.kernel.numpy() ** 2).sum())
    # the penalty is differentiable: its gradient is l2 * 2 w
    penalties[0].backward()
    np.testing.assert_allclose(dense.kernel.grad, 0.5 * 2 * dense.kernel.numpy())
    with pytest.raises(ValueError, match="must be >= 0"):
        regularizers.L2(-1)


# ------------------------------------------------------------ weights and configs


@pytest.mark.parametrize(
    "layer,shape",
    [
        (layers.Dense(3, activation="relu", kernel_regularizer=regularizers.L2(0.01)), (4,)),
        (layers.Conv2D(2, (3, 2), strides=2, padding="same", dilation_rate=1), (6, 6, 3)),
        (layers.MaxPooling2D((2, 2), padding="same"), (5, 5, 1)),
        (layers.LSTM(4, return_sequences=True), (3, 2)),
        (layers.Dropout(0.3), (4,)),
        (layers.Flatten(), (2, 3)),
        (layers.Activation("tanh"), (3,)),
        (layers.Reshape((2, 3)), (6,)),
        (layers.LeakyReLU(0.2), (3,)),
    ],
)
def test_config_round_trip(rng, layer, shape):
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    y = layer(x).numpy()
    clone = layers.deserialize(layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), y)


def test_set_weights_errors():
    dense = layers.Dense(3)
    dense(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"set_weights got 1 arrays, but it has 2 weights"):
        dense.set_weights([np.zeros((2, 3))])
    with pytest.raises(
        ValueError,
        match=r"dense.*/kernel has shape \(2, 3\), got an array of "
        r"shape \(3, 3\)",
    ):
        dense.set_weights([np.zeros((3, 3)), np.zeros(3)])


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="units must be a positive int, got 0"):
        layers.Dense(0)
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same', got 'full'"):
        layers.Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="channels-last"):
        layers.Conv2D(2, 3, data_format="channels_first")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['unitz'\]"):
        layers.Dense(3, unitz=4)
    with pytest.raises(ValueError, match="Conv2D needs inputs"):
        layers.Conv2D(2, 3)(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="expected inputs with 2 features"):
        d = layers.Dense(2)
        d(np.zeros((1, 2), np.float32))
        d(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="activation='tanh'"):
        layers.LSTM(3, activation="relu")


def test_seeded_dropout_draws_its_own_reproducible_masks():
    x = np.ones((4, 50), np.float32)
    a, b = layers.Dropout(0.5, seed=7), layers.Dropout(0.5, seed=7)
    first, second = a(x, training=True).numpy(), a(x, training=True).numpy()
    np.testing.assert_array_equal(b(x, training=True).numpy(), first)  # same seed, same masks
    assert not np.array_equal(first, second)  # a new mask every call
    dlcore.set_random_seed(0)
    unseeded = layers.Dropout(0.5)(x, training=True).numpy()
    dlcore.set_random_seed(0)
    np.testing.assert_array_equal(layers.Dropout(0.5)(x, training=True).numpy(), unseeded)


# ------------------------------------------------------------ a user's own layers


class _Linear(layers.Layer):
    """The Keras guide's custom layer: no compute_output_shape, add_weight without name."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return inputs @ self.w + self.b


def test_custom_layer_output_shape_is_traced_in_sequential(capsys):
    model = dlcore.Sequential([layers.Input((5,)), _Linear(3, name="linear"), layers.Dense(2)])
    assert model.layers[0].output_shape == (None, 3)
    assert model.layers[1].kernel.shape == (3, 2)
    assert model.predict(np.ones((4, 5), np.float32), verbose=0).shape == (4, 2)
    assert [w.name for w in model.layers[0].weights] == ["linear/variable", "linear/variable_1"]
    model.summary()
    assert "(None, 3)" in capsys.readouterr().out


def test_custom_layer_that_cannot_run_on_zeros_keeps_its_input_shape():
    class Picky(layers.Layer):
        def call(self, inputs):
            if not np.any(inputs.data):
                raise RuntimeError("needs data")
            return inputs

    model = dlcore.Sequential([layers.Input((4,)), Picky(), layers.Dense(2)])
    assert model.layers[0].output_shape == (None, 4)


def test_add_weight_takes_keras_3_and_keras_2_orders():
    layer = layers.Layer(name="holder")
    a = layer.add_weight((2, 3), "zeros")
    b = layer.add_weight("named", (4,), "ones", trainable=False)
    c = layer.add_weight(shape=5, dtype="float64")
    assert a.shape == (2, 3) and not a.data.any() and a.name == "holder/variable"
    assert b.name == "holder/named" and (b.data == 1).all() and not b.requires_grad
    assert c.shape == (5,) and c.dtype == np.float64 and c.name == "holder/variable_1"
    with pytest.raises(TypeError, match="needs a shape"):
        layer.add_weight(name="x")
    with pytest.raises(TypeError, match="float32 or float64"):
        layer.add_weight(shape=(2,), dtype="int32")
    with pytest.raises(TypeError, match="unexpected keyword"):
        layer.add_weight(shape=(2,), bogus=1)


def test_freezing_a_nested_model_freezes_its_layers_and_batch_statistics(rng):
    base = dlcore.Sequential(
        [layers.Input((4,)), layers.Dense(6), layers.BatchNormalization(), layers.Dense(3)]
    )
    model = dlcore.Sequential([layers.Input((4,)), base, layers.Dense(1)])
    base.trainable = False
    assert [layer.trainable for layer in base.layers] == [False, False, False]
    model.compile(optimizer="adam", loss="mse")
    before = [w.copy() for w in base.get_weights()]
    x = rng.standard_normal((32, 4)).astype(np.float32) * 3 + 1
    model.fit(x, rng.standard_normal((32, 1)).astype(np.float32), epochs=2, verbose=0)
    for old, new in zip(before, base.get_weights()):
        np.testing.assert_array_equal(old, new)  # moving statistics too
    base.trainable = True
    assert all(layer.trainable for layer in base.layers)


def test_frozen_nested_batch_normalization_matches_keras(rng):
    keras = pytest.importorskip("keras")
    x = rng.standard_normal((16, 4)).astype(np.float32) * 2 + 1
    y = rng.standard_normal((16, 1)).astype(np.float32)

    def build(lib, seq, inp):
        base = seq([inp((4,)), lib.Dense(5), lib.BatchNormalization()])
        model = seq([inp((4,)), base, lib.Dense(1)])
        base.trainable = False
        return model

    km = build(keras.layers, keras.Sequential, keras.Input)
    dm = build(layers, dlcore.Sequential, layers.Input)
    dm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    dm.compile(optimizer=dlcore.optimizers.SGD(0.1), loss="mse")
    for _ in range(3):
        np.testing.assert_allclose(dm.train_on_batch(x, y), km.train_on_batch(x, y), rtol=2e-5)
    for a, b in zip(dm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_activity_regularizer_matches_keras(rng):
    keras = pytest.importorskip("keras")
    x = rng.standard_normal((16, 6)).astype(np.float32)

    def build(lib, seq, inp, regs):
        return seq([inp((6,)), lib.Dense(4, activation="relu", activity_regularizer=regs.L1(0.05)),
                    lib.Dense(6, activity_regularizer=regs.L2(0.01))])  # fmt: skip

    km = build(keras.layers, keras.Sequential, keras.Input, keras.regularizers)
    dm = build(layers, dlcore.Sequential, layers.Input, regularizers)
    dm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    dm.compile(optimizer=dlcore.optimizers.SGD(0.05), loss="mse")
    np.testing.assert_allclose(dm.evaluate(x, x, batch_size=8, verbose=0),
                               km.evaluate(x, x, batch_size=8, verbose=0), rtol=1e-5)  # fmt: skip
    for _ in range(3):
        np.testing.assert_allclose(dm.train_on_batch(x, x), km.train_on_batch(x, x), rtol=1e-5)
    for a, b in zip(dm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # model.losses after a call: one penalty per regularized output, Keras' values
    km(x)
    dm(x)
    assert len(dm.losses) == len(km.losses) == 2
    np.testing.assert_allclose(sorted(float(p.data) for p in dm.losses),
                               sorted(float(p) for p in km.losses), rtol=1e-5)  # fmt: skip
    config = dm.layers[0].get_config()
    assert config["activity_regularizer"]["class_name"] == "L1"
    assert layers.Dense.from_config(config).activity_regularizer.l1 == pytest.approx(0.05)


def test_activity_penalties_are_those_of_the_last_outermost_call(rng):
    layer = layers.Dense(3, activity_regularizer="l2")
    layer(np.ones((2, 4), np.float32))
    first = float(layer.losses[0].data)
    layer(np.zeros((5, 4), np.float32) + 2)
    assert len(layer.losses) == 1 and float(layer.losses[0].data) != first
    assert layers.Dense(3).get_config().get("activity_regularizer") is None


def test_gan_recipe_batch_normalization_follows_each_compile(rng):
    """Keras 2's GAN recipe: the discriminator, compiled first, trains (its
    BatchNormalization in training mode) on its own; frozen before the combined model is
    compiled, it neither trains nor updates its moving statistics inside it."""
    disc = dlcore.Sequential([layers.Input((4,)), layers.Dense(5), layers.BatchNormalization(),
                              layers.Dense(1, activation="sigmoid")])  # fmt: skip
    disc.compile(optimizer="sgd", loss="binary_crossentropy")
    disc.trainable = False
    gan = dlcore.Sequential([layers.Input((3,)), layers.Dense(4), disc])
    gan.compile(optimizer="sgd", loss="binary_crossentropy")
    bn = disc.layers[1]
    x = rng.standard_normal((16, 4)).astype(np.float32) * 2 + 1
    z = rng.standard_normal((16, 3)).astype(np.float32)
    y = np.ones((16, 1), np.float32)
    before = [w.copy() for w in disc.get_weights()]
    gan.train_on_batch(z, y)
    for a, b in zip(before, disc.get_weights()):
        np.testing.assert_array_equal(a, b)  # frozen inside the combined model
    disc.train_on_batch(x, y)
    assert not np.array_equal(bn.moving_mean.numpy(), before[4])  # its own step trains it
    assert not np.array_equal(disc.get_weights()[0], before[0])


def test_keras_options_with_their_default_values_are_accepted():
    assert layers.Conv2D(2, 3, groups=1).filters == 2
    assert layers.Flatten(data_format="channels_last")(np.ones((2, 3, 4))).shape == (2, 12)
    assert layers.BatchNormalization(synchronized=False).momentum == 0.99
    with pytest.raises(ValueError, match="groups=2 is not supported"):
        layers.Conv2D(2, 3, groups=2)
    with pytest.raises(ValueError, match="channels_first"):
        layers.Flatten(data_format="channels_first")
    with pytest.raises(ValueError, match="synchronized=True"):
        layers.BatchNormalization(synchronized=True)
