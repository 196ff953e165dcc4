"""Classification metrics: plain functions over whole arrays, and streaming metric
objects that ``fit`` / ``evaluate`` update batch by batch (exact over the epoch, not an
average of batch figures).

Predictions are read the way Keras reads them: a probability (or logit) column of
width 1 is a binary prediction, thresholded at ``threshold``; a wider last axis is a
class score per class, reduced with argmax. Targets may be integer labels, one-hot
rows, or 0/1 values.
"""

from __future__ import annotations

import numpy as np

from dlcore.registry import Registry
from dlcore.tensor import Tensor

__all__ = [
    "Metric",
    "Mean",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "RootMeanSquaredError",
    "AUC",
    "Accuracy",
    "CategoricalHinge",
    "CosineSimilarity",
    "Hinge",
    "KLDivergence",
    "LogCoshError",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "Poisson",
    "SquaredHinge",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "Precision",
    "Recall",
    "F1Score",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "confusion_matrix",
    "precision",
    "recall",
    "f1_score",
    "f1",
    "deserialize",
    "get",
    "registry",
    "serialize",
]

registry = Registry("metric")


def _np(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


# ---------------------------------------------------------------- label helpers


def _is_binary(y_pred):
    return y_pred.ndim <= 1 or y_pred.shape[-1] == 1


def _predicted_labels(y_pred, threshold=0.5):
    y_pred = _np(y_pred)
    if y_pred.dtype.kind in "iub":
        return y_pred.reshape(-1).astype(np.int64)
    if _is_binary(y_pred):
        return (y_pred.reshape(-1) > threshold).astype(np.int64)
    return y_pred.reshape(-1, y_pred.shape[-1]).argmax(axis=-1)


def _true_labels(y_true, y_pred):
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_pred.ndim >= 2 and y_pred.shape[-1] > 1 and y_true.shape == y_pred.shape:
        return y_true.reshape(-1, y_true.shape[-1]).argmax(axis=-1)  # one-hot rows
    flat = y_true.reshape(-1)
    if flat.dtype.kind == "f":
        if _is_binary(y_pred):
            return (flat > 0.5).astype(np.int64)
        return np.rint(flat).astype(np.int64)
    return flat.astype(np.int64)


def _labels(y_true, y_pred, threshold=0.5):
    t, p = _true_labels(y_true, y_pred), _predicted_labels(y_pred, threshold)
    if t.shape != p.shape:
        raise ValueError(
            f"y_true gives {t.size} labels but y_pred gives {p.size} "
            f"(shapes {np.shape(_np(y_true))} and {np.shape(_np(y_pred))})"
        )
    return t, p


# ---------------------------------------------------------------- functions


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Share of entries where (y_pred > threshold) equals y_true."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    return float(np.mean((y_pred > threshold) == (y_true > 0.5)))


def categorical_accuracy(y_true, y_pred):
    """Share of rows where argmax(y_pred) equals argmax(y_true) (one-hot targets)."""
    return float(np.mean(_np(y_true).argmax(axis=-1) == _np(y_pred).argmax(axis=-1)))


def sparse_categorical_accuracy(y_true, y_pred):
    """Share of rows where argmax(y_pred) equals the integer label y_true."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    return float(np.mean(y_true.reshape(-1) == y_pred.reshape(-1, y_pred.shape[-1]).argmax(-1)))


def accuracy(y_true, y_pred, threshold=0.5):
    """Accuracy with Keras' reading of the shapes (binary, one-hot or integer labels)."""
    t, p = _labels(y_true, y_pred, threshold)
    return float(np.mean(t == p)) if t.size else 0.0


def confusion_matrix(y_true, y_pred, num_classes=None, threshold=0.5, sample_weight=None):
    """Counts C[i, j] of samples of true class i predicted as class j (with
    ``sample_weight``, the sums of their weights)."""
    t, p = _labels(y_true, y_pred, threshold)
    if t.size and min(t.min(), p.min()) < 0:
        raise ValueError("confusion_matrix: labels must be non-negative")
    k = max(int(t.max(initial=-1)), int(p.max(initial=-1))) + 1
    if num_classes is not None:
        if k > num_classes:
            raise ValueError(
                f"confusion_matrix: label {k - 1} does not fit num_classes={num_classes}"
            )
        k = num_classes
    weights = (
        None if sample_weight is None else _sample_weights(sample_weight, len(_np(y_true)), t.size)
    )
    return np.bincount(t * k + p, weights=weights, minlength=k * k).reshape(k, k)


def _sample_weights(sample_weight, n, size):
    """Per-sample weights (n,) spread over ``size`` label positions (n * per-sample)."""
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.size == size:
        return w
    if w.size != n or size % max(n, 1):
        raise ValueError(f"sample_weight has {w.size} values for {n} samples")
    return np.repeat(w, size // max(n, 1))


def _scores_from_confusion(cm, average, what):
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    if average == "binary":
        if cm.shape[0] > 2:
            raise ValueError(
                f"{what}: average='binary' needs two classes, got {cm.shape[0]}; "
                f"use average='macro' or 'micro'"
            )
        tp, predicted, actual = tp[1:], predicted[1:], actual[1:]
    elif average == "micro":
        tp, predicted, actual = (
            tp.sum(keepdims=True),
            predicted.sum(keepdims=True),
            actual.sum(keepdims=True),
        )
    elif average == "macro":
        present = (predicted + actual) > 0  # classes in y_true or y_pred, as scikit-learn
        tp, predicted, actual = tp[present], predicted[present], actual[present]
    else:
        raise ValueError(f"{what}: average must be 'binary', 'macro' or 'micro', got {average!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(predicted > 0, tp / predicted, 0.0)
        rec = np.where(actual > 0, tp / actual, 0.0)
        f1_ = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return prec, rec, f1_


def _score(index, y_true, y_pred, average, threshold, what):
    cm = confusion_matrix(y_true, y_pred, threshold=threshold)
    if cm.shape[0] < 2:
        cm = np.pad(cm, ((0, 2 - cm.shape[0]), (0, 2 - cm.shape[0])))
    values = _scores_from_confusion(cm, average, what)[index]
    return float(values.mean()) if values.size else 0.0


def precision(y_true, y_pred, average="binary", threshold=0.5):
    """tp / (tp + fp); 'binary' for class 1, 'macro' the mean over classes, 'micro'
    from the pooled counts. A class never predicted has precision 0."""
    return _score(0, y_true, y_pred, average, threshold, "precision")


def recall(y_true, y_pred, average="binary", threshold=0.5):
    """tp / (tp + fn), averaged as in :func:`precision`."""
    return _score(1, y_true, y_pred, average, threshold, "recall")


def f1_score(y_true, y_pred, average="binary", threshold=0.5):
    """Harmonic mean of precision and recall per class, averaged as in :func:`precision`
    (macro: the mean of the per-class F1, as scikit-learn)."""
    return _score(2, y_true, y_pred, average, threshold, "f1_score")


f1 = f1_score


# ---------------------------------------------------------------- streaming metrics


class Metric:
    """A metric accumulated over batches: ``update_state``, ``result``, ``reset_state``;
    ``merge_state`` adds in what other metrics of the same kind accumulated (how
    ``dlcore.distributed`` combines the ranks' figures).

    A subclass lists in ``state_names`` the attributes that accumulate its state and
    that merging adds together (or overrides ``metric_state`` and ``merge_state``).
    """

    name = "metric"
    state_names = ()
    # Whether compile's metrics weigh this metric's values by the output's mask (a
    # padded step counts 0), as Keras 3 does for its accuracies and its
    # mean-of-a-function metrics; the others (precision, recall, RMSE) see every step.
    honours_output_mask = False

    def __init__(self, name=None, dtype=None):
        if name:
            self.name = name
        self.dtype = np.dtype(dtype or "float32")
        self._variables = []
        if type(self).reset_state is not Metric.reset_state:
            try:
                self.reset_state()  # dlcore's metrics set their state there
            except AttributeError:  # a Keras-style subclass, resetting variables it
                pass  # creates with add_variable once this __init__ returns

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):  # fmt: skip
        """A state variable, as Keras' ``Metric.add_variable``: a Tensor whose
        ``assign``, ``assign_add`` and ``assign_sub`` update it in place; the default
        ``reset_state`` sets it back to zeros."""
        from dlcore import initializers

        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        dtype = np.dtype(dtype or self.dtype)
        values = np.asarray(initializers.get(initializer)(shape, dtype), dtype=dtype)
        variable = Tensor(values.reshape(shape))
        variable.name = f"{self.name}/{name or f'variable_{len(self._variables)}'}"
        self._variables.append(variable)
        return variable

    add_weight = add_variable

    @property
    def variables(self):
        return list(self._variables)

    def reset_state(self):
        if not self._variables:
            raise NotImplementedError(
                f"{type(self).__name__} must define reset_state (or create its state with "
                f"add_variable)"
            )
        for variable in self._variables:
            variable.assign(np.zeros_like(variable.data))

    def update_state(self, y_true, y_pred):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, y_true, y_pred):
        self.update_state(y_true, y_pred)
        return self.result()

    def _update_masked(self, y_true, y_pred, mask, sample_weight=None):
        """update_state for an output that carries a mask (compile's metrics call it when
        ``honours_output_mask``): a padded step weighs 0, a real one its sample weight."""
        self.update_state(y_true, y_pred, sample_weight=_mask_weights(self, mask, sample_weight))

    @property
    def metric_state(self):
        """The accumulated state: a dict from each of ``state_names`` to its value."""
        if not self.state_names and self._variables:  # Keras-style: its variables
            return {v.name: v.data for v in self._variables}
        if not self.state_names:
            raise NotImplementedError(
                f"{type(self).__name__} declares no state_names, so its state cannot be read "
                f"or merged; list the attributes that accumulate it (merging adds them) or "
                f"override metric_state and merge_state"
            )
        return {n: getattr(self, n) for n in self.state_names}

    def merge_state(self, metrics):
        """Adds the state of other metrics of the same kind (Metric objects or their
        ``metric_state`` dicts) to this one, as if it had seen their batches too."""
        names = self.metric_state.keys()
        for other in metrics:
            state = _state_of(other, self, names)
            if not self.state_names:  # Keras-style variables, summed
                for v in self._variables:
                    v.assign_add(state[v.name])
                continue
            for n in names:
                setattr(self, n, getattr(self, n) + state[n])

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _mask_weights(metric, mask, sample_weight):
    """A metric's weights for an output's mask: 1 on a real step and 0 on a padded one
    (no rescaling, as Keras reduces a metric's mask), times the sample weight."""
    m = np.asarray(mask, dtype=np.float64)
    if sample_weight is None:
        return m
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim > m.ndim or w.shape != m.shape[: w.ndim]:
        raise ValueError(
            f"{metric.name}: sample_weight of shape {w.shape} does not fit the output's mask "
            f"of shape {m.shape}; expected (N,) or the mask's shape"
        )
    return m * w.reshape(w.shape + (1,) * (m.ndim - w.ndim))


def _state_of(other, metric, names):
    state = other.metric_state if isinstance(other, Metric) else other
    if not isinstance(state, dict) or set(state) != set(names):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{type(metric).__name__}.merge_state: expected metrics of the same "
            f"kind or dicts of {sorted(names)}, got {got}"
        )
    return state


