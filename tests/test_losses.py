import numpy as np
import pytest

from dlcore import Tensor, losses
from dlcore import functional as F
from gradcheck import check_tensor_op

EPS = 1e-7


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def data(rng):
    logits = rng.standard_normal((6, 4)) * 2
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4)[labels]
    return logits, labels, onehot


# ------------------------------------------------------------ values vs hand formulas


def test_categorical_crossentropy_values(data):
    logits, labels, onehot = data
    expected = -np.log(softmax(logits)[np.arange(6), labels]).mean()
    for y_pred, kw in (
        (Tensor(logits), dict(from_logits=True)),
        (Tensor(logits).softmax(), {}),  # fused through the softmax
        (Tensor(softmax(logits)), {}),
    ):  # plain probabilities
        np.testing.assert_allclose(
            float(F.categorical_crossentropy(onehot, y_pred, **kw).data), expected, rtol=1e-6
        )
        np.testing.assert_allclose(
            float(F.sparse_categorical_crossentropy(labels, y_pred, **kw).data), expected, rtol=1e-6
        )


def test_binary_crossentropy_values(rng):
    z = rng.standard_normal((8, 1)) * 3
    y = rng.integers(0, 2, (8, 1)).astype(float)
    p = 1 / (1 + np.exp(-z))
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    for y_pred, kw in (
        (Tensor(z), dict(from_logits=True)),
        (Tensor(z).sigmoid(), {}),
        (Tensor(p), {}),
    ):
        np.testing.assert_allclose(
            float(F.binary_crossentropy(y, y_pred, **kw).data), expected, rtol=1e-6
        )
    # 1-D labels against a (N, 1) prediction, as Keras accepts
    np.testing.assert_allclose(
        float(F.binary_crossentropy(y[:, 0], Tensor(p)).data), expected, rtol=1e-6
    )


def test_mean_squared_and_absolute_error(rng):
    y, p = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    np.testing.assert_allclose(
        float(F.mean_squared_error(y, Tensor(p)).data), ((y - p) ** 2).mean()
    )
    np.testing.assert_allclose(
        float(F.mean_absolute_error(y, Tensor(p)).data), np.abs(y - p).mean()
    )
    per_sample = F.mean_squared_error(y, Tensor(p), reduction="none").numpy()
    np.testing.assert_allclose(per_sample, ((y - p) ** 2).mean(-1))
    np.testing.assert_allclose(
        float(F.mean_squared_error(y, Tensor(p), reduction="sum").data),
        ((y - p) ** 2).mean(-1).sum(),
    )


def test_fused_losses_are_stable_for_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-500.0, 500.0, 0.0]])
    y = np.eye(3)[[1, 0]]  # both rows predict the wrong class with certainty
    loss = F.categorical_crossentropy(y, Tensor(logits).softmax())
    np.testing.assert_allclose(float(loss.data), 1500.0)  # exact: log-sum-exp, no clipping
    z = np.array([[800.0], [-800.0]])
    bce = F.binary_crossentropy(np.array([[0.0], [1.0]]), Tensor(z).sigmoid())
    np.testing.assert_allclose(float(bce.data), 800.0)
    # probabilities without logits are clipped to [eps, 1 - eps], as Keras does
    clipped = F.categorical_crossentropy(y, Tensor(softmax(logits)))
    np.testing.assert_allclose(float(clipped.data), -np.log(EPS), rtol=1e-6)


# ------------------------------------------------------------ gradients


@pytest.mark.parametrize("path", ["logits", "fused", "probabilities"])
def test_categorical_crossentropy_gradients(data, path):
    logits, labels, onehot = data
    soft = onehot * 0.8 + 0.05  # soft labels exercise the sum(y) term

    def pred(t):
        return {
            "logits": t,
            "fused": t.softmax(),
            "probabilities": t.softmax().detach() * 0 + t.softmax(),
        }[path]

    kw = dict(from_logits=path == "logits")
    check_tensor_op(lambda t: F.categorical_crossentropy(soft, pred(t), **kw), logits)
    check_tensor_op(lambda t: F.sparse_categorical_crossentropy(labels, pred(t), **kw), logits)


@pytest.mark.parametrize("path", ["logits", "fused", "probabilities"])
def test_binary_crossentropy_gradients(rng, path):
    z = rng.standard_normal((6, 2))
    y = rng.integers(0, 2, (6, 2)).astype(float)

    def pred(t):
        return {"logits": t, "fused": t.sigmoid(), "probabilities": t.sigmoid() * 1.0}[path]

    check_tensor_op(lambda t: F.binary_crossentropy(y, pred(t), from_logits=path == "logits"), z)


