"""Inference: the seed CNN at batch 1 (latency) and batch 1000 (throughput), and an LSTM
layer's forward, in dlcore, PyTorch eager, ONNX Runtime and Keras 3.

Models: the same weights everywhere, drawn from a seeded NumPy generator (trained
weights change nothing in the timing), and every implementation's output on the first
inputs is checked against a float64 NumPy forward (`max_abs_err`; above 1e-4 the case
fails rather than time a wrong answer).
- cnn: dlcore.examples.mnist_cnn's model, Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool
  -> Dense 128 -> Dense 10 softmax, on 28x28x1 images.
- lstm: LSTM(256, return_sequences=True) over (64, 50, 128) inputs (N x T x I).

How the model is called, the last word of the case's name:
- predict: dlcore `model.predict(x, batch_size=len(x))`, Keras
  `model.predict(x, batch_size=len(x), verbose=0)` (so 1000 images are one batch, not
  Keras' default of 32);
- predict_on_batch: `model.predict_on_batch(x)` in both;
- call: dlcore `model(x)` inside `dlcore.no_grad()`, Keras `model(x, training=False)`.
PyTorch and ONNX Runtime have one way, timed again in each row: PyTorch eager, the module
inside `torch.inference_mode()`, at its faster memory format for the CNN (NCHW or
channels_last, a short trial; DLCORE_BENCH_TORCH_FORMAT forces one); ONNX Runtime,
`session.run` on the model exported from PyTorch (`torch.onnx.export`, the TorchScript
exporter, a fixed batch size, in a separate process so that no torch runs in this one),
CPU provider, all graph optimisations, intra-op threads = the thread count, inter-op 1.

Every call returns the output as a NumPy array (Keras on JAX dispatches asynchronously:
converting its output waits for the result). The inputs are in each implementation's
own layout beforehand (NHWC for dlcore and Keras, NCHW or channels_last tensors for
PyTorch, NCHW arrays for ONNX Runtime); no conversion is timed.

Timing: each call is timed on its own, and a repeat is the median of a block of calls
(batch 1: 300 calls, each on an image not used before in the block, from a pool of
1000; batch 1000 and the LSTM: at least 3 calls and 0.3 s, alternating two inputs). Warm-up calls
(JIT compilation, first-touch allocations) come first and are not counted.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from workloads import Case
from workloads.train import SMALL, keras_layers, torch_net

SUITE = "predict"
IMPLS = ("dlcore", "torch", "onnxruntime", "keras-jax", "keras-tf")
HERE = os.path.dirname(os.path.abspath(__file__))
HOWS = ("predict", "predict_on_batch", "call")
LSTM_SHAPE = (64, 128, 256, 50)  # N x I x U x T
TOLERANCE = 1e-4

CNN_FLOPS = 2.0 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 128 * 10)


def cases(quick):
    N, I, U, T = LSTM_SHAPE
    lstm_flops = 2.0 * N * T * 4 * U * (I + U)
    models = [("cnn", 1, "b1", CNN_FLOPS), ("cnn", 1000, "b1000", 1000 * CNN_FLOPS)]
    models.append(("lstm", N, f"{N}x{I}x{U}x{T}", lstm_flops))
    out = []
    for model, batch, label, flops in models:
        for how in HOWS:
            if quick and (model == "lstm" or how == "predict_on_batch"):
                continue
            params = {"model": model, "batch": batch, "how": how}
            out.append(Case(SUITE, f"{model} {label} {how}", params, flops))
    return out


# ---------------------------------------------------------------- weights, inputs, reference
def weights(model):
    """Keras-layout weights: kernels (KH, KW, C, OC) and (in, out); LSTM gates i, f, c, o."""
    rng = np.random.default_rng(0)

    def glorot(*shape, fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)

    def bias(n):
        return rng.uniform(-0.1, 0.1, n).astype(np.float32)

    if model == "cnn":
        return [
            glorot(3, 3, 1, 32, fan_in=9, fan_out=288),
            bias(32),
            glorot(3, 3, 32, 64, fan_in=288, fan_out=576),
            bias(64),
            glorot(1600, 128, fan_in=1600, fan_out=128),
            bias(128),
            glorot(128, 10, fan_in=128, fan_out=10),
            bias(10),
        ]
    _, I, U, _ = LSTM_SHAPE
    return [
        glorot(I, 4 * U, fan_in=I, fan_out=4 * U),
        glorot(U, 4 * U, fan_in=U, fan_out=4 * U),
        bias(4 * U),
    ]


def inputs(model, batch):
    """Distinct inputs in dlcore's layout: 1000 single images, two batches of 1000, or
    two LSTM batches."""
    rng = np.random.default_rng(1)
    if model == "lstm":
        N, I, _, T = LSTM_SHAPE
        return [rng.standard_normal((N, T, I), dtype=np.float32) for _ in range(2)]
    images = rng.uniform(0, 1, (1000 if batch == 1 else 2 * batch, 28, 28, 1))
    images = images.astype(np.float32)
    return [images[i : i + batch] for i in range(0, len(images), batch)]


def reference(model, w, x):
    """The float64 NumPy forward pass."""
    x = x.astype(np.float64)
    w = [a.astype(np.float64) for a in w]
    if model == "cnn":

        def conv_relu(h, k, b):
            windows = np.lib.stride_tricks.sliding_window_view(h, (3, 3), axis=(1, 2))
            return np.maximum(np.einsum("nhwcij,ijco->nhwo", windows, k) + b, 0)

        def pool(h):
            n, hh, ww, c = h.shape
            h = h[:, : hh // 2 * 2, : ww // 2 * 2]
            return h.reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))

        h = pool(conv_relu(pool(conv_relu(x, w[0], w[1])), w[2], w[3]))
        h = np.maximum(h.reshape(len(h), -1) @ w[4] + w[5], 0)
        z = h @ w[6] + w[7]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    kernel, recurrent, b = w
    N, T, _ = x.shape
    U = recurrent.shape[0]
    h, c, out = np.zeros((N, U)), np.zeros((N, U)), []
    for t in range(T):
        z = x[:, t] @ kernel + h @ recurrent + b
        i, f, g, o = (z[:, j * U : (j + 1) * U] for j in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


# ---------------------------------------------------------------- the implementations
def _dlcore(p, w):
    import dlcore
    from dlcore import layers, models

    if p["model"] == "cnn":
        from dlcore.examples.mnist_cnn import build_model

        net = build_model()
    else:
        _, I, U, T = LSTM_SHAPE
        net = models.Sequential([layers.Input(shape=(T, I)), layers.LSTM(U, return_sequences=True)])
    net.set_weights(w)
    if p["how"] == "predict":
        return lambda x: net.predict(x, batch_size=len(x))
    if p["how"] == "predict_on_batch":
        return net.predict_on_batch

    def call(x):
        with dlcore.no_grad():
            return net(x).numpy()

    return call


def _keras(p, w):
    import keras

    if p["model"] == "cnn":
        net = keras.Sequential(keras_layers("cnn"))
    else:
        _, I, U, T = LSTM_SHAPE
        net = keras.Sequential([keras.Input((T, I)), keras.layers.LSTM(U, return_sequences=True)])
    net.set_weights(w)
    if p["how"] == "predict":
        return lambda x: net.predict(x, batch_size=len(x), verbose=0)
    if p["how"] == "predict_on_batch":
        return net.predict_on_batch
    return lambda x: keras.ops.convert_to_numpy(net(x, training=False))


def torch_model(model, w):
    """The same network as a torch.nn.Module with the same weights."""
    import torch
    from torch import nn

    t = {i: torch.from_numpy(np.ascontiguousarray(a)) for i, a in enumerate(w)}
    if model == "cnn":
        net = nn.Sequential(*torch_net("cnn")[0], nn.Softmax(dim=1))
        with torch.no_grad():
            net[0].weight.copy_(t[0].permute(3, 2, 0, 1))
            net[0].bias.copy_(t[1])
            net[3].weight.copy_(t[2].permute(3, 2, 0, 1))
            net[3].bias.copy_(t[3])
            # Keras flattens (H, W, C), PyTorch (C, H, W): reorder the Dense rows to match.
            net[7].weight.copy_(t[4].reshape(5, 5, 64, 128).permute(3, 2, 0, 1).reshape(128, -1))
            net[7].bias.copy_(t[5])
            net[9].weight.copy_(t[6].T)
            net[9].bias.copy_(t[7])
        return net.eval()

    class Sequences(nn.Module):  # the output sequence alone, as the other sides return
        def __init__(self):
            super().__init__()
            _, I, U, _ = LSTM_SHAPE
            self.lstm = nn.LSTM(I, U, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    net = Sequences()
    with torch.no_grad():  # torch keeps W^T and two biases
        net.lstm.weight_ih_l0.copy_(t[0].T)
        net.lstm.weight_hh_l0.copy_(t[1].T)
        net.lstm.bias_ih_l0.copy_(t[2])
        net.lstm.bias_hh_l0.zero_()
    return net.eval()


def to_nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def _torch(p, w, pool):
    """(call, inputs in its layout) at PyTorch's faster memory format."""
    import torch

    def variant(memory_format):
        net = torch_model(p["model"], w).to(memory_format=memory_format)
        xs = [torch.from_numpy(to_nchw(x)).contiguous(memory_format=memory_format) for x in pool]

        def call(x):
            with torch.inference_mode():
                return net(x).numpy()

        return call, xs

    if p["model"] != "cnn":
        return variant(torch.contiguous_format)
    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
    variants = [variant(f) for f in ([formats[wanted]] if wanted in formats else formats.values())]
    if len(variants) == 1:
        return variants[0]
    calls = 20 if p["batch"] == 1 else 2
    trial = [min(block_median(fn, xs, calls, 0) for _ in range(2)) for fn, xs in variants]
    return variants[trial.index(min(trial))]


