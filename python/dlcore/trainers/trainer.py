"""Training apart from structure: ``compile``, the train/test/predict steps and the
``fit``/``evaluate``/``predict`` loops, as Keras' Trainer. A :class:`~dlcore.Model` is a
Trainer and a Layer; the Trainer reaches the model only through what every model has
(``__call__``, ``trainable_weights``, ``losses``, ``weights``).

Data reaches the loops through one data adapter (:mod:`.data_adapter`), which also
validates the arguments; distribution through a strategy (:mod:`.strategy`).
"""

from __future__ import annotations

import warnings

import numpy as np

from dlcore import callbacks as callbacks_module
from dlcore import losses as losses_module
from dlcore import metrics as metrics_module
from dlcore import optimizers as optimizers_module
from dlcore.tensor import no_grad

from .data_adapter import ArrayAdapter, epoch_order
from .strategy import LocalStrategy, get_strategy

__all__ = ["Trainer"]


def _count_arg(value, name, fn, minimum=0):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{fn}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _all_layers(layer):
    """``layer`` and every layer nested in it."""
    out = [layer]
    for sub in layer._tracked_layers():
        out += _all_layers(sub)
    return out


class Trainer:
    """compile / fit / evaluate / predict. Mixed into Model before Layer."""

    def _init_trainer(self):
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self.stop_reason = None
        self.history = None
        self._compile_config = None
        self._step_params = None  # the trainable weights of the fit in progress
        self._strategy = LocalStrategy()

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Sets the optimizer, the loss and the metrics for fit / evaluate.

        optimizer: a name ('adam', 'sgd', 'rmsprop') or an optimizer object.
        loss: a Keras name ('mse', 'categorical_crossentropy', ...), a Loss or a callable.
        metrics: names ('accuracy', 'precision', 'recall', 'f1'), Metric objects or
            functions(y_true, y_pred).

        Which layers train is fixed here, as in Keras 2's GAN recipe: setting
        ``trainable = False`` on a sub-model afterwards affects only models compiled
        later. Their weights are gathered when training starts (each ``fit`` and
        ``train_on_batch``), so layers added or built after compiling train too.
        """
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='mse'")
        metrics = [] if metrics is None else metrics
        if isinstance(metrics, (str, dict)) or not isinstance(metrics, (list, tuple)):
            raise TypeError(
                f"compile: metrics must be a list, e.g. metrics=['accuracy'], got {metrics!r}"
            )
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        loss_name = getattr(self.loss, "name", None)
        self.compiled_metrics = [metrics_module.get(m, loss_name) for m in metrics]
        self._compiled_trainable = {id(l): l.trainable for l in _all_layers(self)}
        self._compile_config = {
            "optimizer": optimizers_module.serialize(self.optimizer),
            "loss": losses_module.serialize(self.loss),
            "metrics": [m if isinstance(m, str) else None for m in metrics],
        }

    def get_compile_config(self):
        """The compile arguments as a JSON-ready dict (None before compile, and for a
        loss that cannot be saved by name)."""
        return self._compile_config

    @property
    def metrics_names(self):
        return ["loss", *(m.name for m in self.compiled_metrics)]

    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(
                f"{what}: compile the model first, e.g. model.compile(optimizer='adam', loss='mse')"
            )

    def _params(self):
        """The trainable weights of the training in progress, fixed at its first step
        (the model builds on its first batch) and handed to the optimizer."""
        if self._step_params is None:
            self._step_params = self.compiled_trainable_weights()
            self.optimizer.params = self._step_params
        return self._step_params

    def compiled_trainable_weights(self):
        """The weights training updates: trainable ones of the layers that were
        trainable when the model was compiled (layers added since: as they are now)."""
        flags = getattr(self, "_compiled_trainable", {})
        seen, out = set(), []

        def visit(layer):
            if not flags.get(id(layer), layer.trainable):
                return
            for w in layer._own_weights(True):
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
            for sub in layer._tracked_layers():
                visit(sub)

        visit(self)
        return out

    # ------------------------------------------------------------ steps
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of ``y_pred`` against ``y``, plus the weights' penalties."""
        loss = self.loss(y, y_pred)
        penalties = self.losses
        if penalties:
            loss = loss + sum(penalties[1:], penalties[0])
        return loss

    def train_step(self, x, y):
        """One optimisation step on a batch; returns the loss (with penalties)."""
        out = self(x, training=True)
        params = self._params()
        for p in params:
            p.grad = None
        loss = self.compute_loss(x, y, out)
        loss.backward()
        loss_value = self._strategy.reduce_gradients(params, float(loss.data))
        self.optimizer.step(params)
        for m in self.compiled_metrics:
            m.update_state(y, out.data)
        return loss_value

    def test_step(self, x, y):
        """Loss (without penalties) of one batch and its size; updates the metrics."""
        with no_grad():
            out = self(x, training=False)
            loss = self.loss(y, out)
        for m in self.compiled_metrics:
            m.update_state(y, out.data)
        return float(loss.data), len(out.data)

    def predict_step(self, x):
        with no_grad():
            return self(x, training=False).data

    def _logs(self, loss):
        logs = {"loss": loss}
        for m in self.compiled_metrics:
            logs[m.name] = float(m.result())
        return logs

    def _reset_metrics(self):
        for m in self.compiled_metrics:
            m.reset_state()

    def _penalty(self):
        with no_grad():
            return float(sum(float(p.data) for p in self.losses))

    @staticmethod
    def _flat(logs):
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x, y, return_dict=False):
        """A single step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled("train_on_batch")
        data = ArrayAdapter(x, y, batch_size=None, fn="train_on_batch")
        self._reset_metrics()
        self._step_params = None
        logs = self._logs(self.train_step(data.x, data.y))
        return logs if return_dict else self._flat(logs)

    def test_on_batch(self, x, y, return_dict=False):
        self._require_compiled("test_on_batch")
        data = ArrayAdapter(x, y, batch_size=None, fn="test_on_batch")
        self._reset_metrics()
        loss, _ = self.test_step(data.x, data.y)
        logs = self._logs(loss + self._penalty())
        return logs if return_dict else self._flat(logs)

    def predict_on_batch(self, x):
        return self.predict_step(ArrayAdapter(x, fn="predict_on_batch", needs_y=False).x)

    # ------------------------------------------------------------ stopping
    def request_stop(self, reason=None):
        """Stops ``fit`` after the current batch; a ``reason`` is warned about when fit
        returns (how callbacks such as TerminateOnNaN stop training)."""
        self.stop_training = True
        if reason is not None:
            self.stop_reason = reason

    # ------------------------------------------------------------ fit
    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        initial_epoch=0,
        seed=None,
        distributed=False,
    ):
        """Trains for ``epochs`` passes over (x, y) in batches of ``batch_size`` (32).

        shuffle: reorder the samples every epoch; with ``seed`` the order of each epoch
            is fixed by (seed, epoch), so resuming at ``initial_epoch`` repeats it.
        validation_split: hold out this last fraction of the samples (before
            shuffling) to validate on at the end of every epoch; or give
            ``validation_data=(x_val, y_val)``.
        verbose: 0 silent, 1 a progress bar (redrawn in place on a terminal, one line
            per epoch otherwise), 2 one line per epoch; 'auto' is 1.
        distributed: train data-parallel across the ranks of an MPI job (see
            :mod:`dlcore.distributed`). Every rank passes the same x and y and trains on
            its shard, ``batch_size`` samples per step; the logs, the History and
            EarlyStopping see the figures of all ranks; rank 0 alone shows progress and
            writes checkpoints. The model stays a replica: ``train_on_batch`` averages
            over the ranks and ``save`` writes on rank 0 only.
        Returns the History; the run stops early when a callback sets
        ``model.stop_training`` (EarlyStopping) or the loss is not finite.
        """
        self._require_compiled("fit")
        epochs = _count_arg(epochs, "epochs", "fit")
        initial_epoch = _count_arg(initial_epoch, "initial_epoch", "fit")
        if verbose not in ("auto", 0, 1, 2):
            raise ValueError(f"fit: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
        data = ArrayAdapter(x, y, batch_size=batch_size, fn="fit")
        held_out = data.split(validation_split)
        if validation_data is None:
            validation_data = held_out
        elif held_out is not None:
            raise ValueError("fit: give validation_split or validation_data, not both")
        if validation_data is not None:
            validation_data = self._validation_adapter(validation_data, data.batch_size)
        cbs = callbacks_module.check_callbacks(callbacks, "fit")
        verbose = 1 if verbose == "auto" else verbose

        self._strategy = get_strategy(distributed)
        seed = self._strategy.start_fit(self, data.x, data.y, seed)
        verbose = verbose if self._strategy.is_chief else 0
        steps = data.num_batches(self._strategy.samples(data.num_samples))

        history = callbacks_module.History()
        cbs = [history, *cbs]
        if not any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbs):
            cbs.append(callbacks_module.TerminateOnNaN())
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cb = callbacks_module.CallbackList(
            cbs, self, {"epochs": epochs, "steps": steps, "verbose": verbose}
        )
        self.stop_training, self.stop_reason = False, None
        self.history = history
        self._step_params = None
        cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            self._reset_metrics()
            order = epoch_order(data.num_samples, shuffle, seed, epoch)
            order = self._strategy.shard(order, data.num_samples)
            loss_sum, seen, logs = 0.0, 0, {}
            for step, (xb, yb) in enumerate(data.batches(order, steps)):
                cb.on_train_batch_begin(step)
                loss_sum += self.train_step(xb, yb) * len(xb)
                seen += len(xb)
                logs = self._logs(loss_sum / seen)
                cb.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            self._strategy.end_epoch(self)
            logs = self._logs(loss_sum / seen) if seen else logs
            if validation_data is not None and not self.stop_reason:
                val = self._evaluate(validation_data, self._strategy)
                logs.update({f"val_{k}": v for k, v in val.items()})
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end()
        if self.stop_reason:
            warnings.warn(self.stop_reason, RuntimeWarning, stacklevel=2)
        return history

    @staticmethod
    def _validation_adapter(validation_data, batch_size):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "fit: validation_data must be a tuple (x_val, y_val), got "
                f"{type(validation_data).__name__}"
                + (
                    f" of {len(validation_data)} items"
                    if hasattr(validation_data, "__len__")
                    else ""
                )
            )
        xv, yv = validation_data
        return ArrayAdapter(xv, yv, batch_size=batch_size, fn="fit: validation_data")

    # ------------------------------------------------------------ evaluate / predict
    def _evaluate(self, data, strategy):
        x, y = strategy.own_part(data.x, data.y)
        self._reset_metrics()
        loss_mean = metrics_module.Mean()
        for start in range(0, len(x), data.batch_size):
            end = start + data.batch_size
            loss_mean.update_state(*self.test_step(x[start:end], y[start:end]))
        strategy.reduce_metrics([loss_mean, *self.compiled_metrics])
        return self._logs(loss_mean.result() + self._penalty())

    def evaluate(
        self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False,
        distributed=False,
    ):  # fmt: skip
        """Loss (with the weight penalties, as in training) and metrics over (x, y).

        distributed: every rank of an MPI job passes the same x and y, evaluates its
            part of them, and all get the figures over the whole of (x, y).
        """
        self._require_compiled("evaluate")
        data = ArrayAdapter(x, y, batch_size=batch_size, fn="evaluate")
        strategy = get_strategy(distributed)
        logs = self._evaluate(data, strategy)
        if verbose and verbose != "auto" and strategy.is_chief:
            from dlcore.progress import format_logs

            print(format_logs(logs))
        return logs if return_dict else self._flat(logs)

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for x, in batches, as a NumPy array (no graph is kept)."""
        data = ArrayAdapter(x, batch_size=batch_size, fn="predict", needs_y=False)
        outs = [self.predict_step(xb) for xb, _ in data.batches()]
        return np.concatenate(outs)
