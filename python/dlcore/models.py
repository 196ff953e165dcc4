"""Models: ``Sequential`` and the ``Model`` base class, with Keras' training face
(``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``, ``save``).

A model is a layer (so models nest: a GAN's combined model holds the generator and
the discriminator) and a callable on Tensors, so a hand-written loop can do
``loss = loss_fn(y, model(x, training=True)); loss.backward(); opt.step()``.
"""

from __future__ import annotations

import math

import numpy as np

from dlcore import callbacks as callbacks_module
from dlcore import distributed as distributed_module
from dlcore import layers as layers_module
from dlcore import losses as losses_module
from dlcore import metrics as metrics_module
from dlcore import optimizers as optimizers_module
from dlcore.layers import InputLayer, Layer
from dlcore.saving import CheckpointError, read_checkpoint, write_checkpoint
from dlcore.tensor import Tensor, no_grad

__all__ = ["Model", "Sequential", "load_model"]


def _as_array(x, what):
    if isinstance(x, Tensor):
        return x.data
    if x is None:
        raise TypeError(f"{what} must be an array, got None")
    return np.asarray(x)


def _epoch_order(n, shuffle, seed, epoch):
    if not shuffle:
        return None
    if seed is None:
        from dlcore import random as _random

        return _random.generator().permutation(n)
    # Each epoch's order depends only on (seed, epoch): a run resumed at
    # initial_epoch=k sees the same batches as an uninterrupted one.
    return np.random.default_rng((seed, epoch)).permutation(n)


