"""Training apart from structure: ``compile``, the train/test/predict steps and the
``fit``/``evaluate``/``predict`` loops, as Keras' Trainer. A :class:`~dlcore.Model` is a
Trainer and a Layer; the Trainer reaches the model only through what every model has
(``__call__``, ``trainable_weights``, ``losses``, ``weights``).

Data reaches the loops through the data adapters (:mod:`.data_adapter`), which also
validate the arguments; losses and metrics per output through :mod:`.compile_utils`;
distribution through a strategy (:mod:`.strategy`).
"""

from __future__ import annotations

import functools
import types
import warnings

import numpy as np

from dlcore import callbacks as callbacks_module
from dlcore import losses as losses_module
from dlcore import metrics as metrics_module
from dlcore import optimizers as optimizers_module
from dlcore.layers import base as layer_base
from dlcore.layers.symbolic import flatten, pack_like
from dlcore.registry import custom_config, scoped_custom_objects, using_custom_objects
from dlcore.tensor import no_grad

from .compile_utils import CompiledLoss, CompiledMetrics
from .data_adapter import (
    ArrayDataAdapter,
    GeneratorDataAdapter,
    batch_size_arg,
    check_has_samples,
    epoch_order,
    get_data_adapter,
    match_input_rank,
    prefetch,
)
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


def _batch_len(x):
    return len(flatten(x)[0])


def _num_steps(data):
    """The batches of one pass over ``data`` (None: until a generator ends)."""
    if isinstance(data, ArrayDataAdapter):
        n = data.num_batches()
        return n if data.steps is None else min(n, data.steps)
    return data.num_batches()


@functools.cache
def _declared_inputs(cls):
    """How models of class ``cls`` declare their inputs, read from the API they expose
    (the models import the trainer, not the other way round): "sequential" (the stack of
    ``add`` and ``pop``: its ``input_shape`` once built), "functional" (its Input
    tensors, ``inputs``, and ``_flat_inputs`` putting given ones in their order) or None
    (a subclassed model takes its inputs as given, in Keras too)."""
    if all(callable(getattr(cls, name, None)) for name in ("add", "pop")):
        return "sequential"
    if isinstance(getattr(cls, "inputs", None), property) and callable(
        getattr(cls, "_flat_inputs", None)
    ):
        return "functional"
    return None


def _one_input(x, fn, model_name):
    """The array for a model of one input: x itself, or the one array of a list of one
    (Keras takes ``predict([x])``)."""
    if isinstance(x, (list, tuple)) and len(x) == 1:
        x = x[0]
    if isinstance(x, (list, tuple, dict)):
        raise ValueError(
            f"{fn}: {model_name} has one input, so x must be one array (or a list of one); "
            f"got a {type(x).__name__} of {len(x)}"
        )
    return x


def _check_like_training(val, data):
    """validation_data's x must have the training x's structure and sample shapes:
    found before training, not when the first epoch ends."""
    train_x, val_x = flatten(data.x), flatten(val.x)
    shapes = [a.shape[1:] for a in train_x]
    val_shapes = [a.shape[1:] for a in val_x]
    if len(train_x) != len(val_x) or shapes != val_shapes:
        raise ValueError(
            f"fit: validation_data's x has samples of shape {val_shapes if len(val_x) > 1 else val_shapes[0]}, "
            f"but the training x has {shapes if len(train_x) > 1 else shapes[0]}"
        )


def _users_function(value):
    """Whether ``value`` is a function of the user's (not one of dlcore's own)."""
    return isinstance(value, types.FunctionType) and not (value.__module__ or "").startswith(
        "dlcore"
    )


