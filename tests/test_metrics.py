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


# ------------------------------------------------------------------ an output's mask


def _masked_models(keras, head):
    """Embedding(mask_zero) -> LSTM(return_sequences) -> `head` in Keras and in dlcore,
    dlcore with Keras' weights: the output carries the tokens' mask."""
    import dlcore

    def build(lib, module):
        inp = lib.Input((7,))
        h = module.Embedding(20, 4, mask_zero=True)(inp)
        h = module.LSTM(5, return_sequences=True)(h)
        return lib.Model(inp, head(module)(h))

    k_model, d_model = build(keras, keras.layers), build(dlcore, dlcore.layers)
    d_model.set_weights(k_model.get_weights())
    return k_model, d_model


def _padded_tokens(rng):
    tokens = rng.integers(1, 20, (6, 7))
    lengths = np.array([7, 3, 5, 1, 6, 2])
    tokens[np.arange(7)[None] >= lengths[:, None]] = 0
    return tokens


@pytest.mark.parametrize(
    "head,loss,metric_names,y_of",
    [
        (lambda m: m.Dense(3, activation="softmax"), "sparse_categorical_crossentropy",
         ["accuracy", "sparse_categorical_accuracy"], lambda r, s: r.integers(0, 3, s)),
        (lambda m: m.Dense(3, activation="softmax"), "categorical_crossentropy",
         ["accuracy", "categorical_accuracy"],
         lambda r, s: np.eye(3, dtype=np.float32)[r.integers(0, 3, s)]),
        (lambda m: m.Dense(1, activation="sigmoid"), "binary_crossentropy",
         ["accuracy", "binary_accuracy", "precision"],
         lambda r, s: r.integers(0, 2, (*s, 1)).astype(np.float32)),
        (lambda m: m.Dense(3), "mse", ["mae", "mse", "root_mean_squared_error"],
         lambda r, s: r.standard_normal((*s, 3)).astype(np.float32)),
    ],
)  # fmt: skip
def test_metrics_of_a_masked_output_match_keras(head, loss, metric_names, y_of):
    """A sequence output with a mask: the accuracies and 'mae'/'mse' count the real steps
    only, with a (N, T) sample weight in weighted_metrics; precision and RMSE see every
    step - each as Keras 3 reports it from the same weights."""
    from keras_parity import keras_module

    keras = keras_module()
    rng = np.random.default_rng(21)
    tokens = _padded_tokens(rng)
    y = y_of(rng, tokens.shape)
    sw = rng.uniform(0.5, 2.0, tokens.shape).astype(np.float32)
    k_model, d_model = _masked_models(keras, head)
    for model in (k_model, d_model):
        model.compile("sgd", loss, metrics=list(metric_names), weighted_metrics=[metric_names[0]])
    want = k_model.evaluate(tokens, y, sample_weight=sw, verbose=0, return_dict=True)
    got = d_model.evaluate(tokens, y, sample_weight=sw, verbose=0, return_dict=True)
    # metric names first (Keras' order of keys differs), then every value
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=2e-5, abs=2e-6), name
    # the mask changes what the masked metrics report: the padded steps' targets do not count
    p = d_model.predict(tokens, verbose=0)
    real = tokens != 0
    if metric_names[0] == "accuracy" and loss == "sparse_categorical_crossentropy":
        hits = p.argmax(-1) == y
        assert got["accuracy"] == pytest.approx(hits[real].mean())
        assert hits[real].mean() != pytest.approx(hits.mean())
        assert got["weighted_accuracy"] == pytest.approx((hits * sw)[real].sum() / sw[real].sum())
    if loss == "mse":
        errors = np.abs(p - y).mean(-1)
        assert got["mae"] == pytest.approx(errors[real].mean(), rel=1e-6)
        assert errors[real].mean() != pytest.approx(errors.mean())


def test_metrics_without_a_mask_are_unchanged_and_weights_must_fit():
    """Without a mask a (N,) weight still weighs whole samples, and a (N, T) weight each
    step of a sequence; a weight of another shape is a ValueError naming both."""
    m = metrics.MeanAbsoluteError()
    y_true = np.zeros((2, 3, 4))
    y_pred = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(y_pred.mean())
    m.reset_state()
    m.update_state(y_true, y_pred, sample_weight=np.array([1.0, 0.0]))
    assert m.result() == pytest.approx(y_pred[0].mean())
    m.reset_state()
    step_weights = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    m.update_state(y_true, y_pred, sample_weight=step_weights)
    assert m.result() == pytest.approx((y_pred[0, 0].mean() + y_pred[1, 2].mean()) / 2)
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\).*expected \(2,\)"):
        m.update_state(y_true, y_pred, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"weights of shape \(2, 5\).*values of shape \(2, 3\)"):
        m.update_state(y_true, y_pred, sample_weight=np.ones((2, 5)))
    # a function of yours that returns its values flattened still works, as before
    m = metrics.MeanMetricWrapper(lambda t, p: np.abs(_np_of(p) - _np_of(t)).ravel(), "flat")
    m.update_state(y_true, y_pred)
    assert m.result() == pytest.approx(y_pred.mean())