class Mean(Metric):
    """Weighted mean of what is given to ``update_state(values, sample_weight=None)``, as
    Keras reads it: a number, or an array whose samples (rows) each count once, as the
    mean of their values, weighed by their ``sample_weight`` when given."""

    name = "mean"
    state_names = ("total", "count")

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None, weight=None):
        if weight is not None:  # dlcore's earlier name
            sample_weight = weight
        if type(values) in (float, int) and (sample_weight is None or
                                             type(sample_weight) in (float, int)):  # fmt: skip
            w = 1.0 if sample_weight is None else sample_weight  # the loss trackers' case
            self.total += float(values) * w
            self.count += w
            return
        # Keras' reading: each sample's values averaged to one value (weighed by its
        # weight); the count is the number of samples, or the sum of their weights
        v = np.asarray(_np(values), dtype=np.float64)
        if sample_weight is None:
            if v.ndim > 1:
                v = v.mean(axis=tuple(range(1, v.ndim)))
            self.total += float(v.sum())
            self.count += len(v) if v.ndim else 1
            return
        w = np.asarray(_np(sample_weight), dtype=np.float64)
        if w.ndim > v.ndim or w.shape != v.shape[: w.ndim]:
            raise ValueError(
                f"{self.name}: sample_weight of shape {w.shape} does not fit values of shape "
                f"{v.shape}; expected a number or a shape that leads the values'"
            )
        if v.ndim > w.ndim:
            v = v.mean(axis=tuple(range(w.ndim, v.ndim)))
        v = v * w
        if w.ndim > 1:
            w = w.mean(axis=tuple(range(1, w.ndim)))
        self.total += float(v.sum())
        self.count += float(w.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Metric):
    """The weighted mean of fn(y_true, y_pred): a value per sample (or per step, or per
    element, averaged over the axes the weights do not cover), or one batch mean."""

    state_names = ("total", "count")
    honours_output_mask = True

    def __init__(self, fn, name=None):
        self.fn = fn
        super().__init__(name or getattr(fn, "__name__", "metric"))

    def reset_state(self):
        self.total, self.count = 0.0, 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._add(np.asarray(self.fn(y_true, y_pred), dtype=np.float64), len(_np(y_pred)),
                  sample_weight)  # fmt: skip

    def _update_masked(self, y_true, y_pred, mask, sample_weight=None):
        if type(self).update_state is not MeanMetricWrapper.update_state:
            return super()._update_masked(y_true, y_pred, mask, sample_weight)  # its own
        values = np.asarray(self.fn(y_true, y_pred), dtype=np.float64)
        if values.ndim == 0:  # one value for the batch: no steps to leave out
            return self._add(values, len(_np(y_pred)), sample_weight)
        self._add(values, len(values), _mask_weights(self, mask, sample_weight))

    def _add(self, values, n, sample_weight):
        if values.ndim == 0:  # a function of the batch: weighed by the batch's size
            w = n if sample_weight is None else float(np.sum(sample_weight))
            self.total += float(values) * w
            self.count += w
            return
        w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        if w is None or w.ndim <= 1:  # a value per sample (the rest averaged)
            if w is not None and w.ndim == 1 and w.shape != (n,):
                raise ValueError(
                    f"{self.name}: sample_weight of shape {w.shape} does not fit the "
                    f"{n} samples of values of shape {values.shape}; expected ({n},)"
                )
            w = np.ones(n) if w is None else np.broadcast_to(w, (n,))
            values = values.reshape(n, -1).mean(axis=1)
        else:  # weights over the values' leading axes (steps of a sequence)
            if values.shape[: w.ndim] != w.shape:
                if values.size % max(w.size, 1):
                    raise ValueError(
                        f"{self.name}: weights of shape {w.shape} (the sample weight or the "
                        f"output's mask) do not fit the metric's values of shape "
                        f"{values.shape}; expected values over (N, ...) of those axes"
                    )
            values = values.reshape(*w.shape, -1).mean(axis=-1)
        self.total += float(np.sum(values * w))
        self.count += float(np.sum(w))

    def result(self):
        return self.total / self.count if self.count else 0.0


