"""Turns what ``fit``, ``evaluate`` and ``predict`` are given into batches, after one
validation of the arguments with messages that name them.

Today's form: NumPy arrays (or anything ``numpy.asarray`` takes, Tensors included),
one for x and one for y.
"""

from __future__ import annotations

import math

import numpy as np

from dlcore import random as _random
from dlcore.tensor import Tensor

__all__ = ["ArrayAdapter", "batch_size_arg", "epoch_order", "to_array"]

DEFAULT_BATCH_SIZE = 32


def to_array(x, what):
    """``x`` as a NumPy array: Tensors give their data; None is an error naming ``what``."""
    if isinstance(x, Tensor):
        return x.data
    if x is None:
        raise TypeError(f"{what} must be an array, got None")
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be an array or nested lists of numbers: {e}") from e


def batch_size_arg(batch_size, fn):
    """None -> 32; otherwise an int >= 1 (Keras' rule), else a ValueError/TypeError."""
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
        raise TypeError(f"{fn}: batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{fn}: batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def epoch_order(n, shuffle, seed, epoch):
    """The sample order of one epoch: None (in order) unless ``shuffle``. With a
    ``seed`` it depends only on (seed, epoch): a run resumed at initial_epoch=k sees the
    same batches as an uninterrupted one."""
    if not shuffle:
        return None
    if seed is None:
        return _random.generator().permutation(n)
    return np.random.default_rng((seed, epoch)).permutation(n)


class ArrayAdapter:
    """x and y as arrays of the same length, cut into batches of ``batch_size``."""

    def __init__(self, x, y=None, *, batch_size=None, fn="fit", needs_y=True):
        self.x = to_array(x, f"{fn}: x")
        self.y = None if y is None and not needs_y else to_array(y, f"{fn}: y")
        if self.x.ndim == 0:
            raise ValueError(f"{fn}: x must have a batch dimension, got a scalar")
        if self.y is not None:
            if self.y.ndim == 0:
                raise ValueError(f"{fn}: y must have a batch dimension, got a scalar")
            if len(self.x) != len(self.y):
                raise ValueError(f"{fn}: x has {len(self.x)} samples but y has {len(self.y)}")
        if len(self.x) == 0:
            raise ValueError(f"{fn}: x has no samples; there is nothing to compute on")
        self.batch_size = batch_size_arg(batch_size, fn)

    @property
    def num_samples(self):
        return len(self.x)

    def num_batches(self, samples=None):
        return math.ceil((self.num_samples if samples is None else samples) / self.batch_size)

    def split(self, validation_split, fn="fit"):
        """Holds out the last ``validation_split`` of the samples (before any shuffling)
        as (x_val, y_val); this adapter keeps the rest."""
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
        held = (self.x[split:], self.y[split:])
        self.x, self.y = self.x[:split], self.y[:split]
        return held

    def batches(self, order=None, count=None):
        """(x, y) batches in ``order`` (positions; None: in order), the first ``count``
        batches (default: all)."""
        n = self.num_samples if order is None else len(order)
        count = self.num_batches(n) if count is None else count
        for step in range(count):
            sl = slice(step * self.batch_size, (step + 1) * self.batch_size)
            idx = sl if order is None else order[sl]
            yield self.x[idx], None if self.y is None else self.y[idx]