def test_fused_gradient_is_softmax_minus_target(data):
    logits, labels, onehot = data
    t = Tensor(logits, requires_grad=True)
    F.categorical_crossentropy(onehot, t.softmax()).backward()
    np.testing.assert_allclose(t.grad, (softmax(logits) - onehot) / len(logits), rtol=1e-10)


def test_mse_gradients(rng):
    y = rng.standard_normal((4, 3))
    check_tensor_op(lambda t: F.mean_squared_error(y, t), rng.standard_normal((4, 3)))


# ------------------------------------------------------------ classes, names, errors


@pytest.mark.parametrize(
    "name,cls",
    [
        ("mse", losses.MeanSquaredError),
        ("mean_squared_error", losses.MeanSquaredError),
        ("mae", losses.MeanAbsoluteError),
        ("binary_crossentropy", losses.BinaryCrossentropy),
        ("categorical_crossentropy", losses.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ],
)
def test_losses_by_name(name, cls):
    assert isinstance(losses.get(name), cls)


def test_loss_objects_match_functions(data):
    logits, labels, onehot = data
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        float(loss(labels, Tensor(logits)).data),
        float(F.sparse_categorical_crossentropy(labels, Tensor(logits), from_logits=True).data),
    )
    assert isinstance(losses.get(losses.binary_crossentropy), losses.BinaryCrossentropy)


def test_loss_errors(data):
    logits, labels, onehot = data
    with pytest.raises(
        ValueError, match=r"y_true has shape \(6, 3\) but y_pred has shape \(6, 4\)"
    ):
        F.categorical_crossentropy(onehot[:, :3], Tensor(logits))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\), got values in \[0, 7\]"):
        F.sparse_categorical_crossentropy(np.array([0, 1, 2, 3, 7, 0]), Tensor(logits))
    with pytest.raises(ValueError, match="unknown loss 'hinge2'"):
        losses.get("hinge2")
    with pytest.raises(ValueError, match="reduction must be"):
        F.mean_squared_error(onehot, Tensor(logits), reduction="avg")


# ------------------------------------------------------------ Keras' custom-loss recipes


def _squared_per_sample(y_true, y_pred):
    return ((y_true - y_pred) ** 2).mean(axis=-1)  # one value per sample, as Keras' guide


class _CustomMSE(losses.Loss):
    def __init__(self, factor=0.5, name="custom_mse"):
        super().__init__(name=name)
        self.factor = factor

    def call(self, y_true, y_pred):
        return ((y_true - y_pred) ** 2).mean(axis=-1) * self.factor


def _regression(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.standard_normal((40, 2)).astype(np.float32)
    return x, y


def test_loss_subclass_with_call_reduces_with_sample_weights(rng):
    y = rng.standard_normal((6, 3))
    p = Tensor(rng.standard_normal((6, 3)), requires_grad=True)
    w = rng.random(6)
    per = ((y - p.data) ** 2).mean(-1) * 0.5
    loss = _CustomMSE()
    np.testing.assert_allclose(float(loss(y, p).data), per.mean(), rtol=1e-12)
    np.testing.assert_allclose(
        float(loss(y, p, sample_weight=w).data), (per * w).mean(), rtol=1e-12
    )
    summed = _CustomMSE()
    summed.reduction = "sum"
    np.testing.assert_allclose(
        float(summed(y, p, sample_weight=w).data), (per * w).sum(), rtol=1e-12
    )
    by_weight = _CustomMSE()
    by_weight.reduction = "mean_with_sample_weight"
    np.testing.assert_allclose(
        float(by_weight(y, p, sample_weight=w).data), (per * w).sum() / w.sum(), rtol=1e-12
    )
    loss(y, p, sample_weight=w).backward()
    np.testing.assert_allclose(p.grad, -(y - p.data) * w[:, None] / 3 / 6, rtol=1e-10)
    with pytest.raises(ValueError, match="sample_weight of shape"):
        loss(y, p, sample_weight=np.ones(5))


def test_builtin_losses_take_sample_weight_and_keras_reductions(rng):
    y = rng.standard_normal((5, 4))
    p = Tensor(rng.standard_normal((5, 4)))
    w = rng.random(5)
    per = ((y - p.data) ** 2).mean(-1)
    np.testing.assert_allclose(
        float(losses.MeanSquaredError()(y, p, sample_weight=w).data), (per * w).mean(), rtol=1e-12
    )
    none = losses.MeanSquaredError(reduction=None)(y, p)
    np.testing.assert_allclose(none.data, per, rtol=1e-12)
    assert losses.MeanSquaredError().get_config()["reduction"] == "sum_over_batch_size"
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.MeanSquaredError(reduction="avg")


def test_loss_without_call_or_fn_says_what_to_define():
    class Empty(losses.Loss):
        pass

    with pytest.raises(NotImplementedError, match="must define call"):
        Empty()(np.zeros((2, 1)), Tensor(np.zeros((2, 1))))


def test_function_forms_return_one_loss_per_sample(rng):
    y = rng.standard_normal((4, 3))
    p = rng.standard_normal((4, 3))
    np.testing.assert_allclose(
        losses.mean_squared_error(y, Tensor(p)).data, ((y - p) ** 2).mean(-1), rtol=1e-12
    )
    np.testing.assert_allclose(losses.mae(y, Tensor(p)).data, np.abs(y - p).mean(-1), rtol=1e-12)
    labels = rng.integers(0, 3, 4)
    probs = softmax(p)
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(labels, Tensor(probs)).data,
        -np.log(probs[np.arange(4), labels]),
        rtol=1e-6,
    )
    # compile(loss=<function form>) trains with its class
    assert isinstance(losses.get(losses.categorical_crossentropy), losses.CategoricalCrossentropy)