class Trainer:
    """compile / fit / evaluate / predict. Mixed into Model before Layer."""

    def _init_trainer(self):
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        self.stop_reason = None
        self.history = None
        self._compile_args = None
        self._compile_objects = {}  # the custom objects in scope when it was compiled
        self._compile_config = None
        self._compiled_loss = None
        self._compiled_metrics = None
        self._loss_trackers = []
        self._compiled_trainable = {}
        self._step_params = None  # the trainable weights of the training in progress
        self._step_regularizers = []
        self._step_activity = []  # the layers with activity regularizers, found with them
        self._strategy = LocalStrategy()

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):  # fmt: skip
        """Sets the optimizer, the loss(es) and the metrics for fit / evaluate.

        optimizer: a name ('adam', 'sgd', 'rmsprop') or an optimizer object.
        loss: a Keras name ('mse', 'categorical_crossentropy', ...), a Loss or a
            callable; for a model with several outputs, one for all, a list (one per
            output) or a dict keyed by output name. ``loss_weights`` likewise weighs
            each output's loss in the total.
        metrics: names ('accuracy', 'precision', 'recall', 'f1'), Metric objects or
            functions(y_true, y_pred): a list, or per output a list of lists or a dict.
        weighted_metrics: metrics weighed by ``sample_weight`` / ``class_weight``.
        run_eagerly, jit_compile, steps_per_execution, auto_scale_loss: Keras' choices
            of how its graph runs, accepted for Keras code: dlcore runs every step
            eagerly on its kernels, one step per batch, in the weights' dtype.

        Which layers train is fixed here, as in Keras 2's GAN recipe: setting
        ``trainable = False`` on a sub-model afterwards affects only models compiled
        later. Their weights are gathered when training starts (each ``fit`` and
        ``train_on_batch``), so layers added or built after compiling train too.
        """
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='mse'")
        if (isinstance(steps_per_execution, bool) or not isinstance(steps_per_execution, int)
                or steps_per_execution < 1):  # fmt: skip
            raise ValueError(
                f"compile: steps_per_execution must be an int >= 1, got {steps_per_execution!r}"
            )
        for name, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None and not isinstance(value, (list, tuple, dict)):
                raise TypeError(
                    f"compile: {name} must be a list (or, per output, a list of lists or a "
                    f"dict), e.g. {name}=['accuracy'], got {value!r}"
                )
        self.optimizer = optimizers_module.get(optimizer)
        self._compile_args = (loss, loss_weights, metrics, weighted_metrics)
        # names of custom objects in scope now (load_model's) still resolve when the
        # losses and metrics are built, at the first step
        self._compile_objects = scoped_custom_objects()
        self._compiled_loss = self._compiled_metrics = None
        self._loss_trackers = []
        names = getattr(self, "output_names", None)
        if names is not None:  # a functional model knows its outputs: check now
            self._compile_for(names)
        multi = isinstance(loss, (list, tuple, dict))
        self.loss = loss if multi else losses_module.get(loss)
        self._compiled_trainable = {id(l): l.trainable for l in _all_layers(self)}
        self._compile_config = self._serialize_compile(loss, loss_weights, metrics)

    def _serialize_compile(self, loss, loss_weights, metrics):
        def one_loss(value):
            return losses_module.serialize(losses_module.get(value)) if value is not None else None

        if isinstance(loss, dict):
            loss_config = {k: one_loss(v) for k, v in loss.items()}
        elif isinstance(loss, (list, tuple)):
            loss_config = [one_loss(v) for v in loss]
        else:
            loss_config = one_loss(loss)
        if loss_config is None or None in flatten(loss_config):
            return None  # a custom loss: the model is saved uncompiled

        def names(value):
            if isinstance(value, dict):
                return {k: names(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [names(v) for v in value]
            if _users_function(value):
                return custom_config(value)  # by name, as Keras saves it
            return value if isinstance(value, str) else None

        return {
            "optimizer": optimizers_module.serialize(self.optimizer),
            "loss": loss_config,
            "loss_weights": loss_weights,
            "metrics": names(metrics or []),
        }

    def get_compile_config(self):
        """The compile arguments as a JSON-ready dict (None before compile, and for a
        loss that cannot be saved by name)."""
        return self._compile_config

    def _compile_for(self, output_names):
        """Builds the compiled loss and metrics for outputs called ``output_names``."""
        loss, loss_weights, metrics, weighted = self._compile_args
        with using_custom_objects(self._compile_objects, "compile"):
            self._compiled_loss = CompiledLoss(loss, loss_weights, output_names)
            self._compiled_metrics = CompiledMetrics(metrics, weighted, self._compiled_loss)
        multi = len(output_names) > 1
        self._loss_trackers = [metrics_module.Mean(name="loss")] + (
            [metrics_module.Mean(name=n) for n in self._compiled_loss.names()] if multi else []
        )

    def _output_names_for(self, y_pred):
        names = getattr(self, "output_names", None)
        if names is not None:
            return names
        if isinstance(y_pred, dict):
            return list(y_pred)
        n = len(y_pred) if isinstance(y_pred, (list, tuple)) else 1
        return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]

    def _model_x(self, x, fn):
        """x (arrays) as the model takes it, the way Keras' functional models (and so its
        Sequential ones) standardise their inputs: in the order of the declared inputs,
        one input given as a list of one unwrapped, and each with a trailing axis of size 1
        added or removed where only that differs from the declared rank
        (``match_input_rank``). A subclassed model, or a Sequential not built yet,
        takes x as given, as in Keras; other mismatches are left to the model's checks."""
        declared = _declared_inputs(type(self))
        if declared == "sequential" and self.built:
            shape = self.input_shape
            if type(x) is np.ndarray and x.ndim == len(shape):  # predict's batch: at once
                return x
            if isinstance(shape, tuple):  # not a layer's several inputs
                return match_input_rank(_one_input(x, fn, self.name), shape)
        elif declared == "functional":
            inputs = self.inputs
            flat = self._flat_inputs(x)  # its errors name the inputs
            flat = [match_input_rank(v, t.shape) for v, t in zip(flat, inputs)]
            return flat[0] if len(flat) == 1 else flat
        return x

    def _preparer(self, fn):
        return lambda x: self._model_x(x, fn)

    @property
    def compiled_metrics(self):
        """The compiled Metric objects (empty before the first step of a model whose
        outputs are known only when it runs)."""
        return [] if self._compiled_metrics is None else self._compiled_metrics.metrics

    @property
    def metrics(self):
        """Every Metric the loops update: the loss trackers, then the compiled ones."""
        return [*self._loss_trackers, *self.compiled_metrics]

    @property
    def metrics_names(self):
        return [m.name for m in self._loss_trackers] + (
            self._compiled_metrics.names if self._compiled_metrics else []
        )

    def _require_compiled(self, what):
        if self._compile_args is None:
            raise RuntimeError(
                f"{what}: compile the model first, e.g. model.compile(optimizer='adam', loss='mse')"
            )

    def _params(self):
        """The trainable weights of the training in progress, fixed at its first step
        (the model builds on its first batch) and handed to the optimizer."""
        if self._step_params is None:
            self.optimizer.params = self.compiled_trainable_weights()
            self._step_params = self.optimizer.params  # the optimizer's checked list
            self._step_regularizers = [
                pair for layer in _all_layers(self) for pair in layer._penalties
            ]
            self._step_activity = [
                layer for layer in _all_layers(self) if layer.activity_regularizer
            ]
        return self._step_params

    def _step_penalties(self):
        """The weight penalties of the training in progress (gathered with its weights,
        not by walking the layers every step)."""
        return [reg(w) for reg, w in self._step_regularizers]

    def compiled_trainable_weights(self):
        """The weights training updates: trainable ones of the layers that were
        trainable when the model was compiled (layers added since: as they are now)."""
        flags = self._compiled_trainable
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

    # ------------------------------------------------------------ outputs and targets
    def _per_output(self, value, names, what):
        """A data structure (y or sample_weight) as a list in output order."""
        n = len(names)
        if value is None:
            return [None] * n
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(names))
            if unknown:
                raise ValueError(
                    f"{self.name}: {what} keys {unknown} name no output; the outputs are {names}"
                )
            return [value.get(k) for k in names]
        if isinstance(value, list):
            if len(value) != n:
                raise ValueError(
                    f"{self.name}: {what} has {len(value)} entries for {n} outputs ({names})"
                )
            return value
        if n > 1:
            if what == "sample_weight":
                return [value] * n  # one weight per sample, for every output
            raise ValueError(
                f"{self.name}: the model has {n} outputs ({names}); give {what} as a list "
                f"or a dict keyed by output name"
            )
        return [value]

    def _losses_and_metrics(self, y, y_pred, sample_weight, compute_total=True):
        if self._compiled_loss is None:
            self._compile_for(self._output_names_for(y_pred))
        names = self._compiled_loss.output_names
        preds = flatten(y_pred) if not isinstance(y_pred, dict) else [y_pred[k] for k in names]
        ys = self._per_output(y, names, "y")
        ws = self._per_output(sample_weight, names, "sample_weight")
        total, parts = self._compiled_loss(ys, preds, ws)
        return total, parts, ys, preds, ws

    # ------------------------------------------------------------ steps
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of ``y_pred`` against ``y``, plus the weights' penalties."""
        loss = self._losses_and_metrics(y, y_pred, sample_weight)[0]
        penalties = self.losses
        if penalties:
            loss = loss + sum(penalties[1:], penalties[0])
        return loss

    def _track(self, total, parts, n, ys, preds, ws):
        self._loss_trackers[0].update_state(total, n)
        for tracker, part in zip(self._loss_trackers[1:], [p for p in parts if p is not None]):
            tracker.update_state(float(part.data), n)
        masks = [layer_base.get_mask(p) for p in preds] if layer_base._masks else None
        self._compiled_metrics.update(ys, [p.data for p in preds], ws, masks)

    def train_step(self, x, y, sample_weight=None):
        """One optimisation step on a batch; returns the loss (with penalties)."""
        if self._step_params is None and self.built:
            self._params()  # which also finds the layers with activity regularizers
        # those record their penalties in their calls: the model runs its layers' calls
        plan = None if self._step_activity else self._training_plan_for(x)
        planned = None
        if plan is not None:  # the model is built: its weights are known
            planned = plan(x, {id(p) for p in self._params() if p.requires_grad})
        if planned is None:
            # the layers train as the model was compiled (BatchNormalization's mode)
            layer_base._context.trainable_flags = self._compiled_trainable
            try:
                out, rest = self(x, training=True), None
            finally:
                layer_base._context.trainable_flags = None
        else:  # the same values and gradients, without the layers' per-call work
            out, rest = planned
        params = self._params()
        for p in params:
            p.grad = None
        total, parts, ys, preds, ws = self._losses_and_metrics(y, out, sample_weight)
        penalties = self._step_penalties()
        if planned is None and layer_base.losses_added():  # add_loss, activity regularizers
            penalties += self._activity_losses()
        loss = total + sum(penalties[1:], penalties[0]) if penalties else total
        if loss.requires_grad:  # else no weight is trained: a step changes nothing, as Keras
            loss.backward()
        if rest is not None:
            rest()  # from the output's gradient back through the plan's steps
        loss_value = self._strategy.reduce_gradients(params, float(loss.data))
        self.optimizer.step(params)
        self._track(loss_value, parts, _batch_len(x), ys, preds, ws)
        return loss_value

    def test_step(self, x, y, sample_weight=None):
        """Updates the loss trackers (with the outputs' activity penalties, without the
        weights': those are added once) and metrics with one batch."""
        with no_grad():
            out = self(x, training=False)
            total, parts, ys, preds, ws = self._losses_and_metrics(y, out, sample_weight)
            value = float(total.data)
            if layer_base.losses_added():  # add_loss, activity regularizers
                value += sum(float(p.data) for p in self._activity_losses())
        self._track(value, parts, _batch_len(x), ys, preds, ws)

    def predict_step(self, x):
        run = self._inference_plan_for(x)
        if run is not None:  # the same values, without the layers' per-call work; its
            return run(x)  # steps take and give arrays, so there is no graph to keep out
        with no_grad():
            out = self(x, training=False)
        return pack_like(out, [t.data for t in flatten(out)])

    def _inference_plan_for(self, x):
        """A function computing ``self(x, training=False)``'s values from the array x
        alone, or None (a model that has no such plan for x calls itself)."""
        return None

    def _training_plan_for(self, x):
        """A function ``plan(x, trained)`` of the array x and the ids of the weights to
        train giving ``self(x, training=True)``'s output Tensor and a function that
        carries its gradient back to those weights once the loss's backward has run (or
        None when none of them is in the plan's layers); None when the model has no
        such plan for x, and calls itself."""
        return None

    def _logs(self, penalty=0.0):
        logs = {}
        for i, tracker in enumerate(self._loss_trackers):
            logs[tracker.name] = tracker.result() + (penalty if i == 0 else 0.0)
        if self._compiled_metrics is not None:
            logs.update(self._compiled_metrics.results())
        return logs

    def _reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def _penalty(self):
        """The weights' penalties (the outputs' are counted per batch, in the steps)."""
        with no_grad():
            return float(sum(float(p.data) for p in self._weight_penalties()))

    def _flat(self, logs):
        """The logs as a list (one value alone), in Keras' order: the loss, each output's
        loss (in the order of compile's loss dict, when it was one), the metrics."""
        keys = list(logs)
        given = self._compile_args[0] if self._compile_args else None
        if isinstance(given, dict) and len(self._loss_trackers) > 1:
            per_output = [f"{k}_loss" for k in given if f"{k}_loss" in logs]
            rest = [k for k in keys[1:] if k not in per_output]
            keys = keys[:1] + per_output + rest
        values = [logs[k] for k in keys]
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """A single step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled("train_on_batch")
        data = ArrayDataAdapter(x, y, sample_weight, fn="train_on_batch", class_weight=class_weight,
                                prepare_x=self._preparer("train_on_batch"))  # fmt: skip
        self._step_params = None
        self._reset_metrics()
        self.train_step(data.x, data.y, data.sample_weight)
        logs = self._logs()
        return logs if return_dict else self._flat(logs)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        data = ArrayDataAdapter(x, y, sample_weight, fn="test_on_batch",
                                prepare_x=self._preparer("test_on_batch"))  # fmt: skip
        self._reset_metrics()
        self.test_step(data.x, data.y, data.sample_weight)
        logs = self._logs(self._penalty())
        return logs if return_dict else self._flat(logs)

    def predict_on_batch(self, x):
        data = ArrayDataAdapter(x, fn="predict_on_batch", needs_y=False,
                                prepare_x=self._preparer("predict_on_batch"))  # fmt: skip
        return self.predict_step(data.x)

    # ------------------------------------------------------------ stopping
    def request_stop(self, reason=None):
        """Stops ``fit`` after the current batch; a ``reason`` is warned about when fit
        returns (how callbacks such as TerminateOnNaN stop training)."""
        self.stop_training = True
        if reason is not None:
            self.stop_reason = reason

    # ------------------------------------------------------------ fit
    def _num_classes(self):
        shape = getattr(self, "output_shape", None)
        if isinstance(shape, tuple) and shape and isinstance(shape[-1], int) and shape[-1] > 1:
            return shape[-1]
        return None

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
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
        seed=None,
        distributed=False,
    ):
        """Trains for ``epochs`` passes over the data; returns the History.

        x, y: arrays (lists or dicts of them for several inputs/outputs), or x a
            generator or :class:`~dlcore.utils.PyDataset` of (x, y[, sample_weight])
            batches and y None. ``steps_per_epoch`` batches make an epoch (default: all
            the arrays, the PyDataset's length, or until the generator ends).
        batch_size: for arrays (default 32).
        sample_weight: per-sample weights of the loss and of ``weighted_metrics``;
            ``class_weight`` {class: weight} makes them from the labels instead.
        shuffle: reorder the samples (a PyDataset's batches) every epoch; with
            ``seed`` the order of each epoch is fixed by (seed, epoch), so resuming at
            ``initial_epoch`` repeats it.
        validation_split: hold out this last fraction of the (array) samples before
            shuffling; or give ``validation_data`` as (x_val, y_val[, w_val]), a
            generator or a PyDataset (``validation_steps`` batches of it).
        verbose: 0 silent, 1 a progress bar (redrawn in place on a terminal, one line
            per epoch otherwise), 2 one line per epoch; 'auto' is 1.
        distributed: train data-parallel across the ranks of an MPI job (see
            :mod:`dlcore.distributed`); arrays only. Every rank passes the same x and y
            and trains on its shard, ``batch_size`` samples per step; the logs, the
            History and EarlyStopping see the figures of all ranks; rank 0 alone shows
            progress and writes checkpoints.
        The run stops early when a callback sets ``model.stop_training``
        (EarlyStopping) or the loss is not finite.
        """
        self._require_compiled("fit")
        epochs = _count_arg(epochs, "epochs", "fit")
        initial_epoch = _count_arg(initial_epoch, "initial_epoch", "fit")
        validation_freq = _count_arg(validation_freq, "validation_freq", "fit", minimum=1)
        if verbose not in ("auto", 0, 1, 2):
            raise ValueError(f"fit: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
        data = get_data_adapter(x, y, sample_weight, batch_size=batch_size,
                                steps=steps_per_epoch, shuffle=shuffle,
                                class_weight=class_weight, fn="fit",
                                num_classes=self._num_classes(),
                                prepare_x=self._preparer("fit"))  # fmt: skip
        if isinstance(data, ArrayDataAdapter):
            held_out = data.split(validation_split)
        elif validation_split:
            raise ValueError("fit: validation_split needs array data; give validation_data "
                             "for a generator or PyDataset")  # fmt: skip
        else:
            held_out = None
        if validation_data is not None and held_out is not None:
            raise ValueError("fit: give validation_split or validation_data, not both")
        val = held_out
        if validation_data is not None:
            val = self._validation_adapter(validation_data, validation_batch_size or batch_size,
                                           validation_steps)  # fmt: skip
        if isinstance(val, ArrayDataAdapter) and isinstance(data, ArrayDataAdapter):
            _check_like_training(val, data)
        if isinstance(val, GeneratorDataAdapter):  # read again if it runs out, as Keras
            passes = sum((e + 1) % validation_freq == 0 for e in range(initial_epoch, epochs))
            val.replay = passes > 1
        cbs = callbacks_module.check_callbacks(callbacks, "fit")
        verbose = 1 if verbose == "auto" else verbose

        self._strategy = get_strategy(distributed)
        if distributed and not isinstance(data, ArrayDataAdapter):
            raise ValueError("fit(distributed=True) shards arrays; it cannot take a generator")
        arrays = isinstance(data, ArrayDataAdapter)
        if arrays:
            seed = self._strategy.start_fit(self, data, seed)
            steps = data.num_batches(self._strategy.samples(data.num_samples))
            if data.steps is not None:
                steps = min(steps, data.steps)
        else:
            steps = data.num_batches()
        verbose = verbose if self._strategy.is_chief else 0

        history = callbacks_module.History()
        cbs = [*cbs, history]  # after the user's, as Keras: it records what they add
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
        cb.on_train_begin({})
        logs = {}  # on_train_end's: the last epoch's, as in Keras
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch, {})
            self._reset_metrics()
            if arrays:
                order = epoch_order(data.num_samples, shuffle, seed, epoch)
                batches = data.batches(self._strategy.shard(order, data.num_samples), steps)
            else:
                batches = prefetch(data.batches())
            seen = 0
            for step, (xb, yb, wb) in enumerate(batches):
                cb.on_train_batch_begin(step, {})
                self.train_step(xb, yb, wb)
                seen += _batch_len(xb)
                cb.on_train_batch_end(step, self._logs())
                if self.stop_training:
                    break
            if hasattr(batches, "close"):
                batches.close()
            if not self.stop_training:
                check_has_samples(data, seen, epoch)
            self._strategy.end_epoch(self)
            logs = self._logs()
            if val is not None and not self.stop_reason and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate(val, self._strategy, cb)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cb.on_epoch_end(epoch, logs)
            if self.stop_training or getattr(data, "exhausted", False):
                break
        cb.on_train_end(logs)
        if self.stop_reason:
            warnings.warn(self.stop_reason, RuntimeWarning, stacklevel=2)
        return history

    def _validation_adapter(self, validation_data, batch_size, steps):
        fn = "fit: validation_data"
        if isinstance(validation_data, (tuple, list)):
            if len(validation_data) not in (2, 3):
                raise ValueError(
                    f"fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                    f"sample_weight_val), got a {type(validation_data).__name__} of "
                    f"{len(validation_data)} items"
                )
            return get_data_adapter(*validation_data, batch_size=batch_size, steps=steps, fn=fn,
                                    steps_name="validation_steps",
                                    prepare_x=self._preparer(fn))  # fmt: skip
        return get_data_adapter(validation_data, steps=steps, fn=fn, steps_name="validation_steps",
                                prepare_x=self._preparer(fn))  # fmt: skip

    # ------------------------------------------------------------ evaluate / predict
    def _evaluate(self, data, strategy, cb):
        """The logs of one pass over ``data``, calling ``cb``'s on_test_* hooks."""
        self._reset_metrics()
        if isinstance(data, ArrayDataAdapter):
            lo, hi = strategy.own_range(data.num_samples)
            if lo or hi != data.num_samples:
                data = data.parts(lo, hi)
            batches = data.batches(count=data.steps if getattr(data, "steps", None) else None)
        else:
            batches = prefetch(data.batches())
        batch_logs = cb.calls("on_test_batch_end")  # the running figures, only if read
        cb.on_test_begin({})
        seen = 0
        for step, (xb, yb, wb) in enumerate(batches):
            cb.on_test_batch_begin(step, {})
            self.test_step(xb, yb, wb)
            seen += _batch_len(xb)
            cb.on_test_batch_end(step, self._logs(self._penalty()) if batch_logs else {})
        check_has_samples(data, seen)
        strategy.reduce_metrics(self.metrics)
        logs = self._logs(self._penalty())
        cb.on_test_end(dict(logs))
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False, distributed=False):  # fmt: skip
        """Loss (with the weight penalties, as in training) and metrics over the data
        (the forms ``fit`` takes).

        callbacks: Callback objects whose on_test_* hooks are called, as in Keras.
        distributed: every rank of an MPI job passes the same x and y, evaluates its
            part of them, and all get the figures over the whole of (x, y).
        """
        self._require_compiled("evaluate")
        data = get_data_adapter(x, y, sample_weight, batch_size=batch_size, steps=steps,
                                fn="evaluate", steps_name="steps",
                                prepare_x=self._preparer("evaluate"))  # fmt: skip
        cbs = callbacks_module.check_callbacks(callbacks, "evaluate")
        strategy = get_strategy(distributed)
        if isinstance(data, ArrayDataAdapter):
            strategy.check_same_data("evaluate", data)
        params = {"verbose": 0 if verbose == "auto" else verbose, "epochs": 1,
                  "steps": _num_steps(data)}  # fmt: skip
        logs = self._evaluate(data, strategy, callbacks_module.CallbackList(cbs, self, params))
        if verbose and verbose != "auto" and strategy.is_chief:
            from dlcore.progress import format_logs

            print(format_logs(logs))
        return logs if return_dict else self._flat(logs)

    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """The model's outputs for x, in batches, as a NumPy array (a list or dict of
        them for several outputs); no graph is kept. ``callbacks``' on_predict_* hooks
        are called as in Keras (``on_predict_batch_end`` gets ``{"outputs": ...}``)."""
        if (
            callbacks is None
            and steps is None
            and type(x) is np.ndarray
            and x.ndim
            and x.dtype.kind in "biuf"
            and 0 < len(x) <= batch_size_arg(batch_size, "predict")
        ):  # one batch of one array: nothing to cut or check
            return self.predict_step(self._model_x(x, "predict"))
        data = get_data_adapter(x, batch_size=batch_size, steps=steps, fn="predict",
                                needs_y=False, steps_name="steps",
                                prepare_x=self._preparer("predict"))  # fmt: skip
        cbs = callbacks_module.check_callbacks(callbacks, "predict")
        cb = callbacks_module.CallbackList(
            cbs, self, {"verbose": verbose, "epochs": 1, "steps": _num_steps(data)}
        )
        if isinstance(data, ArrayDataAdapter):
            batches = data.batches(count=data.steps)
        else:
            batches = prefetch(data.batches())
        cb.on_predict_begin({})
        outs, seen = [], 0
        for step, (xb, _, _) in enumerate(batches):
            cb.on_predict_batch_begin(step, {})
            outs.append(self.predict_step(xb))
            seen += _batch_len(xb)
            cb.on_predict_batch_end(step, {"outputs": outs[-1]})
        check_has_samples(data, seen)
        cb.on_predict_end({})
        if len(outs) == 1:  # one batch: its arrays are the answer, no copy
            return outs[0]
        leaves = [np.concatenate(parts) for parts in zip(*(flatten(o) for o in outs))]
        return pack_like(outs[0], leaves)