class Model(Layer):
    """Base model. Subclass it and define ``call(inputs, training)`` for a custom
    architecture (layers assigned as attributes are tracked), or use Sequential."""

    def __init__(self, name=None, **kwargs):
        object.__setattr__(self, "_tracked", [])
        super().__init__(name=name, **kwargs)
        self.optimizer = None
        self.loss = None
        self.compiled_metrics = []
        self.stop_training = False
        self._stop_reason = None
        self._train_params = None
        self._compile_config = None
        self.history = None
        self._world = None  # the distributed.World a distributed fit made this a replica in

    def __setattr__(self, name, value):
        if isinstance(value, Layer) and value is not self and "_tracked" in self.__dict__:
            if value not in self._tracked:
                self._tracked.append(value)
        object.__setattr__(self, name, value)

    # No cast on the way in: a model's layers each cast their inputs to their own dtype,
    # so a float64 stack keeps float64 inputs exact whatever the model's own dtype.
    casts_inputs = False

    # ------------------------------------------------------------ structure
    @property
    def layers(self):
        return list(self._tracked)

    def _unique(self, tensors):
        seen, out = set(), []
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    @property
    def weights(self):
        return self._unique(w for layer in self.layers for w in layer.weights)

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return self._unique(w for layer in self.layers for w in layer.trainable_weights)

    @property
    def non_trainable_weights(self):
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    @property
    def losses(self):
        return [p for layer in self.layers for p in layer.losses]

    # ------------------------------------------------------------ compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Sets the optimizer, the loss and the metrics for fit / evaluate.

        optimizer: a name ('adam', 'sgd', 'rmsprop') or an optimizer object.
        loss: a Keras name ('mse', 'categorical_crossentropy', ...), a Loss or a callable.
        metrics: names ('accuracy', 'precision', 'recall', 'f1'), Metric objects or
            functions(y_true, y_pred).

        The trainable weights are fixed here, as in Keras: setting ``trainable = False``
        on a sub-model afterwards affects only models compiled later.
        """
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='mse'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        loss_name = getattr(self.loss, "name", None)
        self.compiled_metrics = [metrics_module.get(m, loss_name) for m in (metrics or [])]
        self._compile_config = {
            "optimizer": optimizers_module.serialize(self.optimizer),
            "loss": losses_module.serialize(self.loss),
            "metrics": [m if isinstance(m, str) else None for m in (metrics or [])],
        }
        # Resolved now when the model is built, else on first use (building creates them).
        self._train_params = self.trainable_weights if self.built else None
        if self._train_params is not None:
            self.optimizer.params = self._train_params

    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(
                f"{what}: compile the model first, e.g. model.compile(optimizer='adam', loss='mse')"
            )

    def _params(self):
        if self._train_params is None:
            self._train_params = self.trainable_weights
            self.optimizer.params = self._train_params
        return self._train_params

    # ------------------------------------------------------------ steps
    def _compute_loss(self, y, out):
        loss = self.loss(y, out)
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
        loss = self._compute_loss(y, out)
        loss.backward()
        loss_value = float(loss.data)
        if self._world is not None:  # the mean gradient and loss over the ranks
            loss_value = distributed_module.allreduce_gradients(params, loss_value)
        self.optimizer.step(params)
        for m in self.compiled_metrics:
            m.update_state(y, out.data)
        return loss_value

    def _test_batch(self, x, y):
        with no_grad():
            out = self(x, training=False)
            loss = self.loss(y, out)
        for m in self.compiled_metrics:
            m.update_state(y, out.data)
        return float(loss.data), len(out.data)

    def _logs(self, loss):
        logs = {"loss": loss}
        for m in self.compiled_metrics:
            logs[m.name] = float(m.result())
        return logs

    def _reset_metrics(self):
        for m in self.compiled_metrics:
            m.reset_state()

    def train_on_batch(self, x, y, return_dict=False):
        """A single step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled("train_on_batch")
        self._reset_metrics()
        logs = self._logs(self.train_step(_as_array(x, "x"), _as_array(y, "y")))
        return logs if return_dict else self._flat(logs)

    def test_on_batch(self, x, y, return_dict=False):
        self._require_compiled("test_on_batch")
        self._reset_metrics()
        loss, _ = self._test_batch(_as_array(x, "x"), _as_array(y, "y"))
        logs = self._logs(loss + self._penalty())
        return logs if return_dict else self._flat(logs)

    def predict_on_batch(self, x):
        with no_grad():
            return self(_as_array(x, "x"), training=False).data

    @staticmethod
    def _flat(logs):
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def _penalty(self):
        with no_grad():
            return float(sum(float(p.data) for p in self.losses))

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
        x, y = _as_array(x, "x"), _as_array(y, "y")
        if len(x) != len(y):
            raise ValueError(f"fit: x has {len(x)} samples but y has {len(y)}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split}")
        if validation_data is None and validation_split:
            split = int(len(x) * (1 - validation_split))
            x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
        if len(x) == 0:
            raise ValueError("fit: no training samples")
        batch_size = batch_size or 32
        verbose = 1 if verbose == "auto" else verbose
        self._world = None
        if distributed:
            self._world, seed = distributed_module.start_fit(self, x, y, seed)
            verbose = verbose if self._world.rank == 0 else 0
        samples = len(x) if self._world is None else len(x) // self._world.size
        steps = math.ceil(samples / batch_size)

        history = callbacks_module.History()
        cbs = [history] + list(callbacks or [])
        if not any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbs):
            cbs.append(callbacks_module.TerminateOnNaN())
        if verbose:
            cbs.append(callbacks_module.ProgbarLogger(verbose))
        cb = callbacks_module.CallbackList(
            cbs, self, {"epochs": epochs, "steps": steps, "verbose": verbose}
        )
        self.stop_training, self._stop_reason = False, None
        self.history = history
        cb.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cb.on_epoch_begin(epoch)
            self._reset_metrics()
            order = _epoch_order(len(x), shuffle, seed, epoch)
            if self._world is not None:
                order = distributed_module.shard(self._world, order, len(x))
            loss_sum, seen, logs = 0.0, 0, {}
            for step in range(steps):
                sl = slice(step * batch_size, (step + 1) * batch_size)
                idx = sl if order is None else order[sl]
                cb.on_train_batch_begin(step)
                xb, yb = x[idx], y[idx]
                loss_sum += self.train_step(xb, yb) * len(xb)
                seen += len(xb)
                logs = self._logs(loss_sum / seen)
                cb.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            if self._world is not None:
                distributed_module.end_epoch(self)
                logs = self._logs(loss_sum / seen)
            if validation_data is not None and not self._stop_reason:
                val = self.evaluate(
                    *validation_data,
                    batch_size=batch_size,
                    verbose=0,
                    return_dict=True,
                    distributed=distributed,
                )
                logs.update({f"val_{k}": v for k, v in val.items()})
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cb.on_train_end()
        if self._stop_reason:
            import warnings

            warnings.warn(self._stop_reason, RuntimeWarning, stacklevel=2)
        return history

    # ------------------------------------------------------------ evaluate / predict
    def evaluate(
        self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, distributed=False
    ):
        """Loss (with the weight penalties, as in training) and metrics over (x, y).

        distributed: every rank of an MPI job passes the same x and y, evaluates its
            part of them, and all get the figures over the whole of (x, y).
        """
        self._require_compiled("evaluate")
        x, y = _as_array(x, "x"), _as_array(y, "y")
        if len(x) != len(y):
            raise ValueError(f"evaluate: x has {len(x)} samples but y has {len(y)}")
        batch_size = batch_size or 32
        world = distributed_module.init() if distributed else None
        if world is not None:
            x, y = distributed_module.own_part(world, x, y)
        self._reset_metrics()
        loss_mean = metrics_module.Mean()
        for start in range(0, len(x), batch_size):
            loss_mean.update_state(
                *self._test_batch(x[start : start + batch_size], y[start : start + batch_size])
            )
        if world is not None:
            distributed_module.reduce_metrics([loss_mean, *self.compiled_metrics])
        logs = self._logs(loss_mean.result() + self._penalty())
        if verbose and verbose != "auto" and (world is None or world.rank == 0):
            from dlcore.progress import format_logs

            print(format_logs(logs))
        return logs if return_dict else self._flat(logs)

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for x, in batches, as a NumPy array (no graph is kept)."""
        x = _as_array(x, "x")
        batch_size = batch_size or 32
        outs = []
        with no_grad():
            for start in range(0, len(x), batch_size):
                outs.append(self(x[start : start + batch_size], training=False).data)
        if not outs:
            raise ValueError("predict: x has no samples")
        return np.concatenate(outs)

    # ------------------------------------------------------------ summary
    def summary(self, print_fn=None):
        """Prints the layer table: name (type), output shape, parameter count."""
        if not self.built:
            raise ValueError(
                f"{self.name}: this model has not yet been built; give the "
                f"first layer an input_shape, call build(input_shape), or "
                f"call the model on data first"
            )
        print_fn = print_fn or print
        rows = [
            (f"{l.name} ({type(l).__name__})", str(l.output_shape), f"{l.count_params():,}")
            for l in self.layers
        ]
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) + 2
            for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))
        ]
        line = "=" * sum(widths)

        def fmt(cells):
            return "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        trainable = sum(w.size for w in self.trainable_weights)
        total = self.count_params()
        out = [
            f'Model: "{self.name}"',
            line.replace("=", "_"),
            fmt(("Layer (type)", "Output Shape", "Param #")),
            line,
        ]
        for i, r in enumerate(rows):
            out.append(fmt(r))
            out.append("_" * sum(widths) if i < len(rows) - 1 else line)
        out += [
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
        ]
        for text in out:
            print_fn(text)

    # ------------------------------------------------------------ saving
    def _weight_manifest(self):
        return [
            {"name": w.name, "shape": list(w.shape), "dtype": w.dtype.name} for w in self.weights
        ]

    def _skips_writing(self):
        """True on ranks other than 0 of a model trained with fit(distributed=True): the
        replicas are identical, so rank 0 writes for all."""
        return self._world is not None and self._world.rank != 0

    def save_weights(self, path):
        """Writes the weights (atomically) to ``path`` (after a distributed fit, on
        rank 0 only)."""
        if self._skips_writing():
            return
        arrays = {f"weights/{i:04d}": w.data for i, w in enumerate(self.weights)}
        write_checkpoint(path, {"kind": "weights", "weights": self._weight_manifest()}, arrays)

    def load_weights(self, path):
        """Loads weights saved by ``save_weights`` or ``save`` into this model; refuses a
        file whose weights do not match the model's, naming the first mismatch."""
        header, arrays = read_checkpoint(path)
        self._assign_weights(path, header, arrays)

    def _assign_weights(self, path, header, arrays):
        saved = header.get("weights", [])
        own = self.weights
        if not self.built or not own:
            raise CheckpointError(
                f"{self.name}: build the model before loading weights into "
                f"it (it has no weights yet)"
            )
        if len(saved) != len(own):
            raise CheckpointError(
                f"{path!r} does not fit model {self.name!r}: the file has {len(saved)} weights, "
                f"the model {len(own)} ({[w['name'] for w in saved]} vs {[w.name for w in own]})"
            )
        for i, (meta, w) in enumerate(zip(saved, own)):
            if tuple(meta["shape"]) != w.shape:
                raise CheckpointError(
                    f"{path!r} does not fit model {self.name!r}: weight {i} is {meta['name']} "
                    f"{tuple(meta['shape'])} in the file but {w.name} {w.shape} in the model"
                )
        for i, w in enumerate(own):
            w.data[...] = arrays[f"weights/{i:04d}"]

    def get_config(self):
        raise NotImplementedError(
            f"{type(self).__name__} cannot describe its architecture; "
            f"use save_weights / load_weights"
        )

    def save(self, path):
        """Writes architecture, weights, compile settings and optimizer state to
        ``path``, atomically; ``models.load_model(path)`` restores the model so that
        training resumes exactly where it stopped. After a distributed fit, rank 0 alone
        writes."""
        if self._skips_writing():
            return
        params = self._params() if self.optimizer is not None else []
        header = {
            "kind": "model",
            "model": {"class_name": type(self).__name__, "config": self.get_config()},
            "build_input_shape": list(self.input_shape) if self.input_shape else None,
            "weights": self._weight_manifest(),
            "compile": self._compile_config,
        }
        arrays = {f"weights/{i:04d}": w.data for i, w in enumerate(self.weights)}
        if self.optimizer is not None:
            index = {id(w): i for i, w in enumerate(self.weights)}
            iterations, state = self.optimizer.get_state(params)
            header["optimizer_state"] = {
                "iterations": iterations,
                "params": [index[id(p)] for p in params],
            }
            arrays.update({f"optimizer/{i:04d}": a for i, a in enumerate(state)})
        write_checkpoint(path, header, arrays)


