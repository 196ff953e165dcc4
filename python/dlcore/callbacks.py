"""Training callbacks: History, EarlyStopping, ModelCheckpoint, TerminateOnNaN,
ReduceLROnPlateau, LearningRateScheduler, the progress display, and the logs CSVLogger
and TensorBoard, with Keras' hooks and arguments."""

from __future__ import annotations

import collections.abc
import csv
import math
import os
import sys
import time
import warnings

import numpy as np

from dlcore.progress import Progbar

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "ModelCheckpoint",
    "TerminateOnNaN",
    "check_callbacks",
    "LambdaCallback",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "TensorBoard",
]


class Callback:
    """Base class: override any of the ``on_*`` hooks; ``self.model`` is the model.

    As in Keras, every hook gets a dict of logs: ``{}`` at a beginning, the running
    loss and metrics at a batch's end (``{"outputs": ...}`` for predict's), the
    epoch's (with its ``val_`` figures) at an epoch's end and at ``on_train_end``, the
    evaluation's at ``on_test_end``. fit's validation calls the ``on_test_*`` hooks."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


def check_callbacks(callbacks, fn):
    """``callbacks`` as a list of Callback objects, or a TypeError naming the odd one."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{fn}: callbacks must be a list of Callback objects, got {callbacks!r}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"{fn}: callbacks must be Callback objects (subclass dlcore.callbacks."
                f"Callback or use LambdaCallback), got {cb!r}"
            )
    return list(callbacks)


class CallbackList:
    """Calls every hook on each callback in turn. A hook is resolved once, to the
    callbacks that override it (fit calls the batch hooks every step)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)

    def _methods(self, hook):
        default = getattr(Callback, hook, None)
        return [
            getattr(cb, hook)
            for cb in self.callbacks
            if default is None
            or getattr(type(cb), hook, None) is not default
            or hook in vars(cb)  # set on the instance (LambdaCallback)
        ]

    def calls(self, hook):
        """Whether a callback overrides ``hook`` (logs that only it reads need not be
        computed otherwise)."""
        return bool(self._methods(hook))

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        methods = self._methods(hook)

        def call(*args, **kwargs):
            for method in methods:
                method(*args, **kwargs)

        setattr(self, hook, call)  # found directly from now on
        return call


class History(Callback):
    """Records the logs of every epoch: ``history.history['loss']`` is a list with one
    value per epoch; ``history.epoch`` the epoch numbers."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path, metrics=None):
        """Saves the per-epoch curves (training and validation side by side per
        metric) as an image at ``path``. Needs matplotlib (``pip install dlcore[plot]``)."""
        try:
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("History.plot needs matplotlib: pip install 'dlcore[plot]'") from e
        names = metrics or [k for k in self.history if not k.startswith("val_")]
        fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            ax.plot(epochs, self.history[name], "o-", label=name)
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], "s--", label=f"val_{name}")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


