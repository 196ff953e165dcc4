"""Per-kernel profiling: calls, time and FLOPs of every ``dlcore.ops`` kernel.

    with dlcore.profile() as prof:
        model.fit(x, y, epochs=1)
    # the table is printed when the block ends; prof.table() returns it

or for a whole program: ``DLCORE_PROFILE=1 python train.py`` prints the table at exit.

Zero cost when off: turning profiling on swaps timing wrappers into the ``dlcore.ops``
namespace, turning it off puts the raw kernels back, and dlcore always calls kernels
as ``ops.<name>``. (A function imported by name before profiling started,
``from dlcore.ops import gemm``, is not seen.)
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np

from dlcore import ops

__all__ = ["profile", "Profile"]


def _prod(shape):
    return float(math.prod(shape))


def _gemm_flops(args, kwargs, out):
    a = np.shape(args[0])
    trans_a = kwargs.get("trans_a", False)
    K = a[0] if trans_a else a[1]
    return 2.0 * _prod(np.shape(out)) * K


def _gemm_backward_flops(args, kwargs, out):
    dc, a = np.shape(args[0]), np.shape(args[1])
    K = a[0] if kwargs.get("trans_a", False) else a[1]
    return 2.0 * _prod(dc) * K * sum(g is not None for g in out)


def _conv_forward_flops(args, kwargs, out):
    kernel = np.shape(args[1])
    return 2.0 * _prod(np.shape(out)) * _prod(kernel[:3])


def _conv_grads_flops(multiply_adds, dy, out):
    """A conv backward's FLOPs: one product of the forward's size per weight or input
    gradient computed, and a sum over dy for dbias."""
    dx, dk, db = out
    return 2.0 * multiply_adds * ((dx is not None) + (dk is not None)) + (
        _prod(dy) if db is not None else 0
    )


def _conv_backward_flops(args, kwargs, out):
    dy, kernel = np.shape(args[0]), np.shape(args[2])
    return _conv_grads_flops(_prod(dy) * _prod(kernel[:3]), dy, out)


# A transposed convolution multiplies each element of x by a (KH, KW, OC) slice of the
# kernel (y's size is not what counts: its padding is cropped).
def _conv_transpose_forward_flops(args, kwargs, out):
    x, kernel = np.shape(args[0]), np.shape(args[1])
    return 2.0 * _prod(x) * _prod(kernel[:3])


def _conv_transpose_backward_flops(args, kwargs, out):
    dy, x, kernel = np.shape(args[0]), np.shape(args[1]), np.shape(args[2])
    return _conv_grads_flops(_prod(x) * _prod(kernel[:3]), dy, out)


# A depthwise convolution multiplies each element of y by its KH * KW taps alone.
def _depthwise_forward_flops(args, kwargs, out):
    kernel = np.shape(args[1])
    return 2.0 * _prod(np.shape(out)) * _prod(kernel[:2])


def _depthwise_backward_flops(args, kwargs, out):
    dy, kernel = np.shape(args[0]), np.shape(args[2])
    return _conv_grads_flops(_prod(dy) * _prod(kernel[:2]), dy, out)


def _lstm_forward_flops(args, kwargs, out):
    x, rk = np.shape(args[0]), np.shape(args[4])
    N, T, I = x
    U4 = rk[1]
    return 2.0 * N * T * U4 * (I + rk[0])


def _lstm_cell_forward_flops(args, kwargs, out):
    x, rk = np.shape(args[0]), np.shape(args[4])
    return 2.0 * x[0] * rk[1] * (x[1] + rk[0])


def _lstm_backward_flops(args, kwargs, out):
    dx, dkernel = out[0], out[3]
    N, T, I = np.shape(dx)
    U4 = np.shape(dkernel)[1]
    return 4.0 * N * T * U4 * (I + U4 // 4)


def _lstm_cell_backward_flops(args, kwargs, out):
    dx, dkernel = out[0], out[3]
    N, I = np.shape(dx)
    U4 = np.shape(dkernel)[1]
    return 4.0 * N * U4 * (I + U4 // 4)


def _recurrent_forward_flops(args, kwargs, out):
    """A GRU's or SimpleRNN's forward (x, h0, kernel, recurrent_kernel, ...): 2 N T G (I + U)
    for G gate columns, as the LSTM's."""
    x = np.shape(args[0] if args else kwargs["x"])
    rk = np.shape(args[3] if len(args) > 3 else kwargs["recurrent_kernel"])
    N, T, I = x
    return 2.0 * N * T * rk[1] * (I + rk[0])