@pytest.mark.parametrize("loss", [_squared_per_sample, _CustomMSE(factor=1.0)])
def test_custom_losses_train_evaluate_and_weigh_samples(rng, loss):
    from dlcore import layers, models

    x, y = _regression(rng)

    def model():
        m = models.Sequential([layers.Input((5,)), layers.Dense(2, kernel_initializer="ones")])
        m.compile(optimizer="sgd", loss=loss)
        return m

    m = model()
    pred = m.predict(x, verbose=0)
    expected = ((y - pred) ** 2).mean()
    np.testing.assert_allclose(m.evaluate(x, y, verbose=0), expected, rtol=1e-5)
    w = rng.random(40).astype(np.float32)
    weighted = (((y - pred) ** 2).mean(-1) * w).mean()
    np.testing.assert_allclose(m.evaluate(x, y, sample_weight=w, verbose=0), weighted, rtol=1e-5)
    first = m.train_on_batch(x, y)
    np.testing.assert_allclose(first, expected, rtol=1e-5)
    history = model().fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]


def test_custom_losses_match_keras(rng):
    keras = pytest.importorskip("keras")
    from dlcore import layers, models

    x, y = _regression(rng)
    w = rng.random(40).astype(np.float32)

    def keras_loss(y_true, y_pred):
        return keras.ops.mean((y_true - y_pred) ** 2, axis=-1)

    km = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    km.compile(optimizer=keras.optimizers.SGD(0.05), loss=keras_loss)
    dm = models.Sequential([layers.Input((5,)), layers.Dense(2)])
    dm.compile(optimizer=__import__("dlcore").optimizers.SGD(0.05), loss=_squared_per_sample)
    dm.set_weights(km.get_weights())
    for _ in range(3):
        np.testing.assert_allclose(
            dm.train_on_batch(x, y, sample_weight=w),
            km.train_on_batch(x, y, sample_weight=w),
            rtol=2e-5,
        )
    np.testing.assert_allclose(
        dm.evaluate(x, y, verbose=0), km.evaluate(x, y, verbose=0), rtol=2e-5
    )


@pytest.mark.parametrize("bad", [[0.0, 2.0], [-1.0, 1.0], [0.0, np.nan]])
def test_binary_crossentropy_rejects_targets_outside_zero_one(bad):
    p = Tensor(np.array([[0.3], [0.6]]))
    with pytest.raises(ValueError, match=r"y_true holds values .* expected targets in \[0, 1\]"):
        F.binary_crossentropy(np.array(bad)[:, None], p)
    soft = F.binary_crossentropy(np.array([[0.0], [0.25]]), p)  # probabilities are targets
    assert np.isfinite(float(soft.data))


def test_huber_values_gradient_and_keras(rng):
    y = rng.standard_normal((6, 3)) * 2
    p = rng.standard_normal((6, 3)) * 2
    e = np.abs(p - y)
    for delta in (1.0, 0.3):
        per = np.where(e <= delta, 0.5 * e**2, delta * (e - 0.5 * delta)).mean(-1)
        np.testing.assert_allclose(losses.huber(y, Tensor(p), delta=delta).data, per, rtol=1e-12)
        loss = losses.Huber(delta=delta)
        np.testing.assert_allclose(float(loss(y, Tensor(p)).data), per.mean(), rtol=1e-12)
        check_tensor_op(lambda t, d=delta: losses.Huber(delta=d)(y, t), p)
    assert isinstance(losses.get("huber"), losses.Huber)
    assert losses.Huber(0.5).get_config()["delta"] == 0.5
    with pytest.raises(ValueError, match="delta must be >= 0"):
        losses.huber(y, Tensor(p), delta=-1.0)
    keras = pytest.importorskip("keras")
    w = rng.random(6)
    for delta in (1.0, 0.3):
        expected = keras.losses.Huber(delta=delta)(y.astype(np.float32), p.astype(np.float32),
                                                   sample_weight=w.astype(np.float32))  # fmt: skip
        got = losses.Huber(delta=delta)(y, Tensor(p), sample_weight=w)
        np.testing.assert_allclose(float(got.data), float(expected), rtol=1e-5)


