"""Turns what ``fit``, ``evaluate`` and ``predict`` are given into batches of
``(x, y, sample_weight)``, after one validation of the arguments with messages that
name them.

The forms, as Keras 3 takes them:
- NumPy arrays (or Tensors, or nested lists of numbers); for several inputs or
  outputs, lists or dicts of them (dicts keyed by input or output name);
- a Python generator or iterator yielding ``(x, y)`` or ``(x, y, sample_weight)``
  batches (``steps_per_epoch`` batches an epoch, or until it is exhausted);
- a :class:`dlcore.utils.PyDataset` (``__len__``, ``__getitem__``, ``on_epoch_end``).

Batches from generators and datasets are prepared in a background thread while the
model computes (the kernels release the GIL), two batches ahead.

Data with no samples is an error, never a loss or an accuracy: arrays of length 0 when
the adapter is made, a generator or PyDataset whose batches are all empty when the loop
that read them ends (:func:`check_has_samples`).
"""

from __future__ import annotations

import math
import queue
import threading
import warnings

import numpy as np

from dlcore import random as _random
from dlcore.layers.symbolic import flatten, pack_like
from dlcore.tensor import Tensor

__all__ = [
    "ArrayDataAdapter",
    "GeneratorDataAdapter",
    "PyDatasetAdapter",
    "batch_size_arg",
    "check_has_samples",
    "epoch_order",
    "get_data_adapter",
    "match_input_rank",
    "prefetch",
    "to_array",
    "unpack_batch",
]

DEFAULT_BATCH_SIZE = 32


def to_array(x, what):
    """``x`` as a NumPy array: Tensors give their data; None is an error naming ``what``."""
    if isinstance(x, Tensor):
        return x.data
    if x is None:
        raise TypeError(f"{what} must be an array, got None")
    if isinstance(x, np.ndarray):
        return _numeric(x, what)
    try:
        out = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be an array or nested lists of numbers: {e}") from e
    return _numeric(out, what)


def _numeric(array, what):
    if array.dtype.kind not in "biuf":
        kind = "objects" if array.dtype == object else f"dtype {array.dtype}"
        raise TypeError(f"{what} must hold numbers (bool, int or float), got an array of {kind}")
    return array


def _arrays(structure, what):
    """A structure (array, list/tuple or dict of arrays) with every leaf an ndarray."""
    if isinstance(structure, (list, tuple)) and structure and not _is_numeric_list(structure):
        return [_arrays(s, f"{what}[{i}]") for i, s in enumerate(structure)]
    if isinstance(structure, dict):
        return {k: _arrays(v, f"{what}[{k!r}]") for k, v in structure.items()}
    return to_array(structure, what)