def _recurrent_backward_flops(gates):
    """A GRU's (3 gates) or SimpleRNN's (1) backward, from (dx, dh0, dkernel, ...)."""

    def flops(args, kwargs, out):
        N, T, I = np.shape(out[0])
        G = np.shape(out[2])[1]
        return 4.0 * N * T * G * (I + G // gates)

    return flops


# FLOPs of one call from its arguments and result. Every kernel that ops.__all__ lists
# is either here or in NOT_COUNTED (tests/test_package.py checks both against it).
FLOPS = {
    "gemm": _gemm_flops,
    "gemm_backward": _gemm_backward_flops,
    "conv2d_forward": _conv_forward_flops,
    "conv2d_backward": _conv_backward_flops,
    "conv2d_transpose_forward": _conv_transpose_forward_flops,
    "conv2d_transpose_backward": _conv_transpose_backward_flops,
    "depthwise_conv2d_forward": _depthwise_forward_flops,
    "depthwise_conv2d_backward": _depthwise_backward_flops,
    "lstm_forward": _lstm_forward_flops,
    "lstm_backward": _lstm_backward_flops,
    "lstm_cell_forward": _lstm_cell_forward_flops,
    "lstm_cell_backward": _lstm_cell_backward_flops,
    "gru_forward": _recurrent_forward_flops,
    "gru_backward": _recurrent_backward_flops(3),
    "simple_rnn_forward": _recurrent_forward_flops,
    "simple_rnn_backward": _recurrent_backward_flops(1),
}
# Kernels timed but counting no FLOPs: memory-bound, no multiply-adds worth a rate.
NOT_COUNTED = {
    "maxpool2d_forward",
    "maxpool2d_backward",
    "relu",
    "relu_backward",
    "adam_update",
    "sgd_update",
    "rmsprop_update",
    "batch_norm_forward",
    "batch_norm_inference",
    "batch_norm_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "embedding_forward",
    "embedding_backward",
    "activation_forward",
    "activation_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "global_avgpool_forward",
    "global_avgpool_backward",
    "softmax_forward",
    "softmax_backward",
    "sparse_softmax_cross_entropy",
    "softmax_cross_entropy",
}
# Names in ops.__all__ that are not kernels: thread control, queries, the caches' types
# (classes are recognised as such).
NOT_KERNELS = {
    "get_num_threads",
    "set_num_threads",
    "peak_gflops",
    "conv2d_plan",
    "activation_backward_needs",
    "array_cache_info",
    "array_cache_release",
    "configure_array_cache",
}


class Profile:
    """Counters per kernel: calls, seconds, FLOPs; and the wall time profiled."""

    def __init__(self):
        self.stats = {}
        self.wall = 0.0
        self._lock = threading.Lock()

    def record(self, name, seconds, flops):
        with self._lock:
            s = self.stats.setdefault(name, [0, 0.0, 0.0])
            s[0] += 1
            s[1] += seconds
            s[2] += flops

    def table(self, sort_by="time"):
        """The table of kernels, slowest first (or sort_by='calls' / 'flops')."""
        key = {"time": 1, "calls": 0, "flops": 2}[sort_by]
        rows = sorted(self.stats.items(), key=lambda kv: -kv[1][key])
        total = sum(s[1] for s in self.stats.values())
        head = (
            f"{'kernel':<22}{'calls':>8}{'total ms':>12}{'% kernels':>11}{'mean us':>11}"
            f"{'GFLOP':>10}{'GFLOP/s':>10}"
        )
        lines = [head, "-" * len(head)]
        for name, (calls, seconds, flops) in rows:
            rate = f"{flops / seconds / 1e9:>10.1f}" if flops and seconds else f"{'-':>10}"
            lines.append(
                f"{name:<22}{calls:>8}{seconds * 1e3:>12.2f}"
                f"{100 * seconds / total if total else 0:>10.1f}%"
                f"{seconds / calls * 1e6:>11.1f}"
                f"{flops / 1e9 if flops else 0:>10.2f}{rate}"
            )
        lines.append("-" * len(head))
        share = f" ({100 * total / self.wall:.0f}% of {self.wall:.3f} s wall)" if self.wall else ""
        lines.append(f"kernels: {total:.3f} s{share}; threads: {ops.get_num_threads()}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


_active = []  # the Profiles collecting now (profiles nest)
_raw = {}  # name -> the kernel as dlcore.ops exports it


def _wrap(name, fn):
    count = FLOPS.get(name)

    @functools.wraps(fn)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - start
        flops = count(args, kwargs, out) if count else 0.0
        for p in _active:
            p.record(name, seconds, flops)
        return out

    return timed


def _install():
    for name in ops.__all__:
        if name in NOT_KERNELS or isinstance(getattr(ops, name), type):
            continue
        _raw[name] = getattr(ops, name)
        setattr(ops, name, _wrap(name, _raw[name]))


def _uninstall():
    for name, fn in _raw.items():
        setattr(ops, name, fn)
    _raw.clear()


@contextmanager
def profile(print_table=True, file=None):
    """Profiles every dlcore kernel called inside the block; yields the Profile.
    Prints its table at the end of the block unless print_table is False."""
    prof = Profile()
    if not _active:
        _install()
    _active.append(prof)
    start = time.perf_counter()
    try:
        yield prof
    finally:
        prof.wall = time.perf_counter() - start
        _active.remove(prof)
        if not _active:
            _uninstall()
        if print_table:
            print(prof.table(), file=file or sys.stdout)


def _profile_whole_process():
    manager = profile(print_table=True, file=sys.stderr)
    manager.__enter__()
    atexit.register(manager.__exit__, None, None, None)


if os.environ.get("DLCORE_PROFILE", "").lower() not in ("", "0", "false", "no"):
    _profile_whole_process()