class ProgbarLogger(Callback):
    """Prints 'Epoch i/n' and a progress bar (see :class:`dlcore.progress.Progbar`)."""

    def __init__(self, verbose=1, stream=None):
        super().__init__()
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self.verbose:
            return
        header = f"Epoch {epoch + 1}/{self.params.get('epochs')}"
        interactive = self.verbose == 1 and getattr(self.stream, "isatty", lambda: False)()
        if interactive:
            self.stream.write(header + "\n")
        self.bar = Progbar(
            self.params.get("steps"),
            verbose=self.verbose,
            stream=self.stream,
            prefix="" if interactive else header + " - ",
        )

    def on_train_batch_end(self, batch, logs=None):
        self.seen = batch + 1
        if self.bar:
            self.bar.update(self.seen, logs, finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        if self.bar:
            # an unknown number of steps (a generator without steps_per_epoch) shows
            # the count reached
            self.bar.update(self.params.get("steps") or getattr(self, "seen", 0), logs,
                            finalize=True)  # fmt: skip
            self.bar = None


def _monitor_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        larger_is_better = any(k in monitor for k in ("acc", "precision", "recall", "f1", "auc"))
        mode = "max" if larger_is_better else "min"
    return mode


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; ``restore_best_weights`` puts back the best epoch's weights."""

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch = start_from_epoch

    def _improved(self, value, reference):
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = (
            self.baseline
            if self.baseline is not None
            else (math.inf if self.mode == "min" else -math.inf)
        )
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"EarlyStopping: '{self.monitor}' is not in the logs "
                f"({sorted(logs or {})}); nothing to monitor",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    f"Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


def _fixed_rate(optimizer, owner):
    """The optimizer's learning rate as a float; a ValueError for a schedule, whose rate
    is not set from outside (as in Keras)."""
    if optimizer is None:
        raise ValueError(f"{owner}: the model has no optimizer; compile it first")
    if callable(optimizer.learning_rate):
        raise ValueError(
            f"{owner}: the optimizer's learning rate is a schedule, which sets the rate "
            f"itself; give the optimizer a float learning rate to use {owner}"
        )
    return float(optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not improved by
    more than ``min_delta`` for ``patience`` epochs, then waits ``cooldown`` epochs before
    counting again; never below ``min_lr``. Adds ``learning_rate`` to each epoch's logs,
    as Keras does."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):  # fmt: skip
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected keyword arguments {sorted(kwargs)}")
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1.0, got {factor}")
        self.monitor, self.factor, self.patience = monitor, float(factor), patience
        self.verbose, self.cooldown, self.min_lr = verbose, cooldown, float(min_lr)
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta)
        self._reset()

    def _reset(self):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        rate = _fixed_rate(self.model.optimizer, "ReduceLROnPlateau")
        logs["learning_rate"] = rate
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"ReduceLROnPlateau: '{self.monitor}' is not in the logs ({sorted(logs)}); "
                f"nothing to monitor",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and rate > np.float32(self.min_lr):
                new = max(rate * self.factor, self.min_lr)
                self.model.optimizer.learning_rate = new
                if self.verbose > 0:
                    print(
                        f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}."
                    )
                self.cooldown_counter, self.wait = self.cooldown, 0

    def get_config(self):
        return {"monitor": self.monitor, "factor": self.factor, "patience": self.patience,
                "verbose": self.verbose, "mode": self.mode, "min_delta": self.min_delta,
                "cooldown": self.cooldown, "min_lr": self.min_lr}  # fmt: skip


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch to ``schedule(epoch, rate)``
    (or ``schedule(epoch)``), a float; adds ``learning_rate`` to each epoch's logs, as
    Keras does."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                f"LearningRateScheduler: schedule must be a function of (epoch, lr), got "
                f"{schedule!r}"
            )
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        rate = _fixed_rate(self.model.optimizer, "LearningRateScheduler")
        try:
            new = self.schedule(epoch, rate)
        except TypeError:  # Keras' older form: schedule(epoch)
            new = self.schedule(epoch)
        if isinstance(new, bool) or not isinstance(new, (float, np.floating)):
            raise ValueError(
                f"LearningRateScheduler: the schedule must return a float, got {new!r} for "
                f"epoch {epoch}"
            )
        self.model.optimizer.learning_rate = float(new)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _fixed_rate(self.model.optimizer, "LearningRateScheduler")