class Sequential(Model):
    """A stack of layers, each feeding the next.

    ``Sequential([layers.Dense(64, activation='relu', input_shape=(10,)), layers.Dense(1)])``
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._build_shape = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self._tracked:
                raise ValueError("Sequential: an Input must come first")
            self._build_shape = layer._batch_input_shape
            return
        if not self._tracked and layer._batch_input_shape is not None:
            self._build_shape = layer._batch_input_shape
        self._tracked.append(layer)
        self.built = False
        if self._build_shape is not None:
            self.build(self._build_shape)

    def pop(self):
        layer = self._tracked.pop()
        self.built = False
        return layer

    @property
    def layers(self):
        return list(self._tracked)

    def build(self, input_shape=None):
        shape = tuple(input_shape if input_shape is not None else self._build_shape or ())
        if not shape:
            raise ValueError(f"{self.name}: build needs an input shape")
        self._build_shape = shape
        self.input_shape = (None, *shape[1:])
        for layer in self.layers:
            layer._ensure_built(shape)
            shape = layer.output_shape
            if isinstance(shape, list):
                raise ValueError(
                    f"{self.name}: layer {layer.name} returns several tensors "
                    f"(return_state=True); a Sequential model needs one"
                )
        self.output_shape = shape
        self.built = True

    def _ensure_built(self, input_shape):
        if not self.built:
            self.build((None, *tuple(input_shape)[1:]))

    def call(self, inputs, training=False):
        x = inputs
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return self.output_shape

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [
                layers_module.serialize(l)
                if not isinstance(l, Sequential)
                else {
                    "class_name": "Sequential",
                    "config": l.get_config(),
                    "build_input_shape": list(l.input_shape or []),
                }
                for l in self.layers
            ],
        }

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"))
        model.trainable = config.get("trainable", True)
        for spec in config["layers"]:
            if spec["class_name"] == "Sequential":
                inner = Sequential.from_config(spec["config"])
                if spec.get("build_input_shape"):
                    inner.build(spec["build_input_shape"])
                model.add(inner)
            else:
                model.add(layers_module.deserialize(spec))
        return model


def load_model(path, compile=True):
    """Rebuilds a model saved with ``model.save``: architecture, weights and, with
    ``compile``, its optimizer (with its state), loss and metrics."""
    header, arrays = read_checkpoint(path)
    if header.get("kind") != "model":
        raise CheckpointError(
            f"{path!r} holds weights only; build the model and use model.load_weights({path!r})"
        )
    spec = header["model"]
    if spec["class_name"] != "Sequential":
        raise CheckpointError(f"{path!r}: cannot rebuild a {spec['class_name']} model")
    model = Sequential.from_config(spec["config"])
    if header.get("build_input_shape"):
        model.build(header["build_input_shape"])
    model._assign_weights(path, header, arrays)
    config = header.get("compile")
    if compile and config and config.get("loss"):
        metrics = [m for m in config["metrics"] if m]
        model.compile(
            optimizer=optimizers_module.get(config["optimizer"]),
            loss=losses_module.get(config["loss"]),
            metrics=metrics,
        )
        state = header.get("optimizer_state")
        if state is not None:
            weights = model.weights
            params = [weights[i] for i in state["params"]]
            model._train_params = params
            model.optimizer.params = params
            n = len([k for k in arrays if k.startswith("optimizer/")])
            model.optimizer.set_state(
                params, state["iterations"], [arrays[f"optimizer/{i:04d}"] for i in range(n)]
            )
    return model