def _is_numeric_list(value):
    """Nested lists of numbers (one array), rather than a list of arrays."""
    first = value[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    return isinstance(first, (int, float, bool, np.number, np.bool_))


def batch_size_arg(batch_size, fn):
    """None -> 32; otherwise an int >= 1 (Keras' rule), else a ValueError/TypeError."""
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
        raise TypeError(f"{fn}: batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _steps_arg(steps, name, fn):
    if steps is None:
        return None
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise TypeError(f"{fn}: {name} must be an int, got {steps!r}")
    if steps < 1:
        raise ValueError(f"{fn}: {name} must be >= 1, got {steps}")
    return int(steps)


def epoch_order(n, shuffle, seed, epoch):
    """The sample order of one epoch: None (in order) unless ``shuffle``. With a
    ``seed`` it depends only on (seed, epoch): a run resumed at initial_epoch=k sees the
    same batches as an uninterrupted one."""
    if not shuffle:
        return None
    if seed is None:
        return _random.generator().permutation(n)
    return np.random.default_rng((seed, epoch)).permutation(n)


def unpack_batch(batch, where):
    """``(x, y, sample_weight)`` from a batch: ``(x,)``, ``(x, y)``, ``(x, y, w)``, or
    ``x`` alone."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) in (1, 2, 3):
        return (*batch, None, None)[:3]
    raise ValueError(
        f"{where} yielded a tuple of {len(batch)} items; expected (x,), (x, y) or "
        f"(x, y, sample_weight)"
    )


def match_input_rank(x, shape):
    """``x`` with a trailing axis of size 1 added or removed when that is all that keeps
    it from the declared ``shape`` (MNIST's (N, 28, 28) images for an Input((28, 28, 1))),
    as Keras' functional models do; otherwise ``x`` as it is, for the model's own check
    to refuse with the shape it was given."""
    if x.ndim and x.ndim == len(shape) - 1 and shape[-1] == 1:
        adjusted = x[..., None]
    elif x.ndim == len(shape) + 1 and x.shape[-1] == 1:
        adjusted = x[..., 0]
    else:
        return x
    fits = all(d is None or d == n for d, n in zip(shape[1:], adjusted.shape[1:]))
    return adjusted if fits else x


def check_has_samples(data, count, epoch=None):
    """A ValueError unless the batches ``data`` gave held ``count`` > 0 samples: a
    generator or PyDataset of empty batches has no loss or accuracy, as arrays of length 0
    have none (those are refused when their adapter is made; a rank's share of them in a
    distributed evaluation may be empty)."""
    if count or data.kind == "arrays":
        return
    source = "PyDataset" if data.kind == "dataset" else "generator"
    when = "" if epoch is None else f" in epoch {epoch + 1}"
    raise ValueError(
        f"{data.fn}: the {source} yielded only empty batches{when}: the data has no "
        f"samples, so there is nothing to compute on"
    )


def class_weights_to_sample_weights(y, class_weight, num_classes=None):
    """One weight per sample from its class (integer labels, (N, 1) labels rounded, or
    one-hot rows); classes without a weight get 1, as in Keras."""
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"fit: class_weight must be a dict {{class: weight}}, got {class_weight!r}")
    labels = np.asarray(y)
    if labels.ndim > 1:
        labels = labels.argmax(axis=-1) if labels.shape[-1] != 1 else labels[..., 0]
        if num_classes is None and np.asarray(y).shape[-1] > 1:
            num_classes = np.asarray(y).shape[-1]
    labels = np.round(labels).astype(np.int64).reshape(-1)
    for key, w in class_weight.items():
        if not isinstance(key, (int, np.integer)) or isinstance(key, bool) or key < 0:
            raise ValueError(f"fit: class_weight keys must be class indices >= 0, got {key!r}")
        if num_classes is not None and key >= num_classes:
            raise ValueError(
                f"fit: class_weight names class {key}, but the model has {num_classes} "
                f"classes (0 to {num_classes - 1})"
            )
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"fit: class_weight[{key}] must be a finite weight >= 0, got {w!r}")
    table = np.ones(max(max(class_weight) + 1, int(labels.max(initial=0)) + 1), np.float32)
    for key, w in class_weight.items():
        table[key] = w
    return table[labels]


# ---------------------------------------------------------------- arrays


class ArrayDataAdapter:
    """x, y and sample weights as (structures of) arrays of one length, cut into
    batches of ``batch_size``."""

    kind = "arrays"

    def __init__(self, x, y=None, sample_weight=None, *, batch_size=None, fn="fit",
                 needs_y=True, class_weight=None, num_classes=None,
                 prepare_x=None):  # fmt: skip
        self.fn = fn
        self.x = _arrays(x, f"{fn}: x")
        if y is None and needs_y:
            raise TypeError(f"{fn}: y must be an array, got None")
        self.y = None if y is None else _arrays(y, f"{fn}: y")
        self.sample_weight = (
            None if sample_weight is None else _arrays(sample_weight, f"{fn}: sample_weight")
        )
        if class_weight is not None:
            if self.sample_weight is not None:
                raise ValueError(f"{fn}: give sample_weight or class_weight, not both")
            if isinstance(self.y, (list, dict)):
                raise ValueError(f"{fn}: class_weight is for models with one output")
            self.sample_weight = class_weights_to_sample_weights(self.y, class_weight, num_classes)
        lengths = {}
        for name, struct in (("x", self.x), ("y", self.y), ("sample_weight", self.sample_weight)):
            for leaf in flatten(struct) if struct is not None else []:
                if leaf.ndim == 0:
                    raise ValueError(f"{fn}: {name} must have a batch dimension, got a scalar")
                lengths.setdefault(name, set()).add(len(leaf))
        for name, sizes in lengths.items():
            if len(sizes) > 1:
                raise ValueError(f"{fn}: the arrays of {name} must have the same number of "
                                 f"samples, got {sorted(sizes)}")  # fmt: skip
        counts = {name: sizes.pop() for name, sizes in lengths.items()}
        if len(set(counts.values())) > 1:
            first, *others = counts.items()
            detail = " and ".join(f"{n} has {c}" for n, c in others)
            raise ValueError(f"{fn}: {first[0]} has {first[1]} samples but {detail}")
        all_sizes = set(counts.values())
        self.num_samples = all_sizes.pop()
        if self.num_samples == 0:
            raise ValueError(f"{fn}: x has no samples; there is nothing to compute on")
        self.batch_size = batch_size_arg(batch_size, fn)
        if prepare_x is not None:  # as the model takes it (Trainer._model_x), once
            self.x = prepare_x(self.x)

    def num_batches(self, samples=None):
        return math.ceil((self.num_samples if samples is None else samples) / self.batch_size)

    def _take(self, struct, idx):
        if struct is None:
            return None
        if type(struct) is np.ndarray:
            return struct[idx]
        return pack_like(struct, [leaf[idx] for leaf in flatten(struct)])

    def take(self, idx):
        """(x, y, sample_weight) of the samples at ``idx`` (a slice or positions)."""
        return self._take(self.x, idx), self._take(self.y, idx), self._take(self.sample_weight, idx)

    def leaves(self):
        """Every array, x's then y's then the weights'."""
        return [leaf for s in (self.x, self.y, self.sample_weight) if s is not None
                for leaf in flatten(s)]  # fmt: skip

    def split(self, validation_split, fn="fit"):
        """Holds out the last ``validation_split`` of the samples (before any shuffling)
        as an adapter of its own; this one keeps the rest."""
        if isinstance(validation_split, bool) or not isinstance(
            validation_split, (int, float, np.floating)
        ):
            raise TypeError(f"{fn}: validation_split must be a number, got {validation_split!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"{fn}: validation_split must be in [0, 1), got {validation_split}")
        if not validation_split:
            return None
        split = int(self.num_samples * (1 - validation_split))
        if split == self.num_samples:
            raise ValueError(
                f"{fn}: validation_split={validation_split} of {self.num_samples} samples "
                f"holds out none; use a larger split or give validation_data"
            )
        if split == 0:
            raise ValueError(
                f"{fn}: validation_split={validation_split} of {self.num_samples} samples "
                f"leaves none to train on"
            )
        held = ArrayDataAdapter.__new__(ArrayDataAdapter)
        held.fn, held.batch_size, held.num_samples = (
            self.fn,
            self.batch_size,
            self.num_samples - split,
        )
        tail, head = slice(split, None), slice(None, split)
        held.x, held.y, held.sample_weight = (self._take(s, tail) for s in
                                              (self.x, self.y, self.sample_weight))  # fmt: skip
        self.x, self.y, self.sample_weight = (self._take(s, head) for s in
                                              (self.x, self.y, self.sample_weight))  # fmt: skip
        self.num_samples = split
        return held

    def batches(self, order=None, count=None):
        """(x, y, w) batches in ``order`` (positions; None: in order), the first
        ``count`` batches (default: all)."""
        n = self.num_samples if order is None else len(order)
        count = self.num_batches(n) if count is None else count
        for step in range(count):
            sl = slice(step * self.batch_size, (step + 1) * self.batch_size)
            idx = sl if order is None else order[sl]
            yield (
                self._take(self.x, idx),
                self._take(self.y, idx),
                self._take(self.sample_weight, idx),
            )

    def parts(self, lo, hi):
        """An adapter over samples [lo, hi) (a distributed evaluation's share)."""
        part = ArrayDataAdapter.__new__(ArrayDataAdapter)
        part.fn, part.batch_size, part.num_samples = self.fn, self.batch_size, hi - lo
        part.x, part.y, part.sample_weight = (self._take(s, slice(lo, hi)) for s in
                                              (self.x, self.y, self.sample_weight))  # fmt: skip
        return part


# ---------------------------------------------------------------- generators


class GeneratorDataAdapter:
    """A Python generator or iterator of batches. An epoch is ``steps`` batches taken
    from where the previous epoch stopped, or the rest of the iterator.

    With ``replay`` (fit's validation data, read more than once) the batches of the
    first pass are kept, and a pass that finds the generator exhausted reads them again,
    with a warning. Keras, too, validates every later epoch on batches it kept rather
    than failing the fit, but keeps only the first two: from three batches on, its later
    epochs see fewer than its first; here every epoch sees the same ones."""

    kind = "generator"

    def __init__(self, iterator, steps=None, fn="fit", needs_y=True, prepare_x=None):
        self.fn, self.steps, self.needs_y, self.prepare_x = fn, steps, needs_y, prepare_x
        self._it = iter(iterator)
        self.exhausted = False
        self.replay = False
        self._first_pass = None  # the batches kept for replay

    def num_batches(self, samples=None):
        return self.steps

    def batches(self, order=None, count=None):
        where = f"{self.fn}: the generator"
        taken = 0
        limit = count if count is not None else self.steps
        keep = [] if self.replay and self._first_pass is None else None
        while limit is None or taken < limit:
            try:
                batch = next(self._it)
            except StopIteration:
                self.exhausted = True
                if taken == 0 and self._first_pass:
                    yield from self._replayed(limit)
                elif taken == 0:
                    raise ValueError(
                        f"{self.fn}: the generator is exhausted: it yielded no batch for "
                        f"this epoch (give steps_per_epoch so epochs share it, or a "
                        f"generator that loops)"
                    ) from None
                break
            taken += 1
            checked = _checked_batch(batch, where, self.needs_y, self.prepare_x)
            if keep is not None:
                keep.append(checked)
            yield checked
        if keep is not None:
            self._first_pass = keep

    def _replayed(self, limit):
        kept = self._first_pass[:limit]
        warnings.warn(
            f"{self.fn}: the generator ran out of batches; this epoch validates again on "
            f"the {len(kept)} its first pass gave (a generator that loops, with "
            f"validation_steps, or a PyDataset gives every epoch batches of its own)",
            RuntimeWarning,
            stacklevel=2,
        )
        yield from kept


class PyDatasetAdapter:
    """A :class:`dlcore.utils.PyDataset`: ``len(ds)`` batches an epoch (or ``steps``),
    ``ds[i]`` each, in shuffled order with ``shuffle``; ``on_epoch_end`` after each."""

    kind = "dataset"

    def __init__(self, dataset, steps=None, shuffle=False, fn="fit", needs_y=True,
                 prepare_x=None):  # fmt: skip
        self.fn, self.dataset, self.shuffle, self.needs_y = fn, dataset, shuffle, needs_y
        self.prepare_x = prepare_x
        n = len(dataset)
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{fn}: the PyDataset has {n!r} batches; it needs at least one")
        self.length = int(n)
        self.steps = self.length if steps is None else min(steps, self.length)

    def num_batches(self, samples=None):
        return self.steps

    def batches(self, order=None, count=None):
        indices = list(range(self.length))
        if self.shuffle:
            _random.generator().shuffle(indices)
        where = f"{self.fn}: the PyDataset"
        for i in indices[: self.steps if count is None else count]:
            yield _checked_batch(self.dataset[i], f"{where}[{i}]", self.needs_y, self.prepare_x)
        on_epoch_end = getattr(self.dataset, "on_epoch_end", None)
        if on_epoch_end is not None:
            on_epoch_end()


def _checked_batch(batch, where, needs_y, prepare_x=None):
    x, y, w = unpack_batch(batch, where)
    if x is None or (needs_y and y is None):
        raise ValueError(
            f"{where} yielded {type(batch).__name__}"
            + (f" of {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
            + "; expected (x, y) or (x, y, sample_weight)"
        )
    x = _arrays(x, f"{where}: x")
    y = None if y is None else _arrays(y, f"{where}: y")
    w = None if w is None else _arrays(w, f"{where}: sample_weight")
    n = {len(leaf) for leaf in flatten([x, y, w]) if leaf is not None}
    if len(n) != 1:
        raise ValueError(f"{where} yielded x, y and sample_weight of different lengths {sorted(n)}")
    return (x if prepare_x is None else prepare_x(x)), y, w


def prefetch(iterable, depth=2):
    """Yields what ``iterable`` yields, computed ``depth`` items ahead in a background
    thread; an exception there is raised here, and stopping early stops the thread."""
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as e:  # handed to the consumer
            q.put((False, e))

    thread = threading.Thread(target=produce, name="dlcore-data", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _is_pydataset(x):
    return (
        hasattr(x, "__getitem__")
        and hasattr(x, "__len__")
        and not isinstance(x, (np.ndarray, list, tuple, dict, Tensor, str))
    )


def get_data_adapter(x, y=None, sample_weight=None, *, batch_size=None, steps=None,
                     shuffle=False, class_weight=None, fn="fit", needs_y=True,
                     num_classes=None, steps_name="steps_per_epoch",
                     prepare_x=None):  # fmt: skip
    """The adapter for what ``x`` is. ``prepare_x`` turns a batch's x into what the
    model takes (once for arrays, batch by batch for a generator or PyDataset)."""
    steps = _steps_arg(steps, steps_name, fn)
    if (
        _is_pydataset(x)
        or hasattr(x, "__next__")
        or (
            hasattr(x, "__iter__")
            and not isinstance(x, (np.ndarray, list, tuple, dict, Tensor, str))
        )
    ):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(f"{fn}: {name} must be None when x is a generator or a "
                                 f"PyDataset: it yields (x, y[, sample_weight]) itself")  # fmt: skip
        if class_weight is not None:
            raise ValueError(f"{fn}: class_weight is for array data; a generator or "
                             f"PyDataset can yield (x, y, sample_weight) instead")  # fmt: skip
        if batch_size is not None:
            raise ValueError(f"{fn}: batch_size must be None when x is a generator or a "
                             f"PyDataset: it makes its own batches")  # fmt: skip
        if _is_pydataset(x):
            return PyDatasetAdapter(x, steps, shuffle, fn, needs_y, prepare_x)
        return GeneratorDataAdapter(x, steps, fn, needs_y, prepare_x)
    adapter = ArrayDataAdapter(x, y, sample_weight, batch_size=batch_size, fn=fn,
                               needs_y=needs_y, class_weight=class_weight,
                               num_classes=num_classes, prepare_x=prepare_x)  # fmt: skip
    adapter.steps = steps
    return adapter