class _CountingMetric(Metric):
    state_names = ("correct", "count")
    honours_output_mask = True

    def reset_state(self):
        self.correct, self.count = 0, 0

    def result(self):
        return self.correct / self.count if self.count else 0.0

    def _add(self, hits, sample_weight=None):
        if sample_weight is None:
            self.correct += int(np.count_nonzero(hits))
            self.count += hits.size
            return
        w = np.asarray(sample_weight, dtype=np.float64)
        w = np.broadcast_to(w.reshape(w.shape + (1,) * (hits.ndim - w.ndim)), hits.shape)
        self.correct += float(np.sum(w * hits))
        self.count += float(np.sum(w))


@registry.register(aliases=("binary_accuracy",))
class BinaryAccuracy(_CountingMetric):
    name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _np(y_true), _np(y_pred)
        if y_true.ndim == y_pred.ndim - 1:
            y_true = y_true[..., None]
        self._add((y_pred > self.threshold) == (y_true > 0.5), sample_weight)


@registry.register(aliases=("categorical_accuracy",))
class CategoricalAccuracy(_CountingMetric):
    name = "categorical_accuracy"

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._add(_np(y_true).argmax(axis=-1) == _np(y_pred).argmax(axis=-1), sample_weight)


@registry.register(aliases=("sparse_categorical_accuracy",))
class SparseCategoricalAccuracy(_CountingMetric):
    name = "sparse_categorical_accuracy"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred)
        hits = _np(y_true).reshape(-1) == y_pred.reshape(-1, y_pred.shape[-1]).argmax(-1)
        self._add(hits, None if sample_weight is None else
                  _sample_weights(sample_weight, len(y_pred), hits.size))  # fmt: skip


