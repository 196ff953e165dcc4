import numpy as np
import pytest

from dlcore import metrics


@pytest.fixture
def multiclass(rng):
    y = rng.integers(0, 4, 200)
    scores = rng.random((200, 4)) + np.eye(4)[y] * rng.random((200, 1)) * 1.2
    return y, scores


def test_hand_computed_binary_case():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.3, 0.4, 0.6])  # predictions 1 1 0 1 0 0 0 1
    # tp = 3, fp = 1, fn = 1, tn = 3
    assert metrics.precision(y, p) == 0.75 and metrics.recall(y, p) == 0.75
    assert metrics.f1_score(y, p) == 0.75 and metrics.accuracy(y, p) == 0.75
    np.testing.assert_array_equal(metrics.confusion_matrix(y, p), [[3, 1], [1, 3]])
    assert metrics.binary_accuracy(y, p, threshold=0.75) == 0.75  # 0.7 and 0.6 flip to 0
    assert metrics.precision(y, p, threshold=0.85) == 1.0


def test_hand_computed_macro_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # class 0: p=1/2 r=1/2; class 1: p=2/3 r=1; class 2: p=1 r=1/2
    assert metrics.precision(y, pred, average="macro") == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert metrics.recall(y, pred, average="macro") == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    f1s = [0.5, 0.8, 2 / 3]
    assert metrics.f1_score(y, pred, average="macro") == pytest.approx(np.mean(f1s))
    assert metrics.f1_score(y, pred, average="micro") == pytest.approx(4 / 6)


def test_label_forms_agree(multiclass):
    y, scores = multiclass
    onehot = np.eye(4)[y]
    assert (
        metrics.accuracy(y, scores)
        == metrics.accuracy(onehot, scores)
        == metrics.categorical_accuracy(onehot, scores)
        == metrics.sparse_categorical_accuracy(y, scores)
    )
    assert metrics.f1_score(y, scores, average="macro") == metrics.f1_score(
        onehot, scores, average="macro"
    )


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_against_scikit_learn(multiclass, average):
    skm = pytest.importorskip("sklearn.metrics")
    y, scores = multiclass
    pred = scores.argmax(1)
    assert metrics.precision(y, scores, average=average) == pytest.approx(
        skm.precision_score(y, pred, average=average, zero_division=0)
    )
    assert metrics.recall(y, scores, average=average) == pytest.approx(
        skm.recall_score(y, pred, average=average, zero_division=0)
    )
    assert metrics.f1_score(y, scores, average=average) == pytest.approx(
        skm.f1_score(y, pred, average=average, zero_division=0)
    )
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y, scores), skm.confusion_matrix(y, pred)
    )


def test_streaming_metrics_equal_whole_array_metrics(multiclass):
    y, scores = multiclass
    for cls, fn in (
        (metrics.Precision, metrics.precision),
        (metrics.Recall, metrics.recall),
        (metrics.F1Score, metrics.f1_score),
    ):
        m = cls()
        for start in range(0, 200, 33):
            m.update_state(y[start : start + 33], scores[start : start + 33])
        assert m.result() == pytest.approx(fn(y, scores, average="macro"))
    acc = metrics.get("accuracy", "sparse_categorical_crossentropy")
    assert isinstance(acc, metrics.SparseCategoricalAccuracy) and acc.name == "accuracy"
    acc.update_state(y[:100], scores[:100])
    acc.update_state(y[100:], scores[100:])
    assert acc.result() == pytest.approx(metrics.accuracy(y, scores))
    acc.reset_state()
    assert acc.result() == 0.0


def test_metric_errors():
    with pytest.raises(ValueError, match="average='binary' needs two classes, got 3"):
        metrics.precision([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="y_true gives 3 labels but y_pred gives 2"):
        metrics.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="unknown metric 'auc2'"):
        metrics.get("auc2")


def test_merged_metrics_equal_one_metric_over_all_batches(multiclass):
    y, pred = multiclass
    # The first part sees only the classes 0 and 1 (true and predicted), so its
    # confusion matrix is smaller than the others' and merging must grow it.
    order = np.argsort(np.maximum(y, pred.argmax(1)), kind="stable")
    y, pred = y[order], pred[order]
    low = int(np.sum(np.maximum(y, pred.argmax(1)) <= 1))
    for make in (
        metrics.Accuracy,
        metrics.F1Score,
        metrics.Precision,
        lambda: metrics.MeanMetricWrapper(metrics.categorical_accuracy),
    ):
        whole, parts = make(), [make(), make(), make()]
        whole.update_state(np.eye(4)[y], pred)
        for part, sl in zip(parts, (slice(0, low), slice(low, 150), slice(150, 200))):
            part.update_state(np.eye(4)[y[sl]], pred[sl])
        merged = make()
        merged.merge_state([parts[0], parts[1].metric_state, parts[2]])
        assert merged.result() == pytest.approx(whole.result(), rel=1e-12)
        if isinstance(merged, metrics.F1Score):
            assert parts[0].metric_state["cm"].shape == (2, 2)


def test_merge_state_errors_name_what_was_expected():
    with pytest.raises(
        ValueError,
        match=r"Accuracy.merge_state: expected metrics of the same "
        r"kind or dicts of \['correct', 'count'\], "
        r"got \['binary', 'cm'\]",
    ):
        metrics.Accuracy().merge_state([metrics.F1Score()])

    class Undeclared(metrics.Metric):
        def reset_state(self):
            self.n = 0

    with pytest.raises(NotImplementedError, match="Undeclared declares no state_names"):
        Undeclared().merge_state([])
