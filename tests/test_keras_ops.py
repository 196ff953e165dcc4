"""dlcore.keras.ops and dlcore.keras.random against Keras 3's, and the Keras guide's
custom pieces written with them: a Metric with add_variable, a layer with add_loss,
weights updated with assign."""

import numpy as np
import pytest

import dlcore
from dlcore import Tensor, layers
from dlcore import keras as dk
from gradcheck import check_tensor_op

ops = dk.ops

UNARY = ["exp", "log1p", "sqrt", "square", "abs", "negative", "sign", "floor", "ceil",
         "relu", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "softplus", "softsign",
         "relu6", "hard_sigmoid", "leaky_relu"]  # fmt: skip
BINARY = ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "equal",
          "not_equal", "greater", "greater_equal", "less", "less_equal"]  # fmt: skip
REDUCTIONS = ["sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax", "argmin"]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _x(rng, shape=(3, 4)):
    return (rng.random(shape) + 0.5).astype(np.float32)


@pytest.mark.parametrize("name", UNARY)
def test_unary_ops_match_keras(keras, rng, name):
    x = _x(rng) - 0.9  # some negative entries
    if name in ("sqrt", "log1p"):
        x = np.abs(x)
    np.testing.assert_allclose(getattr(ops, name)(Tensor(x)).numpy(),
                               np.asarray(getattr(keras.ops, name)(x)), rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_match_keras(keras, rng, name):
    a, b = _x(rng), _x(rng, (4,))
    np.testing.assert_allclose(getattr(ops, name)(Tensor(a), b).numpy(),
                               np.asarray(getattr(keras.ops, name)(a, b)), rtol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("axis,keepdims", [(None, False), (-1, False), (0, True)])
def test_reductions_match_keras(keras, rng, name, axis, keepdims):
    x = _x(rng, (3, 4, 2))
    kw = dict(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(getattr(ops, name)(Tensor(x), **kw).numpy(),
                               np.asarray(getattr(keras.ops, name)(x, **kw)), rtol=1e-5)  # fmt: skip


def test_shape_and_constructor_ops_match_keras(keras, rng):
    x = _x(rng, (2, 3))
    cases = [
        ("reshape", (x, (3, 2))), ("transpose", (x,)), ("expand_dims", (x, 1)),
        ("squeeze", (x[None],)), ("concatenate", ([x, x],)), ("stack", ([x, x],)),
        ("matmul", (x, x.T)), ("dot", (x, x.T)), ("clip", (x, 0.7, 1.2)),
        ("softmax", (x,)), ("log_softmax", (x,)), ("ones_like", (x,)),
        ("zeros_like", (x,)), ("one_hot", (np.array([0, 2, 1]), 3)),
        ("where", (x > 1.0, x, -x)), ("cast", (x, "int32")), ("repeat", (x, 2, 0)),
    ]  # fmt: skip
    for name, args in cases:
        ours = getattr(ops, name)(*[Tensor(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                                   else a for a in args])  # fmt: skip
        np.testing.assert_allclose(np.asarray(ours), np.asarray(getattr(keras.ops, name)(*args)),
                                   rtol=1e-6, err_msg=name)  # fmt: skip
    assert ops.shape(Tensor(x)) == (2, 3) and ops.ones((2,)).numpy().tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    "fn",
    [lambda t: ops.logsumexp(t, axis=-1), lambda t: ops.var(t, axis=0), lambda t: ops.std(t),
     lambda t: ops.where(t.data > 1.0, t * 2.0, ops.exp(t)), lambda t: ops.log1p(t),
     lambda t: ops.mean(ops.square(t - ops.mean(t, axis=-1, keepdims=True)), axis=-1)],
)  # fmt: skip
def test_differentiable_ops_have_their_gradients(rng, fn):
    check_tensor_op(fn, (rng.random((3, 4)) + 0.5).astype(np.float64))


def test_random_draws_from_seeds_and_dlcore_generator():
    a = dk.random.normal((4, 3), seed=1)
    assert a.shape == (4, 3) and a.dtype == np.float32 and not a.requires_grad
    np.testing.assert_array_equal(a.numpy(), dk.random.normal((4, 3), seed=1).numpy())
    t = dk.random.truncated_normal((1000,), stddev=2.0, seed=0).numpy()
    assert np.abs(t).max() <= 4.0
    u = dk.random.uniform((50,), 2.0, 3.0, seed=3).numpy()
    assert u.min() >= 2.0 and u.max() < 3.0
    dlcore.utils.set_random_seed(5)
    first = dk.random.normal((3,)).numpy()
    dlcore.utils.set_random_seed(5)
    np.testing.assert_array_equal(first, dk.random.normal((3,)).numpy())
    with pytest.raises(TypeError, match="seed must be an int"):
        dk.random.normal((2,), seed="x")


class _CategoricalTruePositives(dk.metrics.Metric):
    """The Keras guide's custom metric, as written there."""

    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
        values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
        values = ops.cast(values, "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, "float32")
            values = ops.multiply(values, sample_weight)
        self.true_positives.assign_add(ops.sum(values))

    def result(self):
        return self.true_positives

    def reset_state(self):
        self.true_positives.assign(0.0)


def test_the_keras_guides_custom_metric_trains_and_resets(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, (40, 1))
    m = dlcore.Sequential([layers.Input((5,)), layers.Dense(3, activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
              metrics=[_CategoricalTruePositives()])  # fmt: skip
    history = m.fit(x, y, batch_size=10, epochs=2, verbose=0).history
    pred = m.predict(x, verbose=0).argmax(1)
    logs = m.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["categorical_true_positives"] == float((pred == y[:, 0]).sum())
    assert len(history["categorical_true_positives"]) == 2
    metric = _CategoricalTruePositives()
    metric.update_state(y, np.eye(3)[y[:, 0]])
    assert float(metric.result()) == 40.0
    metric.reset_state()
    assert float(metric.result()) == 0.0
    plain = dk.metrics.Metric(name="plain")
    with pytest.raises(NotImplementedError, match="must define reset_state"):
        plain.reset_state()


class _ActivityLoss(layers.Layer):
    """A layer adding a loss from its inputs (the Keras guide's ActivityRegularizationLayer)."""

    def call(self, inputs):
        self.add_loss(0.01 * ops.sum(ops.square(inputs)))
        return inputs


def test_add_loss_in_a_layer_matches_keras(keras, rng):
    class KerasActivityLoss(keras.layers.Layer):
        def call(self, inputs):
            self.add_loss(0.01 * keras.ops.sum(keras.ops.square(inputs)))
            return inputs

    x = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), KerasActivityLoss(),
                           keras.layers.Dense(2)])  # fmt: skip
    dm = dlcore.Sequential([layers.Input((4,)), layers.Dense(3), _ActivityLoss(),
                            layers.Dense(2)])  # fmt: skip
    dm.set_weights(km.get_weights())
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    dm.compile(optimizer=dlcore.optimizers.SGD(0.05), loss="mse")
    np.testing.assert_allclose(dm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0),
                               rtol=1e-5)  # fmt: skip
    for _ in range(3):
        np.testing.assert_allclose(dm.train_on_batch(x, y), km.train_on_batch(x, y), rtol=1e-5)
    dm(x)
    assert len(dm.losses) == 1


def test_weights_take_keras_variable_methods():
    w = Tensor(np.zeros((2, 2), np.float32))
    w.name = "dense/kernel"
    assert w.assign_add(np.ones((2, 2))) is w and (w.numpy() == 1).all()
    w.assign_sub(0.5)
    w.assign(Tensor(np.full((2, 2), 3.0, np.float32)))
    assert (w.value.numpy() == 3).all() and w.path == "dense/kernel"
    with pytest.raises(ValueError, match=r"shape \(3,\) for dense/kernel of shape \(2, 2\)"):
        w.assign(np.ones(3))