def _in_top_k(labels, y_pred, k):
    """Whether each row's label is among its k highest scores: its rank (1 + the number
    of scores above the label's) is at most k, so ties count in its favour; a NaN score
    for the label ranks last (Keras' in_top_k)."""
    y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if labels.size != len(y_pred):
        raise ValueError(f"y_true gives {labels.size} labels for {len(y_pred)} rows of y_pred")
    if labels.size and (labels.min() < 0 or labels.max() >= y_pred.shape[-1]):
        raise ValueError(
            f"y_true holds labels from {labels.min()} to {labels.max()}; expected labels in "
            f"[0, {y_pred.shape[-1]})"
        )
    at_label = np.take_along_axis(y_pred, labels[:, None], axis=-1)
    at_label = np.where(np.isnan(at_label), -np.inf, at_label)
    return 1 + np.sum(y_pred > at_label, axis=-1) <= k


class _TopK(_CountingMetric):
    honours_output_mask = False

    def __init__(self, k=5, name=None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{type(self).__name__}: k must be an integer >= 1, got {k!r}")
        self.k = int(k)
        super().__init__(name)

    def get_config(self):
        return {"k": self.k, "name": self.name}


@registry.register(aliases=("top_k_categorical_accuracy",))
class TopKCategoricalAccuracy(_TopK):
    """Share of rows whose one-hot target's class is among the k highest scores."""

    name = "top_k_categorical_accuracy"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred)
        hits = _in_top_k(_np(y_true).reshape(-1, y_pred.shape[-1]).argmax(-1), y_pred, self.k)
        self._add(hits, None if sample_weight is None else
                  _sample_weights(sample_weight, len(y_pred), hits.size))  # fmt: skip


