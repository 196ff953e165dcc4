"""Runs fuzz cases for tests/test_fuzz.py, in the test process or in a child process.

A case is plain data (tuples, dicts, ints, strings) so that it pickles and prints: an
operation name from OPERATIONS, its positional and keyword arguments, where an
``ArraySpec`` stands for an array built here (a layout test_fuzz.py asks for cannot
survive pickling, so the array is made on the side that calls the kernel). The outcome
of a case is ``("ok", result)`` with every array in the result copied out, or
``("raised", exception type name, message)``.

As a script: reads a pickled list of cases from stdin, writes "case i" to stderr before
running case i (so that a crash names its case) and a pickled list of outcomes to
stdout. Address space is capped so that an absurd allocation fails with MemoryError
instead of swapping the machine.
"""

import functools
import pickle
import resource
import sys
from typing import NamedTuple

import numpy as np

from dlcore import layers, ops


class ArraySpec(NamedTuple):
    shape: tuple
    dtype: str  # any numpy dtype string: 'float32', '>f8', 'complex64', 'O', 'U3', ...
    layout: str = "C"  # see LAYOUTS
    seed: int = 0
    special: str = ""  # "", "nan", "inf" or "big": values that test propagation
    low: float = -2.0  # uniform values in [low, high)
    high: float = 2.0


# Each layout holds the same values in a different memory arrangement.
LAYOUTS = ("C", "F", "strided", "reversed", "unaligned", "readonly", "broadcast")


