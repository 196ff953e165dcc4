"""fit's and train_on_batch's training plan (Sequential._training_plan_for): each layer's
training step runs its kernels on arrays and returns its backward, and only the last
layer's activation runs on a Tensor. Losses, metrics, weights and gradients must be the
layer path's, bit for bit, and any model, input or state the plan cannot serve must take
that path."""

import numpy as np
import pytest

import dlcore
from dlcore import layers, models, optimizers
from dlcore.tensor import no_grad


def cnn(dtype="float32", head="softmax", regularizer=None):
    return models.Sequential(
        [
            layers.Input(shape=(12, 10, 3)),
            layers.Conv2D(
                6, 3, activation="relu", padding="same", kernel_regularizer=regularizer, dtype=dtype
            ),
            layers.MaxPooling2D(2, padding="same", dtype=dtype),
            layers.Conv2D(5, (3, 2), strides=(2, 1), dilation_rate=1, dtype=dtype),
            layers.MaxPooling2D((2, 1), strides=1, dtype=dtype),
            layers.Conv2D(4, 1, use_bias=False, activation="relu", dtype=dtype),
            layers.Flatten(dtype=dtype),
            layers.Dropout(0.4, seed=7, dtype=dtype),
            layers.Dense(7, activation="relu", dtype=dtype, bias_regularizer=regularizer),
            layers.Dense(9, use_bias=False, dtype=dtype),
            layers.Activation("relu", dtype=dtype),
            layers.Activation("linear", dtype=dtype),
            layers.Dense(3, activation=head, dtype=dtype),
        ]
    )


def compiled(model, loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    model.compile(optimizer=optimizers.Adam(1e-2), loss=loss, metrics=list(metrics))
    return model


def twins(make, compile_args=()):
    """Two models with the same weights: the first trains on its plan, the second on
    its layers."""
    a, b = make(), make()
    b.set_weights(a.get_weights())
    compiled(a, *compile_args), compiled(b, *compile_args)
    b._training_plan_for = lambda x: None
    return a, b


def assert_same_training(a, b, x, y, steps=3):
    planned = []  # whether each of a's steps had a plan
    find = a._training_plan_for
    a._training_plan_for = lambda x: planned.append(find(x) is not None) or find(x)
    for _ in range(steps):
        assert a.train_on_batch(x, y) == b.train_on_batch(x, y)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert wa.dtype == wb.dtype and np.array_equal(wa, wb)
    ha = a.fit(x, y, batch_size=4, epochs=2, verbose=0, seed=1).history
    hb = b.fit(x, y, batch_size=4, epochs=2, verbose=0, seed=1).history
    assert ha == hb
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert np.array_equal(wa, wb)
    assert planned and all(planned)  # train_on_batch's and fit's steps ran on the plan
    del a._training_plan_for


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [1, 3, 7])
def test_training_matches_the_layer_path_bit_for_bit(rng, dtype, batch):
    a, b = twins(lambda: cnn(dtype, regularizer="l2"))
    x = rng.standard_normal((batch, 12, 10, 3)).astype(dtype)
    y = rng.integers(0, 3, batch)
    assert a._training_plan_for(x) is not None  # every layer here has a step
    assert_same_training(a, b, x, y)
    assert a.optimizer.iterations == b.optimizer.iterations > 0


@pytest.mark.parametrize(
    "head, loss, targets",
    [
        ("sigmoid", "binary_crossentropy", "binary"),
        ("softmax", "categorical_crossentropy", "onehot"),
        ("softmax", "mse", "onehot"),  # a loss on the probabilities, not the logits
        ("linear", "mse", "real"),
        ("relu", "mae", "real"),
        ("tanh", "mse", "real"),
    ],
)
def test_every_head_and_loss_matches_the_layer_path(rng, head, loss, targets):
    a, b = twins(lambda: cnn(head=head), (loss, ("mae",)))
    x = rng.standard_normal((5, 12, 10, 3)).astype(np.float32)
    y = {
        "binary": rng.integers(0, 2, (5, 3)).astype(np.float32),
        "onehot": np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)],
        "real": rng.standard_normal((5, 3)).astype(np.float32),
    }[targets]
    assert a._training_plan_for(x) is not None
    assert_same_training(a, b, x, y)