@registry.register(aliases=("sparse_top_k_categorical_accuracy",))
class SparseTopKCategoricalAccuracy(_TopK):
    """Share of rows whose integer label is among the k highest scores."""

    name = "sparse_top_k_categorical_accuracy"

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = _np(y_pred)
        hits = _in_top_k(_np(y_true), y_pred, self.k)
        self._add(hits, None if sample_weight is None else
                  _sample_weights(sample_weight, len(y_pred), hits.size))  # fmt: skip


@registry.register(aliases=("accuracy", "acc"))
class Accuracy(_CountingMetric):
    """Keras' 'accuracy': binary, categorical or sparse, from the loss it is compiled
    with or, failing that, from the shapes."""

    name = "accuracy"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = threshold
        super().__init__(name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _labels(y_true, y_pred, self.threshold)
        self._add(t == p, None if sample_weight is None else
                  _sample_weights(sample_weight, len(_np(y_pred)), t.size))  # fmt: skip


class _ConfusionMetric(Metric):
    index = 0
    elementwise = False  # Keras' reading of targets shaped like a wide y_pred

    def __init__(self, name=None, average=None, threshold=0.5):
        self.average, self.threshold = average, threshold
        super().__init__(name)

    def reset_state(self):
        self.cm = np.zeros((2, 2), np.int64)
        self._binary = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _np(y_true), _np(y_pred)
        if self.elementwise and self.average is None and t.shape == p.shape and not _is_binary(p):
            # one-hot or multi-hot targets: as Keras, every entry is a binary decision,
            # y_pred > threshold against y_true != 0, pooled over the entries
            self._binary = True
            labels = (t != 0).reshape(-1).astype(np.int64)
            guesses = (p > self.threshold).reshape(-1).astype(np.int64)
            weights = None if sample_weight is None else _sample_weights(
                sample_weight, len(p), labels.size)  # fmt: skip
            self._add_counts(np.bincount(labels * 2 + guesses, weights=weights,
                                         minlength=4).reshape(2, 2))  # fmt: skip
            return
        if self._binary is None:
            self._binary = _is_binary(p)
        self._add_counts(confusion_matrix(y_true, y_pred, threshold=self.threshold,
                                          sample_weight=sample_weight))  # fmt: skip

    def _add_counts(self, cm):
        # Classes appear as they are seen, so the matrix grows to the larger of the two.
        k = max(cm.shape[0], self.cm.shape[0])
        grown = np.zeros((k, k), np.result_type(self.cm, cm))
        grown[: self.cm.shape[0], : self.cm.shape[0]] += self.cm
        grown[: cm.shape[0], : cm.shape[0]] += cm
        self.cm = grown

    @property
    def metric_state(self):
        """The confusion counts ``cm`` and whether the predictions are ``binary`` (None
        before any batch)."""
        return {"cm": self.cm, "binary": self._binary}

    def merge_state(self, metrics):
        for other in metrics:
            state = _state_of(other, self, ("cm", "binary"))
            self._add_counts(np.asarray(state["cm"]))
            if self._binary is None:
                self._binary = state["binary"]

    def result(self):
        average = self.average or ("binary" if self._binary in (None, True) else "macro")
        values = _scores_from_confusion(self.cm, average, self.name)[self.index]
        return float(values.mean()) if values.size else 0.0

    def get_config(self):
        return {"name": self.name, "average": self.average, "threshold": self.threshold}


class _KerasConfusionMetric(_ConfusionMetric):
    elementwise = True

    def __init__(
        self, thresholds=None, top_k=None, class_id=None, name=None, average=None, threshold=0.5
    ):
        for arg, value in (("top_k", top_k), ("class_id", class_id)):
            if value is not None:
                raise NotImplementedError(
                    f"{type(self).__name__}({arg}={value!r}) is not supported; leave {arg} None"
                )
        if thresholds is not None:  # Keras' name for the one threshold
            if isinstance(thresholds, (list, tuple)) and len(thresholds) == 1:
                thresholds = thresholds[0]
            if isinstance(thresholds, (list, tuple, np.ndarray)):
                raise NotImplementedError(
                    f"{type(self).__name__}: one threshold is supported, got {thresholds!r}"
                )
            threshold = float(thresholds)
        super().__init__(name, average, threshold)


@registry.register(aliases=("precision",))
class Precision(_KerasConfusionMetric):
    """Precision over everything seen since the last reset. A one-column prediction is
    binary (y_pred > threshold); targets shaped like a wider prediction (one-hot or
    multi-hot rows) are read as Keras reads them, every entry a binary decision pooled
    over all entries; integer labels against a wider prediction take its argmax and
    average the classes' precisions ('macro', or ``average``)."""

    name = "precision"
    index = 0


@registry.register(aliases=("recall",))
class Recall(_KerasConfusionMetric):
    """Recall, read as :class:`Precision` reads its inputs."""

    name = "recall"
    index = 1


@registry.register(aliases=("f1", "f1_score"))
class F1Score(_ConfusionMetric):
    name = "f1"
    index = 2


def _divide_no_nan(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1), 0.0)