_onnx_files = {}  # (model, batch) -> path, exported once per process
_onnx_dir = []  # the temporary directory of those files, removed when the process exits


def export_onnx(model, batch, path):
    """Writes the PyTorch model at a fixed batch size to path as ONNX (run in a process
    of its own by _onnxruntime)."""
    import torch

    shape = (batch, 1, 28, 28) if model == "cnn" else (batch, LSTM_SHAPE[3], LSTM_SHAPE[1])
    kwargs = dict(input_names=["x"], output_names=["y"])
    try:  # the TorchScript exporter: the torch.export one needs onnxscript
        torch.onnx.export(torch_model(model, weights(model)), (torch.zeros(shape),), path,
                          dynamo=False, **kwargs)  # fmt: skip
    except TypeError:  # a torch from before the dynamo argument
        torch.onnx.export(torch_model(model, weights(model)), (torch.zeros(shape),), path, **kwargs)


def _onnxruntime(p, w):
    import onnxruntime as ort

    key = (p["model"], p["batch"])
    if key not in _onnx_files:
        if not _onnx_dir:
            _onnx_dir.append(tempfile.TemporaryDirectory(prefix="dlcore-bench-onnx-"))
        path = os.path.join(_onnx_dir[0].name, f"{p['model']}-{p['batch']}.onnx")
        code = (
            f"import sys; sys.path.insert(0, {os.path.dirname(HERE)!r}); "
            f"from workloads.predict import export_onnx; "
            f"export_onnx({p['model']!r}, {p['batch']}, {path!r})"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"torch.onnx.export failed:\n{out.stderr}")
        _onnx_files[key] = path
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(_onnx_files[key], options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["y"], {"x": x})[0]