@pytest.mark.parametrize("from_logits", [False, True])
def test_label_smoothing_matches_keras(rng, from_logits):
    keras = pytest.importorskip("keras")
    logits = rng.standard_normal((8, 4)).astype(np.float32) * 2
    onehot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]
    probs = softmax(logits).astype(np.float32)
    pred = logits if from_logits else probs
    for smoothing in (0.1, 0.3):
        ours = losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
        theirs = keras.losses.CategoricalCrossentropy(from_logits=from_logits,
                                                      label_smoothing=smoothing)  # fmt: skip
        np.testing.assert_allclose(float(ours(onehot, Tensor(pred)).data),
                                   float(theirs(onehot, pred)), rtol=1e-5)  # fmt: skip
        z = logits[:, :1]
        y = (z[:, 0] > 0).astype(np.float32)[:, None]
        p = z if from_logits else 1 / (1 + np.exp(-z))
        ours = losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
        theirs = keras.losses.BinaryCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
        np.testing.assert_allclose(float(ours(y, Tensor(p)).data), float(theirs(y, p)), rtol=1e-5)
    config = losses.CategoricalCrossentropy(label_smoothing=0.2).get_config()
    assert losses.CategoricalCrossentropy.from_config(config).label_smoothing == 0.2


def test_cross_entropy_options_keras_has_that_dlcore_lacks_say_so():
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        losses.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(NotImplementedError, match="ignore_class"):
        losses.SparseCategoricalCrossentropy(ignore_class=0)
    with pytest.raises(NotImplementedError, match="axis=1"):
        losses.CategoricalCrossentropy(axis=1)


KERAS_MORE = [
    ("MeanAbsolutePercentageError", "mean_absolute_percentage_error", "positive"),
    ("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error", "positive"),
    ("Hinge", "hinge", "binary"),
    ("SquaredHinge", "squared_hinge", "signed"),
    ("CategoricalHinge", "categorical_hinge", "onehot"),
    ("LogCosh", "log_cosh", "any"),
    ("Poisson", "poisson", "positive"),
    ("KLDivergence", "kl_divergence", "probabilities"),
    ("CosineSimilarity", "cosine_similarity", "any"),
]


def _targets(rng, kind, shape):
    if kind == "positive":
        return rng.random(shape).astype(np.float32) + 0.1
    if kind == "binary":
        return rng.integers(0, 2, shape).astype(np.float32)
    if kind == "signed":
        return np.sign(rng.standard_normal(shape)).astype(np.float32)
    if kind == "onehot":
        return np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[0])]
    if kind == "probabilities":
        return softmax(rng.standard_normal(shape)).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("cls,name,kind", KERAS_MORE)
def test_more_keras_losses_match_keras(rng, cls, name, kind):
    keras = pytest.importorskip("keras")
    shape = (6, 4)
    y = _targets(rng, kind, shape)
    p = (_targets(rng, "probabilities" if kind == "probabilities" else "positive", shape)
         if kind in ("positive", "probabilities") else rng.standard_normal(shape).astype(np.float32))  # fmt: skip
    w = rng.random(6).astype(np.float32)
    ours = getattr(losses, cls)()
    theirs = getattr(keras.losses, cls)()
    np.testing.assert_allclose(float(ours(y, Tensor(p)).data), float(theirs(y, p)), rtol=2e-5)
    np.testing.assert_allclose(float(ours(y, Tensor(p), sample_weight=w).data),
                               float(theirs(y, p, sample_weight=w)), rtol=2e-5)  # fmt: skip
    np.testing.assert_allclose(getattr(losses, name)(y, Tensor(p)).data,
                               np.asarray(getattr(keras.losses, name)(y, p)), rtol=2e-5)  # fmt: skip
    assert isinstance(losses.get(name), getattr(losses, cls))
    check_tensor_op(lambda t: getattr(losses, cls)()(y.astype(np.float64), t), p.astype(np.float64))


def test_short_names_of_the_percentage_and_log_errors():
    assert isinstance(losses.get("mape"), losses.MeanAbsolutePercentageError)
    assert isinstance(losses.get("msle"), losses.MeanSquaredLogarithmicError)
    assert isinstance(losses.get("kld"), losses.KLDivergence)
    assert losses.CosineSimilarity(axis=0).get_config()["axis"] == 0