@registry.register(aliases=("auc",))
class AUC(Metric):
    """Area under the ROC or precision-recall curve over everything seen since the last
    reset, approximated as Keras does: confusion counts at ``num_thresholds`` thresholds
    (evenly spaced over [0, 1], with one just below 0 and one just above 1, or the given
    ``thresholds``), a prediction counting as positive above a threshold, then a
    Riemann sum ('interpolation', 'minoring' or 'majoring'; 'interpolation' on the PR
    curve is Davis and Goadrich's). Predictions are probabilities, clipped to [0, 1] as
    Keras does (``from_logits``: logits); every entry is one binary decision, pooled over all of them, or per column
    with ``multi_label`` (the mean of the columns' areas)."""

    name = "auc"
    state_names = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False, dtype=None):  # fmt: skip
        if label_weights is not None:
            raise NotImplementedError("AUC(label_weights=...) is not supported; leave it None")
        self.curve = str(curve).upper()
        if self.curve not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR', got {curve!r}")
        self.summation_method = str(summation_method).lower()
        if self.summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(
                f"AUC: summation_method must be 'interpolation', 'minoring' or 'majoring', "
                f"got {summation_method!r}"
            )
        if thresholds is not None:
            inner = sorted(float(t) for t in np.asarray(thresholds, dtype=np.float64).ravel())
            self.num_thresholds = len(inner) + 2
        else:
            if isinstance(num_thresholds, bool) or not isinstance(
                num_thresholds, (int, np.integer)
            ):
                raise ValueError(
                    f"AUC: num_thresholds must be an integer > 1, got {num_thresholds!r}"
                )
            if num_thresholds <= 1:
                raise ValueError(
                    f"AUC: num_thresholds must be an integer > 1, got {num_thresholds}"
                )
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        self._given_thresholds = None if thresholds is None else inner
        self._thresholds = np.array([-1e-7, *inner, 1 + 1e-7])  # Keras' backend epsilon
        self.multi_label, self.from_logits = bool(multi_label), bool(from_logits)
        super().__init__(name)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        self.true_positives = self.false_positives = 0.0
        self.true_negatives = self.false_negatives = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        t, p = _np(y_true), _np(y_pred).astype(np.float64, copy=False)
        if t.ndim == p.ndim - 1 and p.shape[-1:] == (1,):
            t = t[..., None]
        elif p.ndim == t.ndim - 1 and t.shape[-1:] == (1,):
            p = p[..., None]
        if t.shape != p.shape:
            raise ValueError(
                f"AUC: y_true has shape {t.shape} but y_pred has shape {p.shape}; expected "
                f"the same shape"
            )
        if self.from_logits:
            p = 1.0 / (1.0 + np.exp(-p))
        p = np.clip(p, 0.0, 1.0)  # as Keras: a score outside [0, 1] (a logit) is clipped
        w = np.ones(p.shape) if sample_weight is None else np.broadcast_to(
            _leading_weights(sample_weight, p.shape), p.shape)  # fmt: skip
        labels = t.astype(bool)
        # thresholds in the predictions' dtype, as Keras compares them
        thresholds = self._thresholds.astype(_np(y_pred).dtype if _np(y_pred).dtype.kind == "f"
                                             else np.float32)  # fmt: skip
        columns = (
            p.reshape(-1, p.shape[-1]) if self.multi_label and p.ndim > 1 else p.reshape(-1, 1)
        )
        lab = labels.reshape(columns.shape)
        wts = w.reshape(columns.shape)
        counts = np.zeros((4, self.num_thresholds, columns.shape[1]))
        for j in range(columns.shape[1]):
            # above[i]: the predictions above threshold i; thresholds below a
            # prediction number searchsorted's index
            col = columns[:, j].astype(thresholds.dtype)
            idx = np.searchsorted(thresholds, col, side="left")
            idx[np.isnan(col)] = 0  # NaN is above no threshold
            for k, chosen in enumerate((lab[:, j], ~lab[:, j])):
                per_bucket = np.bincount(idx[chosen], weights=wts[chosen, j],
                                         minlength=self.num_thresholds + 1)  # fmt: skip
                above = np.cumsum(per_bucket[::-1])[::-1][1:]  # sum over idx > i
                total = per_bucket.sum()
                counts[k, :, j] = above  # tp (k=0) or fp (k=1)
                counts[k + 2, :, j] = total - above  # fn (k=0) or tn (k=1)
        if not self.multi_label:
            counts = counts[..., 0]
        tp, fp, fn, tn = counts
        self.true_positives = self.true_positives + tp
        self.false_positives = self.false_positives + fp
        self.false_negatives = self.false_negatives + fn
        self.true_negatives = self.true_negatives + tn

    def _pr_interpolated(self):
        tp, fp, fn = (np.asarray(a, dtype=np.float64) for a in
                      (self.true_positives, self.false_positives, self.false_negatives))  # fmt: skip
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        return _divide_no_nan(slope * (dtp + intercept * np.log(ratio)),
                              np.maximum(tp[1:] + fn[1:], 0))  # fmt: skip

    def result(self):
        if np.ndim(self.true_positives) == 0:  # nothing seen yet
            return 0.0
        if self.curve == "PR" and self.summation_method == "interpolation":
            terms = self._pr_interpolated()
        else:
            tp, fp, tn, fn = (np.asarray(a, dtype=np.float64) for a in
                              (self.true_positives, self.false_positives, self.true_negatives,
                               self.false_negatives))  # fmt: skip
            recall = _divide_no_nan(tp, tp + fn)
            if self.curve == "ROC":
                x, y = _divide_no_nan(fp, fp + tn), recall
            else:
                x, y = recall, _divide_no_nan(tp, tp + fp)
            if self.summation_method == "interpolation":
                heights = (y[:-1] + y[1:]) / 2
            elif self.summation_method == "minoring":
                heights = np.minimum(y[:-1], y[1:])
            else:
                heights = np.maximum(y[:-1], y[1:])
            terms = (x[:-1] - x[1:]) * heights
        by_label = terms.sum(axis=0)
        return float(np.mean(by_label))

    def get_config(self):
        return {"num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "name": self.name,
                "thresholds": self._given_thresholds, "multi_label": self.multi_label,
                "from_logits": self.from_logits}  # fmt: skip