def test_sample_weights_and_class_weights_match_the_layer_path(rng):
    a, b = twins(cnn)
    x = rng.standard_normal((6, 12, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    w = rng.random(6).astype(np.float32)
    for _ in range(2):
        assert a.train_on_batch(x, y, sample_weight=w) == b.train_on_batch(x, y, sample_weight=w)
        weights = {0: 2.0, 1: 0.5, 2: 1.0}
        assert a.train_on_batch(x, y, class_weight=weights) == b.train_on_batch(
            x, y, class_weight=weights
        )
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        assert np.array_equal(wa, wb)


def test_frozen_layers_get_no_gradient_and_match_the_layer_path(rng):
    def make():
        model = cnn()
        model.layers[0].trainable = False  # the first conv
        model.layers[-4].trainable = False  # a frozen layer between trained ones
        return model

    a, b = twins(make)
    frozen = [w.data.copy() for w in a.layers[0].weights + a.layers[-4].weights]
    trained = a.layers[2].get_weights()
    x = rng.standard_normal((4, 12, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    assert_same_training(a, b, x, y)
    after = [w.data for w in a.layers[0].weights + a.layers[-4].weights]
    assert all(np.array_equal(u, v) for u, v in zip(frozen, after, strict=True))
    # no gradient for them (the layer path computes theirs, unused), nor a dx for the
    # pool after the first
    assert all(w.grad is None for w in a.layers[0].weights + a.layers[-4].weights)
    changed = [not np.array_equal(u, v) for u, v in zip(trained, a.layers[2].get_weights())]
    assert all(changed)  # the layers around them did train


def test_a_model_with_nothing_to_train_behaves_as_on_the_layer_path(rng):
    a, b = twins(cnn)
    for model in (a, b):
        for layer in model.layers:
            layer.trainable = False
        compiled(model)
    b._training_plan_for = lambda x: None
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 2)
    outcomes = []
    for model in (a, b):
        try:
            outcomes.append(("value", model.train_on_batch(x, y)))
        except Exception as err:  # the same error, whatever the layer path raises
            outcomes.append((type(err), str(err)))
    assert outcomes[0] == outcomes[1]


def test_integer_inputs_are_cast_as_the_first_layer_casts_them(rng):
    a, b = twins(cnn)
    x = rng.integers(0, 255, (3, 12, 10, 3)).astype(np.uint8)
    y = rng.integers(0, 3, 3)
    assert a._training_plan_for(x) is not None
    assert_same_training(a, b, x, y, steps=2)


def test_the_plan_follows_weights_set_and_layers_added(rng):
    model, twin = twins(cnn)
    x = rng.standard_normal((3, 12, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 3)
    assert model.train_on_batch(x, y) == twin.train_on_batch(x, y)
    plan = model._training_plan_for(x)
    assert plan is not None and model._training_plan_for(x) is plan  # kept
    for m in (model, twin):  # new arrays in every weight
        m.set_weights([w * 0.5 for w in m.get_weights()])
    assert model.train_on_batch(x, y) == twin.train_on_batch(x, y)
    model.pop()
    model.add(layers.Dense(2, activation="softmax"))
    assert model._training_plan_for(x) is not plan
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, rng.integers(0, 2, 3))
    assert model.layers[-1].kernel.shape == (9, 2)


@pytest.mark.parametrize(
    "odd",
    ["batch_norm", "tanh_conv", "nested", "avg_pool", "subclass_call", "mixed_dtypes"],
)
def test_models_the_plan_cannot_serve_take_the_layer_path(rng, odd):
    stack = [layers.Input(shape=(8, 8, 2)), layers.Conv2D(3, 3, activation="relu")]
    stack.append({
        "batch_norm": layers.BatchNormalization(),
        "tanh_conv": layers.Conv2D(3, 1, activation="tanh"),  # an activation apart
        "nested": models.Sequential([layers.Dense(3)]),
        "avg_pool": layers.AveragePooling2D(2),
        "subclass_call": type("Doubled", (layers.Dense,), {
            "call": lambda self, x, training=False: layers.Dense.call(self, x) * 2.0})(3),
        "mixed_dtypes": layers.Dense(3, dtype="float64"),
    }[odd])  # fmt: skip
    stack += [layers.Flatten(), layers.Dense(2, activation="softmax")]
    model = compiled(models.Sequential(stack))
    x = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    assert model._training_plan_for(x) is None
    before = [w.copy() for w in model.get_weights()]
    loss, _ = model.train_on_batch(x, rng.integers(0, 2, 4))
    assert np.isfinite(loss)
    assert any(not np.array_equal(u, v) for u, v in zip(before, model.get_weights()))


def test_inputs_the_plan_cannot_serve_take_the_layer_path(rng):
    model = compiled(cnn())
    x = rng.standard_normal((3, 12, 10, 3)).astype(np.float32)
    model.train_on_batch(x, rng.integers(0, 3, 3))
    assert model._training_plan_for(x[:, :11]) is None  # another shape
    assert model._training_plan_for(x[:0]) is None  # no samples
    assert model._training_plan_for(list(x)) is None  # not an array
    assert model._training_plan_for(dlcore.Tensor(x)) is None
    with no_grad():
        assert model._training_plan_for(x) is None
    with pytest.raises(ValueError):  # the layer path's own error for a wrong shape
        model.train_on_batch(x[:, :11], rng.integers(0, 3, 3))


def test_a_sequential_subclass_with_its_own_call_runs_it(rng):
    class Scaled(models.Sequential):
        def call(self, inputs, training=False):
            return super().call(inputs, training=training)

    model = compiled(Scaled(cnn().layers))
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)
    model.train_on_batch(x, rng.integers(0, 3, 2))
    assert model._training_plan_for(x) is None


def test_the_plan_builds_no_graph_before_the_head(rng):
    model = compiled(cnn())
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)
    model.train_on_batch(x, rng.integers(0, 3, 2))
    out, backward = model._training_plan_for(x)(x, {id(w) for w in model.trainable_weights})
    leaf = out.logits  # the softmax's input: a leaf holding the last Dense's output
    assert leaf._node is None and leaf.requires_grad and leaf.grad is None
    assert out.shape == (2, 3) and np.allclose(out.data.sum(axis=1), 1, atol=1e-6)
    for w in model.weights:
        w.grad = None
    backward()  # no loss has run: no gradient reaches any weight
    assert all(w.grad is None for w in model.weights)


# ---------------------------------------------------------------- functional models


def functional_cnn(dtype="float32", input_dtype=None, head="softmax"):
    """cnn()'s layers as a functional chain, its Input of input_dtype."""
    inputs = layers.Input(shape=(12, 10, 3), dtype=input_dtype or dtype)
    x = inputs
    for layer in cnn(dtype, head=head, regularizer="l2").layers:
        x = layer(x)
    return models.Model(inputs, x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_dtype", [None, "float16", "float64"])
def test_a_functional_chain_matches_the_layer_path_bit_for_bit(rng, dtype, input_dtype):
    a, b = twins(lambda: functional_cnn(dtype, input_dtype))
    x = rng.standard_normal((5, 12, 10, 3)).astype(np.float32)  # cast by the Input first
    y = rng.integers(0, 3, 5)
    assert a._training_plan_for(x) is not None
    assert_same_training(a, b, x, y)


def test_functional_graphs_that_are_no_chain_take_the_layer_path(rng):
    inputs = layers.Input(shape=(6,))
    hidden = layers.Dense(4, activation="relu")(inputs)
    branched = layers.Add()([layers.Dense(4)(hidden), hidden])  # a merge
    twice = layers.Concatenate()([hidden, hidden])  # one tensor taken twice
    models_ = {
        "merge": models.Model(inputs, layers.Dense(2, activation="softmax")(branched)),
        "twice": models.Model(inputs, layers.Dense(2, activation="softmax")(twice)),
        "two outputs": models.Model(inputs, [layers.Dense(2)(hidden), layers.Dense(1)(hidden)]),
    }
    x = rng.standard_normal((4, 6)).astype(np.float32)
    for name, model in models_.items():
        assert model._training_plan_for(x) is None, name
    model = compiled(models_["merge"])
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, rng.integers(0, 2, 4))
    assert all(not np.array_equal(u, v) for u, v in zip(before, model.get_weights()))


def test_a_functional_subclass_or_input_of_another_shape_takes_the_layer_path(rng):
    model = compiled(functional_cnn())
    x = rng.standard_normal((2, 12, 10, 3)).astype(np.float32)
    assert model._training_plan_for(x[:, :, :9]) is None
    assert model._training_plan_for(x[:0]) is None
    with no_grad():
        assert model._training_plan_for(x) is None

    class Own(models.Functional):
        def call(self, inputs, training=False):
            return super().call(inputs, training=training)

    inputs = layers.Input(shape=(6,))
    own = compiled(Own(inputs, layers.Dense(3, activation="softmax")(inputs)))
    assert own._training_plan_for(rng.standard_normal((2, 6)).astype(np.float32)) is None


# ---------------------------------------------------------------- what a kept plan follows


def test_an_activation_changed_after_the_plan_was_made_is_followed(rng):
    from dlcore import activations

    a, b = twins(cnn)
    x = rng.standard_normal((4, 12, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    assert a.train_on_batch(x, y) == b.train_on_batch(x, y)
    for model in (a, b):  # as a callback might, mid-training
        model.layers[0].activation = activations.get("linear")  # the fused conv relu
        model.layers[7].activation = activations.get("linear")  # Dense 7's relu
        model.layers[-1].activation = activations.get("sigmoid")  # the head
    assert_same_training(a, b, x, y, steps=2)
    a.layers[7].activation = activations.get("tanh")  # a step the plan has not
    assert a._training_plan_for(x) is None


def test_a_layer_applied_twice_in_a_chain_keeps_each_application(rng):
    def chain(activation):
        inputs = layers.Input(shape=(6,))
        shared = layers.Activation(activation)
        hidden = shared(layers.Dense(8)(inputs))
        return models.Model(inputs, shared(layers.Dense(8)(hidden)))

    a, b = twins(lambda: chain("relu"), ("mse",))
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.random((16, 8)).astype(np.float32)
    assert a._training_plan_for(x) is not None
    assert_same_training(a, b, x, y)
    assert compiled(chain("tanh"), "mse")._training_plan_for(x) is None  # no tanh step


def test_a_layer_subclass_from_outside_dlcore_takes_the_layer_path(rng):
    class Scaled(layers.Dense):  # its own kernel, made from the weights it built
        def build(self, input_shape):
            super().build(input_shape)
            self.scale = 2.0

    model = compiled(models.Sequential([layers.Input(shape=(6,)), Scaled(3, activation="softmax")]))
    x = rng.standard_normal((4, 6)).astype(np.float32)
    assert model._training_plan_for(x) is None


def test_dropout_rates_and_noise_shapes_behave_as_on_the_layer_path(rng):
    def make():
        return models.Sequential([
            layers.Input(shape=(5, 6)),
            layers.Dropout(0.3, noise_shape=(None, 1, 6), seed=3),
            layers.Dense(4, activation="relu"),  # on the last axis of a 3-D input
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ])  # fmt: skip

    a, b = twins(make)
    x = rng.standard_normal((3, 5, 6)).astype(np.float32)
    y = rng.integers(0, 2, 3)
    assert a._training_plan_for(x) is not None
    assert_same_training(a, b, x, y)
    a.layers[0].rate = 1.0  # set after construction: the layer path refuses it too
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\), got 1.0"):
        a.train_on_batch(x, y)