class ModelCheckpoint(Callback):
    """Saves the model (or its weights) after every epoch, or only when ``monitor``
    improved with ``save_best_only``. ``filepath`` may hold ``{epoch}`` and log keys,
    e.g. ``'ckpt-{epoch:02d}-{val_loss:.3f}.dlc'``; its extension picks the format
    (``.dlc`` dlcore's, ``.keras`` / ``.weights.h5`` Keras 3's). Writes are atomic."""

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        save_freq="epoch",
    ):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError("ModelCheckpoint: only save_freq='epoch' is supported")
        self.filepath, self.monitor, self.verbose = os.fspath(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.mode = _monitor_mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None:
                warnings.warn(
                    f"ModelCheckpoint: '{self.monitor}' is not in the logs; saving skipped",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            if self.verbose:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                    f"{value:.5f}, saving model to {path}"
                )
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class TerminateOnNaN(Callback):
    """Stops training, with a message, as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.model.request_stop(
                f"training stopped: the loss became {loss} at batch {batch + 1}"
            )


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``."""

    def __init__(self, **hooks):
        super().__init__()
        for name, fn in hooks.items():
            if not name.startswith("on_"):
                raise ValueError(f"LambdaCallback: {name!r} is not a hook")
            setattr(self, name, fn)


class CSVLogger(Callback):
    """Writes each epoch's logs as a row of a CSV file, as Keras' CSVLogger: a header
    ``epoch,<log names sorted>`` (with ``val_`` columns even before validation runs),
    then one row per epoch; ``append`` continues an existing file (without a second
    header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys = self.writer = self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self.append_header = not f.readline()
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, ["epoch", *self.keys], dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict(epoch=epoch)
        row.update((k, _csv_value(logs.get(k, "NA"))) for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return value
    if isinstance(value, collections.abc.Iterable):
        return f'"[{", ".join(map(str, value))}]"'
    return value


class TensorBoard(Callback):
    """Event files for TensorBoard, as Keras writes them: under ``log_dir/train`` the
    scalars ``epoch_<log>`` (loss, metrics, ``epoch_learning_rate``) at each epoch and,
    every ``histogram_freq`` epochs, a histogram ``<layer>/<weight>/histogram`` of each
    weight; under ``log_dir/validation`` the ``val_`` logs as ``epoch_<log>``. With
    ``update_freq="batch"`` (or every n batches) also ``batch_<log>`` scalars, and
    ``write_steps_per_second`` adds ``epoch_steps_per_second``. Needs tensorboardX
    (``pip install 'dlcore[tensorboard]'``); view with ``tensorboard --logdir log_dir``.

    ``write_graph`` is accepted and writes nothing (dlcore has no graph to show);
    images, profiling and embeddings are not supported."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):  # fmt: skip
        super().__init__()
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoard needs tensorboardX: pip install 'dlcore[tensorboard]'"
            ) from e
        unsupported = {"write_images": write_images, "profile_batch": profile_batch,
                       "embeddings_freq": embeddings_freq,
                       "embeddings_metadata": embeddings_metadata}  # fmt: skip
        for name, value in unsupported.items():
            if value:
                raise ValueError(f"TensorBoard: {name}={value!r} is not supported by dlcore")
        if (
            update_freq != "epoch"
            and update_freq != "batch"
            and not (isinstance(update_freq, int) and update_freq > 0)
        ):
            raise ValueError(
                f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive int, got "
                f"{update_freq!r}"
            )
        if not isinstance(histogram_freq, int) or histogram_freq < 0:
            raise ValueError(
                f"TensorBoard: histogram_freq must be an int >= 0, got {histogram_freq!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq, self.write_graph = histogram_freq, write_graph
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = 1 if update_freq == "batch" else update_freq
        self._summary_writer = SummaryWriter
        self._writers = {}
        self._batch = 0

    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = self._summary_writer(os.path.join(self.log_dir, which))
        return self._writers[which]

    def on_train_begin(self, logs=None):
        self._batch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batch += 1
        self._epoch_batches += 1
        if self.update_freq != "epoch" and self._batch % self.update_freq == 0:
            writer = self._writer("train")
            for name, value in (logs or {}).items():
                writer.add_scalar(f"batch_{name}", float(value), self._batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            train.setdefault("learning_rate", optimizer.current_learning_rate)
        if self.write_steps_per_second:
            elapsed = time.perf_counter() - self._epoch_start
            train["steps_per_second"] = self._epoch_batches / elapsed if elapsed > 0 else 0.0
        writer = self._writer("train")
        for name, value in train.items():
            writer.add_scalar(f"epoch_{name}", float(value), epoch)
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if validation:
            val_writer = self._writer("validation")
            for name, value in validation.items():
                val_writer.add_scalar(f"epoch_{name}", float(value), epoch)
            val_writer.flush()
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            for layer in self.model.layers:
                for w in layer.weights:
                    writer.add_histogram(f"{w.name}/histogram", w.data, epoch)
        writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