def _np_of(x):
    return x.data if hasattr(x, "data") and not isinstance(x, np.ndarray) else np.asarray(x)


def test_a_metric_of_the_whole_batch_on_a_masked_output_is_not_masked():
    """A function that returns one value per batch (dlcore.losses' functions do) cannot
    leave padded steps out: the batch weighs its size, as without a mask, rather than
    its count of real steps."""
    m = metrics.MeanMetricWrapper(lambda t, p: float(np.mean(_np_of(p))), "batch_mean")
    mask = np.array([[True, False, False], [True, True, True]])
    m._update_masked(np.zeros((2, 3, 1)), np.ones((2, 3, 1)), mask)
    m._update_masked(np.zeros((1, 3, 1)), np.full((1, 3, 1), 4.0), np.ones((1, 3), bool))
    assert m.result() == pytest.approx((1.0 * 2 + 4.0 * 1) / 3)


@pytest.mark.parametrize("kind", ["one-hot softmax", "multi-hot sigmoid"])
def test_precision_and_recall_read_wide_targets_as_keras(rng, kind):
    keras = pytest.importorskip("keras")
    n, c = 40, 4
    if kind == "one-hot softmax":
        z = rng.standard_normal((n, c)) * 2
        y_pred = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        y_true = np.eye(c)[rng.integers(0, c, n)]
    else:
        y_pred = rng.random((n, c))
        y_true = (rng.random((n, c)) > 0.6).astype(np.float64)
    w = rng.random(n)
    for ours, theirs in ((metrics.Precision(), keras.metrics.Precision()),
                         (metrics.Recall(), keras.metrics.Recall()),
                         (metrics.Precision(thresholds=0.3), keras.metrics.Precision(0.3))):  # fmt: skip
        for half in (slice(0, 25), slice(25, n)):  # streamed over two batches
            ours.update_state(y_true[half], y_pred[half], sample_weight=w[half])
            theirs.update_state(y_true[half], y_pred[half], sample_weight=w[half])
        assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)


def test_precision_keras_arguments_it_does_not_support_say_so():
    with pytest.raises(NotImplementedError, match="top_k"):
        metrics.Precision(top_k=2)
    with pytest.raises(NotImplementedError, match="class_id"):
        metrics.Recall(class_id=1)
    with pytest.raises(NotImplementedError, match="one threshold"):
        metrics.Precision(thresholds=[0.3, 0.6])
    assert metrics.Precision(thresholds=[0.7]).threshold == 0.7


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracies_match_keras(rng, k):
    keras = pytest.importorskip("keras")
    y_pred = rng.random((30, 5)).astype(np.float32)
    y_pred[3] = 0.5  # a row of ties: every class ranks first
    y_pred[4, 2] = np.nan
    labels = rng.integers(0, 5, 30)
    labels[4] = 2  # the NaN score ranks last
    w = rng.random(30).astype(np.float32)
    for ours, theirs, y in (
        (metrics.SparseTopKCategoricalAccuracy(k=k),
         keras.metrics.SparseTopKCategoricalAccuracy(k=k), labels),
        (metrics.TopKCategoricalAccuracy(k=k),
         keras.metrics.TopKCategoricalAccuracy(k=k), np.eye(5, dtype=np.float32)[labels]),
    ):  # fmt: skip
        for half in (slice(0, 12), slice(12, 30)):
            ours.update_state(y[half], y_pred[half], sample_weight=w[half])
            theirs.update_state(y[half], y_pred[half], sample_weight=w[half])
        assert float(ours.result()) == pytest.approx(float(theirs.result()), rel=1e-6)
    assert metrics.get("sparse_top_k_categorical_accuracy").k == 5