def _values(spec):
    rng = np.random.default_rng(spec.seed)
    v = rng.uniform(spec.low, spec.high, spec.shape)
    if spec.special and v.size:
        fill = {"nan": np.nan, "inf": np.inf, "big": 1e30}[spec.special]
        v.reshape(-1)[rng.integers(0, v.size, max(1, v.size // 4))] = fill
    return v


def _typed(values, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(np.nan_to_num(np.round(values), nan=0), max(info.min, -100), 100)
        if dtype.kind == "u":
            values = np.abs(values)
    if dtype.kind in "OUS":
        return values.astype(object).astype(dtype)
    with np.errstate(over="ignore"):  # 1e30 as float16 is inf, as meant
        return values.astype(dtype)


def make_array(spec):
    """The array spec describes; its values are the same for every layout."""
    a = _typed(_values(spec), spec.dtype)
    if spec.layout == "C" or a.ndim == 0:
        return np.ascontiguousarray(a)
    if spec.layout == "F":
        return np.asfortranarray(a)
    if spec.layout == "strided":  # every other element of a twice-as-long last axis
        big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    if spec.layout == "reversed":  # negative strides on every axis
        flipped = np.ascontiguousarray(a[(slice(None, None, -1),) * a.ndim])
        return flipped[(slice(None, None, -1),) * a.ndim]
    if spec.layout == "unaligned":
        if a.dtype.kind in "OUS" or a.dtype.itemsize == 1:
            return a
        buf = bytearray(a.nbytes + 1)
        out = np.frombuffer(buf, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
        out[...] = a
        return out
    if spec.layout == "readonly":
        a.flags.writeable = False
        return a
    if spec.layout == "broadcast":  # zero strides where an axis has length 1 in the source
        first = a[(slice(None),) * (a.ndim - 1) + (slice(0, 1),)]
        if a.shape[-1] and np.all(a == first):
            return np.broadcast_to(first, a.shape)
        return a
    raise ValueError(f"unknown layout {spec.layout!r}")


def _build(arg):
    if isinstance(arg, ArraySpec):
        return make_array(arg)
    if isinstance(arg, tuple):
        return tuple(_build(a) for a in arg)
    if isinstance(arg, list):
        return [_build(a) for a in arg]
    if isinstance(arg, dict):
        return {k: _build(v) for k, v in arg.items()}
    return arg


def _lstm_round_trip(fn_forward, fn_backward, n_grads):  # the GRU's and SimpleRNN's too
    def run(*args, grads=(None,) * 3, **kwargs):
        out = fn_forward(*args, **kwargs)
        return out[:-1], fn_backward(*grads[:n_grads], out[-1])

    return run


def _round_trip_and_inference(fn_forward, fn_backward, n_grads):
    """A sequence's round trip, then its inference forward (keep_cache=False), which must
    give the round trip's forward bit for bit."""

    def run(*args, grads=(None,) * 3, **kwargs):
        forward, backward = _lstm_round_trip(fn_forward, fn_backward, n_grads)(
            *args, grads=grads, **kwargs
        )
        return forward, backward, fn_forward(*args, **kwargs, keep_cache=False)[:-1]

    return run


def _maxpool_round_trip(x, dy=None, **kwargs):
    y, argmax = ops.maxpool2d_forward(x, **kwargs)
    dx = ops.maxpool2d_backward(y if dy is None else dy, argmax, x.shape)
    return y, argmax, dx, ops.maxpool2d_forward(x, **kwargs, need_argmax=False)[0]


def _avgpool_round_trip(x, dy, **window):
    y = ops.avgpool2d_forward(x, **window)
    return y, ops.avgpool2d_backward(dy, x.shape, **window)


def _global_avgpool_round_trip(x, dy, mask=None):
    y = ops.global_avgpool_forward(x, mask)
    return y, ops.global_avgpool_backward(dy, np.shape(x), mask)


def _norm_round_trip(kind):
    """Forward, then backward with dy from the forward's statistics (and for batch norm
    the inference forward with them): every output."""
    forward, backward = getattr(ops, f"{kind}_forward"), getattr(ops, f"{kind}_backward")

    def run(x, gamma, beta, dy, epsilon=1e-3, training=None):
        out = forward(x, gamma, beta, epsilon=epsilon)
        mean, inv_std = out[1], out[-1]
        flags = {} if training is None else {"training": training}
        grads = backward(dy, x, mean, inv_std, gamma, **flags)
        if kind == "batch_norm":
            out = (*out, ops.batch_norm_inference(x, mean, out[2], gamma, beta, epsilon=epsilon))
        return tuple(out), grads

    return run


def _embedding_round_trip(idx, table, dy):
    y = ops.embedding_forward(idx, table)
    return y, ops.embedding_backward(dy, idx, np.shape(table)[0])


def _activation_round_trip(x, dy, kind, params):
    y = ops.activation_forward(x, kind, **params)
    return y, ops.activation_backward(dy, kind, x=x, y=y, **params)


def _softmax_round_trip(x, dy, labels, targets):
    y = ops.softmax_forward(x)
    return (
        y,
        ops.softmax_backward(dy, y),
        ops.sparse_softmax_cross_entropy(x, labels),
        ops.softmax_cross_entropy(x, targets),
    )


def _update(kernel):
    """An in-place update returns the arrays it updated, copied."""

    @functools.wraps(kernel)
    def run(*args, **kwargs):
        result = kernel(*args, **kwargs)
        assert result is None
        arrays = [a for a in (*args, *kwargs.values()) if isinstance(a, np.ndarray)]
        return tuple(a.copy() for a in arrays)

    return run


def _layer(cls):
    def run(x, config):
        layer = cls(**config)
        y = layer(x)
        outs = y if isinstance(y, list) else [y]
        weights = [w.numpy() for w in getattr(layer, "weights", [])]
        return (
            tuple(o.numpy() for o in outs),
            tuple(weights),
            layer.compute_output_shape((None, *np.shape(x)[1:])),
        )

    return run


def _call(case):
    name, args, kwargs = case
    return OPERATIONS[name](*_build(args), **_build(kwargs))


def _with_threads(n, case):
    ops.set_num_threads(n)
    return _call(case)


def _with_array_cache(settings, case):
    ops.configure_array_cache(**settings)
    return _call(case)


OPERATIONS = {
    "gemm": ops.gemm,
    "gemm_backward": ops.gemm_backward,
    "conv2d_forward": ops.conv2d_forward,
    "conv2d_backward": ops.conv2d_backward,
    "conv2d_plan": ops.conv2d_plan,
    "maxpool2d_forward": ops.maxpool2d_forward,
    "maxpool2d_backward": ops.maxpool2d_backward,
    "maxpool2d_round_trip": _maxpool_round_trip,
    "conv2d_transpose_forward": ops.conv2d_transpose_forward,
    "conv2d_transpose_backward": ops.conv2d_transpose_backward,
    "depthwise_conv2d_forward": ops.depthwise_conv2d_forward,
    "depthwise_conv2d_backward": ops.depthwise_conv2d_backward,
    "avgpool2d_round_trip": _avgpool_round_trip,
    "avgpool2d_backward": ops.avgpool2d_backward,
    "global_avgpool_round_trip": _global_avgpool_round_trip,
    "lstm_forward": ops.lstm_forward,
    "lstm_backward": ops.lstm_backward,
    "lstm_round_trip": _round_trip_and_inference(ops.lstm_forward, ops.lstm_backward, 3),
    "lstm_cell_forward": ops.lstm_cell_forward,
    "lstm_cell_backward": ops.lstm_cell_backward,
    "lstm_cell_round_trip": _lstm_round_trip(ops.lstm_cell_forward, ops.lstm_cell_backward, 2),
    "gru_forward": ops.gru_forward,
    "gru_backward": ops.gru_backward,
    "gru_round_trip": _round_trip_and_inference(ops.gru_forward, ops.gru_backward, 2),
    "simple_rnn_forward": ops.simple_rnn_forward,
    "simple_rnn_backward": ops.simple_rnn_backward,
    "simple_rnn_round_trip": _lstm_round_trip(ops.simple_rnn_forward, ops.simple_rnn_backward, 2),
    "relu": ops.relu,
    "relu_backward": ops.relu_backward,
    "batch_norm_round_trip": _norm_round_trip("batch_norm"),
    "layer_norm_round_trip": _norm_round_trip("layer_norm"),
    "embedding_round_trip": _embedding_round_trip,
    "embedding_backward": ops.embedding_backward,
    "activation_round_trip": _activation_round_trip,
    "softmax_round_trip": _softmax_round_trip,
    "adam_update": _update(ops.adam_update),
    "sgd_update": _update(ops.sgd_update),
    "rmsprop_update": _update(ops.rmsprop_update),
    "set_num_threads": ops.set_num_threads,
    "peak_gflops": ops.peak_gflops,
    "with_threads": _with_threads,
    "with_array_cache": _with_array_cache,
    "Dense": _layer(layers.Dense),
    "Conv2D": _layer(layers.Conv2D),
    "MaxPooling2D": _layer(layers.MaxPooling2D),
    "Conv1D": _layer(layers.Conv1D),
    "Conv2DTranspose": _layer(layers.Conv2DTranspose),
    "DepthwiseConv2D": _layer(layers.DepthwiseConv2D),
    "SeparableConv2D": _layer(layers.SeparableConv2D),
    "AveragePooling2D": _layer(layers.AveragePooling2D),
    "GlobalAveragePooling1D": _layer(layers.GlobalAveragePooling1D),
    "GlobalMaxPooling2D": _layer(layers.GlobalMaxPooling2D),
    "Flatten": _layer(layers.Flatten),
    "LSTM": _layer(layers.LSTM),
}


# What ops.__all__ exports but OPERATIONS leaves out, and why (tests/test_package.py:
# every other name of ops.__all__ must be an operation here).
NOT_FUZZED = {
    "get_num_threads": "takes no arguments",
    "array_cache_info": "takes no arguments",
    "array_cache_release": "takes no arguments",
    "configure_array_cache": "fuzzed as with_array_cache (any settings, then any kernel)",
    "LstmCache": "a type, not an operation",
    "LstmCellCache": "a type, not an operation",
    "GruCache": "a type, not an operation",
    "SimpleRnnCache": "a type, not an operation",
    "batch_norm_forward": "fuzzed as batch_norm_round_trip (forward, inference, backward)",
    "batch_norm_inference": "fuzzed as batch_norm_round_trip",
    "batch_norm_backward": "fuzzed as batch_norm_round_trip",
    "layer_norm_forward": "fuzzed as layer_norm_round_trip (forward and backward)",
    "layer_norm_backward": "fuzzed as layer_norm_round_trip",
    "embedding_forward": "fuzzed as embedding_round_trip (forward and backward)",
    "activation_forward": "fuzzed as activation_round_trip (every kind, forward and backward)",
    "activation_backward": "fuzzed as activation_round_trip",
    "activation_backward_needs": "a query of a kind's name; tests/test_activation.py covers every kind",
    "avgpool2d_forward": "fuzzed as avgpool2d_round_trip (forward and backward)",
    "global_avgpool_forward": "fuzzed as global_avgpool_round_trip (forward and backward)",
    "global_avgpool_backward": "fuzzed as global_avgpool_round_trip",
    "softmax_forward": "fuzzed as softmax_round_trip (with the backward and both cross-entropies)",
    "softmax_backward": "fuzzed as softmax_round_trip",
    "sparse_softmax_cross_entropy": "fuzzed as softmax_round_trip",
    "softmax_cross_entropy": "fuzzed as softmax_round_trip",
}


def _copy_out(result):
    """The result with arrays copied (they may view kernel memory) and opaque caches named."""
    if isinstance(result, np.ndarray):
        return result.copy()
    if isinstance(result, (tuple, list)):
        return type(result)(_copy_out(r) for r in result)
    if isinstance(result, (ops.LstmCache, ops.LstmCellCache, ops.GruCache, ops.SimpleRnnCache)):
        return type(result).__name__
    return result


def run_case(case):
    """Runs one case (name, args, kwargs); returns its outcome."""
    try:
        result = _call(case)
    except (ValueError, TypeError, MemoryError, OverflowError) as e:
        return ("raised", type(e).__name__, str(e))
    return ("ok", _copy_out(result))


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 4 << 30
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cases = pickle.load(sys.stdin.buffer)
    outcomes = []
    for i, case in enumerate(cases):
        print(f"case {i}", file=sys.stderr, flush=True)
        outcomes.append(run_case(case))
    pickle.dump(outcomes, sys.stdout.buffer)


if __name__ == "__main__":
    # Through the module, so that the cases unpickle to this module's ArraySpec.
    import _fuzz_worker

    _fuzz_worker.main()
