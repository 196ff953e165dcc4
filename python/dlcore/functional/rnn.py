"""Recurrent sequences as one fused kernel each (no Python loop over time steps): LSTM,
GRU and SimpleRNN, Keras' weight layouts, masks handled inside the kernels."""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore.tensor import Tensor, as_tensor, is_grad_enabled, record

__all__ = ["gru", "lstm", "simple_rnn"]


def _step_mask(mask):
    """A mask as the kernels take it: an (N, T) array (True: the step runs), or None."""
    if mask is None:
        return None
    return np.asarray(mask.data if isinstance(mask, Tensor) else mask)


def _inference(args):
    """Whether no gradient is wanted of any of ``args`` (predict, no_grad, constant
    inputs): then a sequence runs its kernel's inference forward, which keeps nothing."""
    return not (is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args))


def _arrays(args):
    return (a.data if isinstance(a, Tensor) else a for a in args)


def _sequence(name, forward, backward, args, **options):
    """Runs ``forward`` on the arrays of ``args`` (tensors, arrays or None, in the
    kernel's argument order) and records its backward: the kernels return one gradient
    per argument, in the same order, from the incoming gradients of every output."""
    tensors = [None if v is None else as_tensor(v) for v in args]
    *outputs, cache = forward(*(None if t is None else t.data for t in tensors), **options)
    present = [i for i, t in enumerate(tensors) if t is not None]

    def backward_fn(g):
        grads = backward(*g, cache)
        return tuple(grads[i] for i in present)

    return record(tuple(outputs), tuple(tensors[i] for i in present), backward_fn, name)


def lstm(x, h0, c0, kernel, recurrent_kernel, bias, mask=None):
    """A whole LSTM sequence (Keras layout and gate order i, f, c, o).

    x (N, T, I); h0, c0 (N, U) or None for zeros; kernel (I, 4U); recurrent_kernel
    (U, 4U); bias (4U,); mask (N, T) or None: a masked step carries h and c through and
    outputs the carried h. Returns (y (N, T, U), h_n, c_n).
    """
    args = (x, h0, c0, kernel, recurrent_kernel, bias)
    if _inference(args):  # nothing to keep for a backward: the kernel writes no gates or cells
        y, h_n, c_n, _ = ops.lstm_forward(*_arrays(args), mask=_step_mask(mask), keep_cache=False)
        return Tensor._of(y), Tensor._of(h_n), Tensor._of(c_n)
    return _sequence("lstm", ops.lstm_forward, ops.lstm_backward, args, mask=_step_mask(mask))


def gru(x, h0, kernel, recurrent_kernel, bias, reset_after=True, mask=None):
    """A whole GRU sequence (Keras layout and gate order z, r, h).

    x (N, T, I); h0 (N, U) or None for zeros; kernel (I, 3U); recurrent_kernel (U, 3U);
    bias (2, 3U) with ``reset_after`` (Keras 3's default and torch.nn.GRU's
    formulation), (3U,) without; mask (N, T) or None as for :func:`lstm`. Returns
    (y (N, T, U), h_n).
    """
    args = (x, h0, kernel, recurrent_kernel, bias)
    options = dict(reset_after=bool(reset_after), mask=_step_mask(mask))
    if _inference(args):  # nothing to keep for a backward: the kernel writes no gates
        y, h_n, _ = ops.gru_forward(*_arrays(args), **options, keep_cache=False)
        return Tensor._of(y), Tensor._of(h_n)
    return _sequence("gru", ops.gru_forward, ops.gru_backward, args, **options)


def simple_rnn(x, h0, kernel, recurrent_kernel, bias, activation="tanh", mask=None):
    """A whole SimpleRNN sequence: h_t = activation(x_t kernel + h_{t-1} recurrent_kernel
    + bias), activation 'tanh' or 'relu'.

    x (N, T, I); h0 (N, U) or None for zeros; kernel (I, U); recurrent_kernel (U, U);
    bias (U,); mask (N, T) or None as for :func:`lstm`. Returns (y (N, T, U), h_n).
    """
    args = (x, h0, kernel, recurrent_kernel, bias)
    options = dict(activation=activation, mask=_step_mask(mask))
    return _sequence("simple_rnn", ops.simple_rnn_forward, ops.simple_rnn_backward, args, **options)