def test_top_k_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        metrics.TopKCategoricalAccuracy(k=0)
    m = metrics.SparseTopKCategoricalAccuracy(k=2)
    with pytest.raises(ValueError, match=r"labels from 0 to 7; expected labels in \[0, 3\)"):
        m.update_state(np.array([0, 7]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="gives 3 labels for 2 rows"):
        m.update_state(np.array([0, 1, 2]), np.zeros((2, 3)))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        dict(curve="PR"),
        dict(summation_method="minoring"),
        dict(curve="PR", summation_method="majoring"),
        dict(num_thresholds=7),
        dict(thresholds=[0.25, 0.5, 0.8]),
        dict(multi_label=True),
        dict(multi_label=True, curve="PR"),
        dict(from_logits=True),
        dict(raw_scores=True),
        dict(raw_scores=True, multi_label=True),
    ],
)
def test_auc_matches_keras(rng, kw):
    keras = pytest.importorskip("keras")
    kw = dict(kw)
    if kw.get("from_logits") or kw.pop("raw_scores", False):  # raw: scores outside [0, 1]
        y_pred = rng.standard_normal((50, 3)).astype(np.float32) * 2
    else:
        y_pred = rng.random((50, 3)).astype(np.float32)
        y_pred[:5] = np.round(y_pred[:5] * 6) / 6  # some on the thresholds
    y_true = (rng.random((50, 3)) > 0.6).astype(np.float32)
    w = rng.random(50).astype(np.float32)
    ours, theirs = metrics.AUC(**kw), keras.metrics.AUC(**kw)
    for half in (slice(0, 20), slice(20, 50)):
        ours.update_state(y_true[half], y_pred[half], sample_weight=w[half])
        theirs.update_state(y_true[half], y_pred[half], sample_weight=w[half])
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5, abs=1e-6)
    again = metrics.AUC.from_config(ours.get_config())
    again.merge_state([ours])
    assert again.result() == pytest.approx(ours.result(), rel=1e-12)


def test_auc_in_fit_and_bad_input(rng):
    from dlcore import layers, models

    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    m = models.Sequential([layers.Input((4,)), layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["auc"])
    assert "auc" in m.fit(x, y, epochs=1, verbose=0).history
    assert 0.0 <= m.evaluate(x, y, verbose=0, return_dict=True)["auc"] <= 1.0
    with pytest.raises(ValueError, match="curve must be 'ROC' or 'PR'"):
        metrics.AUC(curve="PRGAIN2")
    with pytest.raises(ValueError, match="num_thresholds must be an integer > 1"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="expected the same shape"):
        metrics.AUC().update_state(np.zeros((4, 2)), np.zeros((4, 3)))
    assert metrics.AUC().result() == 0.0


def test_mean_takes_arrays_and_sample_weights_as_keras(rng):
    keras = pytest.importorskip("keras")
    values = rng.standard_normal((6, 3)).astype(np.float32)
    w = rng.random(6).astype(np.float32)
    ours, theirs = metrics.Mean(), keras.metrics.Mean()
    ours.update_state(values, sample_weight=w)
    theirs.update_state(values, sample_weight=w)
    ours.update_state(2.5)
    theirs.update_state(2.5)
    ours.update_state(values[:2])
    theirs.update_state(values[:2])
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5)
    with pytest.raises(ValueError, match="sample_weight of shape"):
        metrics.Mean().update_state(values, sample_weight=np.ones(4))


@pytest.mark.parametrize(
    "cls,kind",
    [("MeanAbsolutePercentageError", "positive"), ("MeanSquaredLogarithmicError", "positive"),
     ("Hinge", "binary"), ("SquaredHinge", "binary"), ("CategoricalHinge", "onehot"),
     ("Poisson", "positive"), ("KLDivergence", "positive"), ("LogCoshError", "any"),
     ("CosineSimilarity", "any")],
)  # fmt: skip
def test_loss_metrics_match_keras(rng, cls, kind):
    keras = pytest.importorskip("keras")
    shape = (8, 3)
    y = {"positive": rng.random(shape) + 0.1, "binary": rng.integers(0, 2, shape) * 1.0,
         "onehot": np.eye(3)[rng.integers(0, 3, 8)], "any": rng.standard_normal(shape)}[kind]  # fmt: skip
    y = y.astype(np.float32)
    p = (rng.random(shape) + 0.1).astype(np.float32)
    w = rng.random(8).astype(np.float32)
    ours, theirs = getattr(metrics, cls)(), getattr(keras.metrics, cls)()
    for half in (slice(0, 3), slice(3, 8)):
        ours.update_state(y[half], p[half], sample_weight=w[half])
        theirs.update_state(y[half], p[half], sample_weight=w[half])
    assert ours.result() == pytest.approx(float(theirs.result()), rel=2e-5)
    assert ours.name == theirs.name
    assert isinstance(metrics.get(ours.name), getattr(metrics, cls))


def test_short_metric_names_are_logged_as_given():
    from dlcore import layers, models

    m = models.Sequential([layers.Input((3,)), layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse", metrics=["mape", "msle", "cosine_similarity"])
    history = m.fit(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32), verbose=0).history
    assert set(history) == {"loss", "mape", "msle", "cosine_similarity"}
