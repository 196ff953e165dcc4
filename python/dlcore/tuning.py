"""Hyper-parameter search: :class:`RandomSearch` and :class:`GridSearch` over a
model-building function and a search space.

The space maps names to :class:`Choice` (a list of values also means one),
:class:`Range` (numbers between two bounds, ints when the bounds are ints) and
:class:`LogRange` (numbers spread evenly in log scale, e.g. learning rates). Each trial
calls ``build_fn(hp)`` with a dict of values; it must return a compiled model. A trial
is scored by ``objective`` (``"val_loss"``, ``"val_accuracy"``, ...: a key of the
History of ``fit``) at its best epoch, on a validation split or averaged over
``cv`` folds (:class:`~dlcore.model_selection.KFold`), and stops early when the
objective has not improved for ``patience`` epochs.

Trials run one after another in this process, or ``parallel`` at a time in processes
started with ``spawn`` (libgomp does not survive ``fork``), each with
``cores // parallel`` threads, so the trials share the machine evenly; ``build_fn``
must then be importable (defined at a module's top level). With ``results_file``,
every finished trial is appended to it (one JSON line, flushed to disk) as soon as it
finishes, and a search started again with the same file runs only the trials it does
not hold: an interrupted search loses at most the trials that were running.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import math
import multiprocessing
import numbers
import os
import time

import numpy as np

from dlcore import ops
from dlcore.callbacks import EarlyStopping
from dlcore.model_selection import KFold
from dlcore.random import set_random_seed

__all__ = ["Choice", "GridSearch", "LogRange", "RandomSearch", "Range"]


# ---------------------------------------------------------------- the space


class Choice:
    """One of ``values``."""

    def __init__(self, values):
        values = list(values)
        if not values:
            raise ValueError("Choice: values must not be empty")
        self.values = values

    def sample(self, rng):
        return self.values[rng.integers(len(self.values))]

    def grid(self):
        return list(self.values)

    def __repr__(self):
        return f"Choice({self.values!r})"


def _bounds(low, high, owner):
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{owner}: {name} must be a finite number, got {v!r}")
    if low > high:
        raise ValueError(f"{owner}: low must be <= high, got low={low!r}, high={high!r}")


class Range:
    """A number in [low, high]: uniform, ints when both bounds are ints. In a grid, the
    values from low in steps of ``step`` up to high, or ``num`` evenly spaced values
    (3 by default)."""

    def __init__(self, low, high, step=None, num=None):
        _bounds(low, high, "Range")
        if step is not None and not (isinstance(step, numbers.Real) and step > 0):
            raise ValueError(f"Range: step must be a positive number, got {step!r}")
        if num is not None and (not isinstance(num, (int, np.integer)) or num < 1):
            raise ValueError(f"Range: num must be a positive int, got {num!r}")
        self.low, self.high, self.step, self.num = low, high, step, num
        self.integer = all(isinstance(v, (int, np.integer)) for v in (low, high))

    def _cast(self, values):
        return [int(np.rint(v)) if self.integer else float(v) for v in values]

    def sample(self, rng):
        if self.integer:
            return int(rng.integers(self.low, self.high + 1))
        return float(rng.uniform(self.low, self.high))

    def grid(self):
        if self.step is not None:
            count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            return self._cast(self.low + self.step * np.arange(count))
        values = np.linspace(self.low, self.high, self.num or 3)
        return list(dict.fromkeys(self._cast(values)))  # ints may repeat

    def __repr__(self):
        return f"Range({self.low!r}, {self.high!r})"


class LogRange:
    """A positive number in [low, high], uniform in log scale; in a grid, ``num``
    values evenly spaced in log scale (3 by default)."""

    def __init__(self, low, high, num=None):
        _bounds(low, high, "LogRange")
        if low <= 0:
            raise ValueError(f"LogRange: low must be > 0, got {low!r}")
        if num is not None and (not isinstance(num, (int, np.integer)) or num < 1):
            raise ValueError(f"LogRange: num must be a positive int, got {num!r}")
        self.low, self.high, self.num = float(low), float(high), num

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def grid(self):
        return [float(v) for v in np.geomspace(self.low, self.high, self.num or 3)]

    def __repr__(self):
        return f"LogRange({self.low!r}, {self.high!r})"


def _space(space, owner):
    if not isinstance(space, dict) or not space:
        raise ValueError(
            f"{owner}: space must be a non-empty dict of name -> domain, got {space!r}"
        )
    out = {}
    for name, domain in space.items():
        if isinstance(domain, (list, tuple)):
            domain = Choice(domain)
        if not isinstance(domain, (Choice, Range, LogRange)):
            raise ValueError(
                f"{owner}: space[{name!r}] must be a Choice, Range, LogRange or a list, got {domain!r}"
            )
        out[name] = domain
    return out


def _plain(value):
    """A JSON value for a hyper-parameter (NumPy scalars made Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- one trial


def _run_trial(build_fn, hp, trial, data, settings):
    """Trains and scores one trial (every fold); returns its record."""
    x, y = data
    objective, mode = settings["objective"], settings["mode"]
    started = time.perf_counter()
    if settings["cv"] is None:
        cut = int(len(x) * (1 - settings["validation_split"]))  # the last part, as Keras
        folds = [(np.arange(cut), np.arange(cut, len(x)))]
    else:
        folds = list(KFold(settings["cv"], shuffle=True, random_state=settings["seed"]).split(x))
    scores, epochs, runs = [], [], []
    for fold, (train, val) in enumerate(folds):
        set_random_seed(settings["seed"] + 1000 * trial + fold)
        model = build_fn(dict(hp))
        if getattr(model, "loss", None) is None:
            raise ValueError("build_fn must return a compiled model (model.compile was not called)")
        callbacks = []
        if settings["patience"] is not None:
            callbacks.append(EarlyStopping(objective, patience=settings["patience"], mode=mode))
        history = model.fit(x[train], y[train], validation_data=(x[val], y[val]),
                            epochs=settings["epochs"], batch_size=settings["batch_size"],
                            callbacks=callbacks, verbose=0, seed=settings["seed"] + fold)  # fmt: skip
        values = history.history.get(objective)
        if values is None:
            raise ValueError(
                f"objective {objective!r} is not in the History; it has {sorted(history.history)}"
            )
        best = int(np.argmin(values) if mode == "min" else np.argmax(values))
        scores.append(float(values[best]))
        runs.append(values)
        epochs.append(best + 1)
    return {
        "trial": trial,
        "hp": hp,
        "score": float(np.mean(scores)),
        "fold_scores": scores,
        "epochs": int(np.rint(np.mean(epochs))),
        "epochs_run": [len(v) for v in runs],
        "threads": ops.get_num_threads(),
        "seconds": round(time.perf_counter() - started, 3),
    }


_worker = {}


def _init_worker(threads, build_fn, data, settings):
    ops.set_num_threads(threads)
    _worker.update(build_fn=build_fn, data=data, settings=settings)


def _worker_trial(hp, trial):
    return _run_trial(_worker["build_fn"], hp, trial, _worker["data"], _worker["settings"])


# ---------------------------------------------------------------- the searches


class _Search:
    def __init__(self, build_fn, space, objective="val_loss", max_trials=10, cv=None,
                 patience=None, parallel=1, results_file=None, mode="auto", seed=0):  # fmt: skip
        owner = type(self).__name__
        if not callable(build_fn):
            raise TypeError(f"{owner}: build_fn must be callable, got {build_fn!r}")
        self.build_fn, self.space = build_fn, _space(space, owner)
        if not isinstance(objective, str) or not objective:
            raise ValueError(
                f"{owner}: objective must be a History key such as 'val_loss', got {objective!r}"
            )
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            better_larger = any(k in objective for k in ("acc", "precision", "recall", "f1", "auc"))
            mode = "max" if better_larger else "min"
        self.objective, self.mode = objective, mode
        for name, value, low in (("max_trials", max_trials, 1), ("parallel", parallel, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
        if cv is not None and (
            isinstance(cv, bool) or not isinstance(cv, (int, np.integer, KFold))
        ):
            raise ValueError(f"{owner}: cv must be None, an int >= 2 or a KFold, got {cv!r}")
        self.cv = cv.n_splits if isinstance(cv, KFold) else cv
        if self.cv is not None and self.cv < 2:
            raise ValueError(f"{owner}: cv must be >= 2 folds, got {cv!r}")
        if patience is not None and (not isinstance(patience, (int, np.integer)) or patience < 0):
            raise ValueError(f"{owner}: patience must be None or an int >= 0, got {patience!r}")
        self.max_trials, self.patience, self.parallel = int(max_trials), patience, int(parallel)
        self.results_file, self.seed = results_file, int(seed)
        self._records, self._data, self._settings = [], None, None

    def _trials(self):
        """The (trial number, hp) pairs this search runs, in order."""
        raise NotImplementedError

    # ------------------------------------------------------------ running
    def search(self, x, y, epochs=10, validation_split=0.2, batch_size=32, verbose=0):
        """Runs the trials not already in ``results_file``; returns :attr:`results`."""
        owner = type(self).__name__
        x, y = np.asarray(x), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"{owner}.search: x has {len(x)} samples but y has {len(y)}")
        if self.cv is None and not 0 < validation_split < 1:
            raise ValueError(
                f"{owner}.search: validation_split must be in (0, 1) without cv, got {validation_split!r}"
            )
        cut = int(len(x) * (1 - validation_split))
        if self.cv is None and not 0 < cut < len(x):
            raise ValueError(
                f"{owner}.search: validation_split={validation_split} of {len(x)} samples leaves "
                f"an empty training or validation part"
            )
        self._data = (x, y)
        self._settings = {
            "objective": self.objective, "mode": self.mode, "cv": self.cv, "seed": self.seed,
            "validation_split": validation_split, "patience": self.patience, "epochs": int(epochs),
            "batch_size": batch_size,
        }  # fmt: skip
        trials = self._trials()
        done = self._load(trials)
        todo = [(t, hp) for t, hp in trials if t not in done]
        self._records = list(done.values())
        if verbose:
            print(f"{owner}: {len(trials)} trials, {len(done)} already done, {len(todo)} to run")
        if self.parallel == 1 or len(todo) <= 1:
            for trial, hp in todo:
                self._finish(
                    _run_trial(self.build_fn, hp, trial, self._data, self._settings), verbose
                )
        else:
            self._run_parallel(todo, verbose)
        return self.results

    def _run_parallel(self, todo, verbose):
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        workers = min(self.parallel, len(todo))
        threads = max(1, (cores or 1) // workers)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker,
            initargs=(threads, self.build_fn, self._data, self._settings),
        ) as pool:  # fmt: skip
            futures = [pool.submit(_worker_trial, hp, trial) for trial, hp in todo]
            try:
                for future in concurrent.futures.as_completed(futures):
                    self._finish(future.result(), verbose)
            except BaseException:  # an interrupt: what finished is saved, the rest cancelled
                for future in futures:
                    future.cancel()
                raise

    def _finish(self, record, verbose):
        self._records.append(record)
        if self.results_file is not None:
            with open(self.results_file, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if verbose:
            print(f"trial {record['trial']}: {self.objective} = {record['score']:.4f} "
                  f"({record['epochs']} epochs, {record['seconds']:.1f} s) {record['hp']}")  # fmt: skip

    def _load(self, trials):
        """The finished trials in ``results_file``, checked to be this search's."""
        if self.results_file is None or not os.path.exists(self.results_file):
            return {}
        planned = {t: json.loads(json.dumps(hp)) for t, hp in trials}  # as JSON keeps them
        with open(self.results_file, "rb+") as f:
            text = f.read()
            end = text.rfind(b"\n") + 1
            if end < len(text):  # a line cut off mid-write: dropped, that trial runs again
                f.truncate(end)
        done = {}
        for number, line in enumerate(text[:end].decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    record = json.loads(line)
                    trial, hp = record["trial"], record["hp"]
                except (ValueError, KeyError, TypeError):
                    raise ValueError(
                        f"{type(self).__name__}: line {number} of {self.results_file} is not a "
                        f"trial record"
                    ) from None
                if planned.get(trial) != hp:
                    raise ValueError(
                        f"{type(self).__name__}: {self.results_file} holds trial {trial} with "
                        f"{hp}, which this search would run with {planned.get(trial)}; it is "
                        f"another search's file"
                    )
                done[trial] = record
        return done

    # ------------------------------------------------------------ results
    @property
    def results(self):
        """The finished trials, best first: dicts with ``trial``, ``hp``, ``score`` (the
        objective, averaged over the folds), ``fold_scores``, ``epochs`` (the best
        epoch), ``epochs_run`` (each fold's History), ``threads`` and ``seconds``."""
        return sorted(self._records, key=lambda r: r["score"], reverse=self.mode == "max")

    def results_table(self):
        """The results as a text table, best first."""
        rows = self.results
        names = list(self.space)
        header = ["trial", *names, self.objective, "epochs", "seconds"]
        body = [
            [str(r["trial"]), *(_format(r["hp"][n]) for n in names), f"{r['score']:.4f}",
             str(r["epochs"]), f"{r['seconds']:.1f}"]
            for r in rows
        ]  # fmt: skip
        widths = [max(len(c) for c in column) for column in zip(header, *body)]
        return "\n".join(
            "  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in [header, *body]
        )

    @property
    def best_hp(self):
        """The best trial's hyper-parameters."""
        if not self._records:
            raise ValueError(f"{type(self).__name__}: no finished trials; call search first")
        return dict(self.results[0]["hp"])

    def best_model(self, x=None, y=None):
        """The best trial's model rebuilt and trained on all of the search's data (or on
        x, y) for the trial's best number of epochs."""
        best = self.results[0] if self._records else None
        if best is None:
            raise ValueError(f"{type(self).__name__}: no finished trials; call search first")
        if x is None:
            if self._data is None:
                raise ValueError(f"{type(self).__name__}.best_model: give x and y")
            x, y = self._data
        set_random_seed(self.seed + 1000 * best["trial"])
        model = self.build_fn(dict(best["hp"]))
        batch_size = self._settings["batch_size"] if self._settings else 32
        model.fit(x, y, epochs=best["epochs"], batch_size=batch_size, verbose=0, seed=self.seed)
        return model


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class RandomSearch(_Search):
    """``max_trials`` trials, each with values drawn from the space (a seeded generator:
    the same ``seed`` draws the same trials, which is how a rerun resumes).

    Args:
        build_fn: ``build_fn(hp) -> compiled model``.
        space: name -> :class:`Choice` / :class:`Range` / :class:`LogRange` / list.
        objective: a History key (``"val_loss"``, ``"val_accuracy"``...).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, AUC..., else min).
        cv: None (score on the last ``validation_split`` of the data), a number of folds
            or a :class:`~dlcore.model_selection.KFold` (its number of folds; the folds
            are shuffled with ``seed``).
        patience: stop a trial's training after this many epochs without improvement.
        parallel: trials at a time, each in its own process.
        results_file: a JSON-lines file the finished trials are appended to.
    """

    def _trials(self):
        rng = np.random.default_rng(self.seed)
        return [
            (t, {name: _plain(domain.sample(rng)) for name, domain in self.space.items()})
            for t in range(self.max_trials)
        ]


class GridSearch(_Search):
    """Every combination of the space's grids (a Choice's values, a Range's steps, a
    LogRange's points), at most ``max_trials`` of them (None: all), in order.
    The arguments are :class:`RandomSearch`'s."""

    def __init__(self, build_fn, space, objective="val_loss", max_trials=None, **kwargs):
        space_ = _space(space, "GridSearch")
        size = math.prod(len(d.grid()) for d in space_.values())
        super().__init__(
            build_fn, space, objective, size if max_trials is None else max_trials, **kwargs
        )

    def _trials(self):
        names = list(self.space)
        grid = itertools.product(*(self.space[n].grid() for n in names))
        return [
            (t, {n: _plain(v) for n, v in zip(names, values)})
            for t, values in enumerate(itertools.islice(grid, self.max_trials))
        ]
