"""What ``compile`` sets up: the loss of every output (with ``loss_weights``) and the
metrics of every output, matched to the model's outputs by position or by name as in
Keras 3, and their sample weighting.

Names follow Keras: a one-output model logs ``loss`` and ``<metric>``; a model with
several outputs logs ``loss`` (the weighted sum), ``<output>_loss`` and
``<output>_<metric>``, where ``<output>`` is the output's dict key or its layer's name.
"""

from __future__ import annotations

import numpy as np

from dlcore import losses as losses_module
from dlcore import metrics as metrics_module
from dlcore.layers import base as layer_base
from dlcore.tensor import Tensor

__all__ = ["CompiledLoss", "CompiledMetrics", "per_output"]


def per_output(value, names, what, single_ok=True):
    """``value`` given once, as a list (one per output) or as a dict keyed by output
    name, as a list in output order (None where a dict leaves an output out)."""
    n = len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"compile: {what} keys {unknown} name no output of the model; its outputs "
                f"are {names}"
            )
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and n > 1:
        if len(value) != n:
            raise ValueError(
                f"compile: {what} has {len(value)} entries but the model has {n} outputs "
                f"({names}); give one per output, or a dict keyed by output name"
            )
        return list(value)
    if not single_ok and n > 1:
        raise ValueError(
            f"compile: for a model with several outputs ({names}), give {what} as a list "
            f"with one entry per output, or a dict keyed by output name"
        )
    return [value] * n if n > 1 else [value]


def _leading(weight, shape, dtype, what):
    """weight (N,) or (N, ...) as an array that broadcasts over ``shape``'s trailing axes."""
    w = np.asarray(weight, dtype=dtype)
    if w.ndim > len(shape) or w.shape != shape[: w.ndim]:
        raise ValueError(f"sample_weight of shape {w.shape} does not fit {what} of shape {shape}")
    return w.reshape(w.shape + (1,) * (len(shape) - w.ndim))


def _masked(weight, mask):
    """Keras' loss masking: a padded step weighs 0 and a real one total / real (times its
    sample weight), so the loss is the mean over the real steps only."""
    m = np.asarray(mask, dtype=np.float64)
    m = m * (m.size / (m.sum() + 1e-7))  # Keras' backend epsilon
    if weight is not None:
        m = m * _leading(weight, m.shape, np.float64, "the output's mask")
    return m


class CompiledLoss:
    """The compiled loss of each output and their weights."""

    def __init__(self, loss, loss_weights, output_names):
        self.output_names = list(output_names)
        entries = per_output(loss, self.output_names, "loss")
        if all(e is None for e in entries):
            raise ValueError("compile: a loss is required, e.g. loss='mse'")
        self.losses = [None if e is None else losses_module.get(e) for e in entries]
        weights = (
            [1.0] * len(entries)
            if loss_weights is None
            else per_output(loss_weights, self.output_names, "loss_weights", single_ok=False)
        )
        self.weights = [1.0 if w is None else float(w) for w in weights]
        self.multi = len(self.output_names) > 1

    def _one(self, loss, y, pred, weight):
        """One output's loss: a Loss reduces itself (with the sample weights); a plain
        function's per-sample values are reduced as Keras does, to their mean."""
        if isinstance(loss, losses_module.Loss):
            if weight is None:
                return loss(y, pred)
            per_sample = loss.call(y, pred)
            reduction = loss.reduction
        else:
            per_sample = loss(y, pred)
            reduction = "sum_over_batch_size"
        if not isinstance(per_sample, Tensor):
            per_sample = Tensor(np.asarray(per_sample, dtype=pred.dtype))
        if per_sample.ndim == 0:
            if weight is None:
                return per_sample
            raise ValueError(
                f"loss {loss!r} returned a scalar; with sample_weight or class_weight a loss "
                f"must return one value per sample"
            )
        return losses_module.reduce_weighted(per_sample, weight, reduction)

    def __call__(self, y_true, y_pred, sample_weight=None):
        """(total loss Tensor, [each output's loss as a float or None])."""
        total, parts = None, []
        for loss, weight, y, pred, w in zip(
            self.losses, self.weights, y_true, y_pred, sample_weight
        ):
            if loss is None:
                parts.append(None)
                continue
            if y is None:
                raise ValueError("fit: a loss is compiled for an output that got no targets")
            if layer_base._masks:  # an output that carries a mask (return_sequences)
                mask = layer_base.get_mask(pred)
                if mask is not None:
                    w = _masked(w, mask)
            value = self._one(loss, y, pred, w)
            parts.append(value)
            term = value if weight == 1.0 else value * weight
            total = term if total is None else total + term
        return total, parts

    def names(self):
        return [f"{n}_loss" for n, loss in zip(self.output_names, self.losses) if loss is not None]


class CompiledMetrics:
    """Each output's metrics (plain and sample-weighted), with Keras' names."""

    def __init__(self, metrics, weighted_metrics, compiled_loss):
        names = compiled_loss.output_names
        self.entries = []  # (output index, Metric, weighted)
        for value, weighted in ((metrics, False), (weighted_metrics, True)):
            if value is None:
                continue
            if isinstance(value, str) or not isinstance(value, (list, tuple, dict)):
                raise TypeError(
                    f"compile: {'weighted_' if weighted else ''}metrics must be a list (or "
                    f"a dict keyed by output), e.g. ['accuracy'], got {value!r}"
                )
            per = (
                per_output(value, names, "metrics", single_ok=False) if len(names) > 1 else [value]
            )
            for i, group in enumerate(per):
                if group is None:
                    continue
                group = group if isinstance(group, (list, tuple)) else [group]
                loss = compiled_loss.losses[i]
                loss_name = getattr(loss, "name", None)
                for m in group:
                    metric = metrics_module.get(m, loss_name)
                    self.entries.append((i, metric, weighted))
        plain = {m.name for _, m, w in self.entries if not w}
        self.names = []
        for i, m, weighted in self.entries:
            name = m.name if not (weighted and m.name in plain) else f"weighted_{m.name}"
            self.names.append(f"{names[i]}_{name}" if len(names) > 1 else name)

    @property
    def metrics(self):
        return [m for _, m, _ in self.entries]

    def reset(self):
        for _, m, _ in self.entries:
            m.reset_state()

    def update(self, y_true, y_pred, sample_weight, masks=None):
        """Updates every metric with a batch. ``masks`` (one per output, or None) are the
        outputs' masks: as in Keras, the metrics that take them (the accuracies and the
        mean-of-a-function metrics such as 'mae') count the real steps only, with the
        sample weight where one applies; a padded step weighs 0."""
        for i, m, weighted in self.entries:
            if y_true[i] is None:
                continue
            w = sample_weight[i] if weighted else None
            mask = None if masks is None else masks[i]
            if mask is not None and m.honours_output_mask:
                m._update_masked(y_true[i], y_pred[i], mask, w)
                continue
            if w is None:
                m.update_state(y_true[i], y_pred[i])
            else:
                m.update_state(y_true[i], y_pred[i], sample_weight=w)

    def results(self):
        return {name: float(m.result()) for name, (_, m, _) in zip(self.names, self.entries)}
