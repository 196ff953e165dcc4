"""Embedding lookup: rows of a table gathered by integer indices, on the C++ kernels
(a gather forward, a deterministic scatter-add backward into a dense table gradient)."""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore.tensor import Tensor, as_tensor, record

__all__ = ["embedding", "embedding_indices"]


def embedding_indices(indices, fn="embedding"):
    """``indices`` as an integer array. Integers pass unchanged; floats holding whole
    numbers become int64 (Keras casts them too); a fraction, a NaN or a bool is an
    error naming the first such value."""
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.dtype.kind in "iu":
        return idx
    if idx.dtype.kind == "f":
        bad = ~np.isfinite(idx) | (idx != np.trunc(idx))
        if bad.any():
            pos = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{fn}: indices must be whole numbers; got {idx[pos].item()!r} at position {pos}"
            )
        return idx.astype(np.int64)
    raise TypeError(f"{fn}: indices must be integers, got an array of dtype {idx.dtype}")


def embedding(indices, table):
    """``table[indices]``: indices (...) of integers in [0, input_dim), table (input_dim,
    output_dim) -> (..., output_dim). An index out of range is a ValueError naming it and
    its position. The gradient reaches the table only (indices are not differentiable)."""
    idx = embedding_indices(indices)
    table = as_tensor(table)
    if table.ndim != 2:
        raise ValueError(
            f"embedding: table must be 2-D (input_dim, output_dim), got shape {table.shape}"
        )
    out = ops.embedding_forward(idx, table.data)
    input_dim = table.shape[0]
    return record(
        out, (table,), lambda g: (ops.embedding_backward(g[0], idx, input_dim),), "embedding"
    )
