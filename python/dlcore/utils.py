"""Small helpers with Keras' names (``keras.utils``), and Keras' custom-object helpers
(``custom_object_scope``, ``get_custom_objects``, ...: :mod:`dlcore.registry`), which
Keras also has here."""

import numpy as np

from dlcore.random import set_random_seed
from dlcore.registry import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

__all__ = [
    "CustomObjectScope",
    "PyDataset",
    "Sequence",
    "custom_object_scope",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "normalize",
    "pad_sequences",
    "register_keras_serializable",
    "set_random_seed",
    "to_categorical",
]


def to_categorical(y, num_classes=None, dtype="float32"):
    """Integer class labels (N,) -> one-hot rows (N, num_classes)."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.size and (y.min() < 0 or np.any(y != np.round(y))):
        raise ValueError("to_categorical: labels must be non-negative integers")
    y = y.astype(np.int64)
    k = int(y.max()) + 1 if num_classes is None else num_classes
    if y.size and y.max() >= k:
        raise ValueError(f"to_categorical: label {y.max()} does not fit num_classes={k}")
    out = np.zeros((*y.shape, k), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def normalize(x, axis=-1, order=2):
    """x divided by its ``order``-norm along ``axis`` (zero vectors stay zero), as
    ``keras.utils.normalize``."""
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"normalize: x must hold numbers, got dtype {x.dtype}")
    if not isinstance(order, (int, float)) or order <= 0:
        raise ValueError(f"normalize: order must be a positive number, got {order!r}")
    x = x.astype(np.result_type(x.dtype, np.float32), copy=False)
    norm = np.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def pad_sequences(
    sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0
):
    """Sequences of different lengths -> one array (N, maxlen, ...), as
    ``keras.utils.pad_sequences``: each padded with ``value`` before ('pre') or after
    ('post') its items, and one longer than ``maxlen`` cut at its start ('pre') or end
    ('post'). ``maxlen`` defaults to the longest sequence."""
    for arg, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise ValueError(f"pad_sequences: {arg} must be 'pre' or 'post', got {choice!r}")
    if isinstance(sequences, np.ndarray) and sequences.dtype != object and sequences.ndim >= 2:
        sequences = list(sequences)
    try:
        sequences = [np.asarray(s) for s in sequences]
    except TypeError:
        raise TypeError(
            f"pad_sequences: sequences must be a list of sequences, got {type(sequences).__name__}"
        ) from None
    for i, s in enumerate(sequences):
        if s.ndim == 0:
            raise ValueError(f"pad_sequences: sequences[{i}] is a scalar ({s!r}), not a sequence")
    if maxlen is None:
        maxlen = max((len(s) for s in sequences), default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be an integer >= 0 or None, got {maxlen!r}")
    sample_shape = next((s.shape[1:] for s in sequences if len(s)), ())
    out = np.full((len(sequences), int(maxlen), *sample_shape), value, dtype=dtype)
    for i, s in enumerate(sequences):
        if not len(s) or not maxlen:
            continue
        kept = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if kept.shape[1:] != sample_shape:
            raise ValueError(
                f"pad_sequences: sequences[{i}] has items of shape {kept.shape[1:]}, expected "
                f"{sample_shape} as the first non-empty sequence's"
            )
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, maxlen - len(kept) :] = kept
    return out


class PyDataset:
    """Keras 3's base class for a dataset of batches: override ``__len__`` (batches per
    epoch) and ``__getitem__(index)`` (a batch ``(x, y)`` or ``(x, y, sample_weight)``),
    and optionally ``on_epoch_end``. ``fit``, ``evaluate`` and ``predict`` take one as
    ``x``; batches are loaded in a background thread while the model computes.

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are accepted for
    Keras' signature; dlcore loads with one background thread.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__ (batches per epoch)")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def on_epoch_end(self):
        """Called after every epoch (e.g. to reshuffle)."""

    @property
    def num_batches(self):
        return len(self)


Sequence = PyDataset  # Keras 2's name