def _leading_weights(sample_weight, shape):
    """Per-sample weights (N,) or (N, ...) shaped to broadcast over ``shape``."""
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim > len(shape) or w.shape != tuple(shape[: w.ndim]):
        raise ValueError(f"sample_weight of shape {w.shape} does not fit y_pred of shape {shape}")
    return w.reshape(w.shape + (1,) * (len(shape) - w.ndim))


def _regression_error(y_true, y_pred):
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    return (y_pred - y_true).astype(np.float64).reshape(len(y_pred), -1)


def _over_last_axis(errors, shape):
    """Per-element errors (N, size) averaged over the last axis of y_pred's ``shape``
    (Keras' reduction: one value per step of a sequence output), one per sample of a
    1-D output."""
    errors = errors.reshape(shape)
    return errors.mean(axis=-1) if errors.ndim >= 2 else errors


def _squared_errors(y_true, y_pred):
    return _over_last_axis(np.square(_regression_error(y_true, y_pred)), np.shape(_np(y_pred)))


def _absolute_errors(y_true, y_pred):
    return _over_last_axis(np.abs(_regression_error(y_true, y_pred)), np.shape(_np(y_pred)))


@registry.register(aliases=("mse", "mean_squared_error"))
class MeanSquaredError(MeanMetricWrapper):
    """The mean over samples of their mean squared error."""

    def __init__(self, name="mean_squared_error"):
        super().__init__(_squared_errors, name)

    def get_config(self):
        return {"name": self.name}


@registry.register(aliases=("mae", "mean_absolute_error"))
class MeanAbsoluteError(MeanMetricWrapper):
    """The mean over samples of their mean absolute error."""

    def __init__(self, name="mean_absolute_error"):
        super().__init__(_absolute_errors, name)

    def get_config(self):
        return {"name": self.name}


