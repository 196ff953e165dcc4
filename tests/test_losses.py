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
