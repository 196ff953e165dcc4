"""Recurrent sequences as one fused kernel each (no Python loop over time steps)."""

from __future__ import annotations

from dlcore import ops
from dlcore.tensor import as_tensor, record

__all__ = ["lstm"]


def lstm(x, h0, c0, kernel, recurrent_kernel, bias):
    """A whole LSTM sequence (Keras layout and gate order i, f, c, o).

    x (N, T, I); h0, c0 (N, U) or None for zeros; kernel (I, 4U);
    recurrent_kernel (U, 4U); bias (4U,). Returns (y (N, T, U), h_n, c_n).
    """
    given = [
        ("x", x),
        ("h0", h0),
        ("c0", c0),
        ("kernel", kernel),
        ("recurrent_kernel", recurrent_kernel),
        ("bias", bias),
    ]
    tensors = {name: None if v is None else as_tensor(v) for name, v in given}
    data = {name: None if t is None else t.data for name, t in tensors.items()}
    y, h_n, c_n, cache = ops.lstm_forward(
        data["x"], data["h0"], data["c0"], data["kernel"], data["recurrent_kernel"], data["bias"]
    )
    present = [name for name, t in tensors.items() if t is not None]
    order = ["x", "h0", "c0", "kernel", "recurrent_kernel", "bias"]

    def backward(g):
        grads = dict(zip(order, ops.lstm_backward(g[0], g[1], g[2], cache)))
        return tuple(grads[name] for name in present)

    return record((y, h_n, c_n), tuple(tensors[n] for n in present), backward, "lstm")