def _per_sample_of(loss_name, sign=1.0):
    """A function (y_true, y_pred) -> the per-sample values of one of
    dlcore.functional's losses (without a graph), as Keras' metric of that name."""

    def fn(y_true, y_pred):
        from dlcore import functional as F
        from dlcore.tensor import no_grad

        with no_grad():
            values = getattr(F, loss_name)(y_true, _np(y_pred), reduction="none")
        return np.asarray(values.data, dtype=np.float64) * sign

    fn.__name__ = loss_name
    return fn


def _loss_metric(cls_name, loss_name, name, aliases, sign=1.0):
    """A MeanMetricWrapper class of a Keras metric that is the mean of a loss."""

    def __init__(self, name=name):
        MeanMetricWrapper.__init__(self, _per_sample_of(loss_name, sign), name)

    def get_config(self):
        return {"name": self.name}

    cls = type(cls_name, (MeanMetricWrapper,), {
        "__init__": __init__, "get_config": get_config, "__module__": __name__,
        "__doc__": f"The mean over samples of Keras' {name}."})  # fmt: skip
    return registry.register(aliases=aliases)(cls)


MeanAbsolutePercentageError = _loss_metric(
    "MeanAbsolutePercentageError", "mean_absolute_percentage_error",
    "mean_absolute_percentage_error", ("mape", "mean_absolute_percentage_error"))  # fmt: skip
MeanSquaredLogarithmicError = _loss_metric(
    "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
    "mean_squared_logarithmic_error", ("msle", "mean_squared_logarithmic_error"))  # fmt: skip
Hinge = _loss_metric("Hinge", "hinge", "hinge", ("hinge",))
SquaredHinge = _loss_metric("SquaredHinge", "squared_hinge", "squared_hinge", ("squared_hinge",))
CategoricalHinge = _loss_metric("CategoricalHinge", "categorical_hinge", "categorical_hinge",
                                ("categorical_hinge",))  # fmt: skip
Poisson = _loss_metric("Poisson", "poisson", "poisson", ("poisson",))
KLDivergence = _loss_metric("KLDivergence", "kl_divergence", "kl_divergence",
                            ("kl_divergence", "kld"))  # fmt: skip
LogCoshError = _loss_metric("LogCoshError", "log_cosh", "logcosh", ("logcosh", "log_cosh"))
# Keras' metric is the cosine itself (its loss is minus the cosine)
CosineSimilarity = _loss_metric("CosineSimilarity", "cosine_similarity", "cosine_similarity",
                                ("cosine_similarity",), sign=-1.0)  # fmt: skip


@registry.register(aliases=("rmse", "root_mean_squared_error"))
class RootMeanSquaredError(MeanSquaredError):
    """sqrt of the mean squared error over everything seen (every step: an output's
    mask is not applied, as in Keras 3)."""

    honours_output_mask = False

    def __init__(self, name="root_mean_squared_error"):
        super().__init__(name)

    def result(self):
        return float(np.sqrt(super().result()))


_ACCURACY_FOR_LOSS = {
    "binary_crossentropy": BinaryAccuracy,
    "categorical_crossentropy": CategoricalAccuracy,
    "sparse_categorical_crossentropy": SparseCategoricalAccuracy,
}


def get(identifier, loss_name=None):
    """A streaming Metric from a name, a config, an instance or a function(y_true,
    y_pred). 'accuracy' follows the loss, as in Keras, keeping the name 'accuracy'."""
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc") and loss_name in _ACCURACY_FOR_LOSS:
            return _ACCURACY_FOR_LOSS[loss_name](name=identifier)
        metric = registry.deserialize(identifier)
        if not isinstance(metric, Metric) and callable(metric):  # a custom function
            return MeanMetricWrapper(metric)
        if isinstance(metric, MeanMetricWrapper) and identifier in (
            "mse",
            "mae",
            "rmse",
            "mape",
            "msle",
        ):
            metric.name = identifier  # Keras logs a short name under the short name
        return metric
    if callable(identifier) and not isinstance(identifier, (Metric, type)):
        return MeanMetricWrapper(identifier)
    metric = registry.get(identifier, base=Metric)
    if not isinstance(metric, Metric) and callable(metric):  # a custom function's config
        return MeanMetricWrapper(metric)
    return metric


def serialize(metric):
    return registry.serialize(metric)


def deserialize(config, custom_objects=None):
    """A metric from its config or name; ``custom_objects`` (name -> class or function)
    are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)