# ---------------------------------------------------------------- timing
def block_median(fn, xs, min_calls, min_time, start=0):
    """The median seconds of single calls, over a block of at least min_calls calls and
    min_time seconds, each on the next input of xs."""
    times = []
    t_block = time.perf_counter()
    k = start
    while len(times) < min_calls or time.perf_counter() - t_block < min_time:
        x = xs[k % len(xs)]
        k += 1
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(impl, case, repeats):
    p = case.params
    w = weights(p["model"])
    pool = inputs(p["model"], p["batch"])
    if impl == "torch":
        fn, xs = _torch(p, w, pool)
    else:
        build = {"dlcore": _dlcore, "onnxruntime": _onnxruntime}.get(impl, _keras)
        fn = build(p, w)
        xs = [to_nchw(x) for x in pool] if impl == "onnxruntime" else pool
    probe = 8 if p["model"] == "cnn" else len(pool[0])
    got = np.concatenate([fn(xs[i]) for i in range(max(1, -(-probe // p["batch"])))])[:probe]
    want = reference(p["model"], w, np.concatenate(pool)[:probe])
    err = float(np.max(np.abs(got - want)))
    if not err <= TOLERANCE:
        raise RuntimeError(f"{impl} {case.key}: output differs from NumPy's by {err:.3g}")
    latency = p["batch"] == 1
    for i in range(10 if latency else 2):  # warm-up, on inputs the timed blocks reuse
        fn(xs[i % len(xs)])
    calls = min(300, SMALL or 300)  # DLCORE_BENCH_SMALL: the self-test's size
    seconds = [
        block_median(
            fn, xs, calls if latency else 3, 0 if latency or SMALL else 0.3, start=r * calls
        )
        for r in range(repeats)
    ]
    return {"seconds": seconds, "extra": {"max_abs_err": err}}
