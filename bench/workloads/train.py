"""Whole training epochs, dlcore against the same model in PyTorch and in Keras 3.

- cnn:  the tutorials' MNIST CNN (Conv2D 32 -> MaxPool -> Conv2D 64 -> MaxPool -> Dense 128
        -> Dense 10), Adam, batch 32, on the 20k MNIST training subset; test accuracy on
        the 10k test set.
- mlp:  Dense 512 relu -> Dense 10, Adam, batch 256, same data.
- lstm: LSTM(50, return_sequences) -> LSTM(50) -> Dense(1), Adam, MSE, batch 32, on 6000
        sine-wave sequences of 50 steps (predict the next value); test MSE on 1000 more.
- cnn from a dataset: the cnn, but each batch is made from the raw uint8 images by
  Python code (scale to [0, 1], shuffle per epoch): dlcore fits a utils.PyDataset, which
  it loads in a background thread; PyTorch runs the same code in its training loop.

Each process trains a freshly seeded model for `repeats` epochs (at most 2) and reports
every epoch's seconds; the first epoch of dlcore and PyTorch includes no compilation.
Keras (keras-jax, keras-tf: keras.Sequential, model.fit(verbose=0), the same data, loss,
optimizer and batch size; the three models, not the dataset case) traces and compiles
its train step during its first epoch, so it always trains 2 epochs and reports only
the second; the first is kept as the extra `first_epoch_s`. Keras' own defaults stand:
jit_compile="auto" is XLA on JAX and no XLA for TensorFlow on a CPU.
DLCORE_BENCH_SEED (default 0) seeds every side, to see the spread of the accuracies.

PyTorch trains the CNN in its faster memory format, NCHW or channels_last, picked by a
short trial of both before the timed epochs (DLCORE_BENCH_TORCH_FORMAT=nchw or
channels_last forces one; the extra `memory_format_channels_last` says which ran).

Every case also reports two peak resident memories of the process while it builds the
model and trains it (every epoch, not the evaluation after): `peak_rss_mib`, the peak
minus the resident memory just before (after the imports, the data loaded and converted
to the framework's layout, PyTorch's layout trial, a garbage collection and glibc's
malloc_trim), and `peak_rss_total_mib`, the peak itself (imports and data included).
The peak is the kernel's high-water mark (VmHWM, what `getrusage().ru_maxrss` reports),
reset to the current size at the start with /proc/self/clear_refs; where that reset is
refused it is ru_maxrss, whose growth sees only what exceeds the earlier peak. run.py
gives each training case a process of its own, so no earlier case's freed memory is
reused. DLCORE_BENCH_SMALL=N trains on the first N samples only (the self-test's size).
"""

import functools
import gc
import os
import resource
import time

import numpy as np

from workloads import Case

SUITE = "train"
IMPLS = ("dlcore", "torch", "keras-jax", "keras-tf")
ONE_PROCESS_PER_CASE = True  # the peak RSS of one case must not see another's heap
# Extras run.py shows as rows of their own: name -> (label, unit).
METRICS = {
    "peak_rss_mib": ("peak RSS growth", "MiB"),
    "peak_rss_total_mib": ("peak RSS total", "MiB"),
}
HERE = os.path.dirname(os.path.abspath(__file__))
SEED = int(os.environ.get("DLCORE_BENCH_SEED", "0"))
# DLCORE_BENCH_SMALL=N: train on the first N samples, test on N/2 (the self-test's size).
SMALL = int(os.environ.get("DLCORE_BENCH_SMALL", "0"))
MNIST = os.environ.get("DLCORE_DATA") or os.path.join(
    HERE, "..", "..", "..", "shared", "data", "mnist"
)


def cases(quick):
    cnn_flops = 3 * 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 128 + 1280) * 20000
    mlp_flops = 3 * 2 * (784 * 512 + 512 * 10) * 20000
    lstm_flops = 3 * 2 * 50 * (200 * 51 + 200 * 100) * 6000
    out = [Case(SUITE, "mlp epoch", {"model": "mlp"}, mlp_flops)]
    if not quick:
        out += [
            Case(SUITE, "cnn epoch", {"model": "cnn"}, cnn_flops),
            Case(SUITE, "lstm epoch", {"model": "lstm"}, lstm_flops),
            Case(
                SUITE,
                "cnn epoch from a dataset",
                {"model": "cnn", "dataset": True},
                cnn_flops,
                impls=("dlcore", "torch"),
            ),
        ]
    return out


def mnist_data(flat):
    # The IDX reader is plain NumPy; no dlcore kernel runs in the torch process.
    from dlcore.datasets.mnist import load_data

    (x, y), (xt, yt) = load_data(MNIST, download=False)
    shape = (-1, 784) if flat else (-1, 28, 28, 1)
    return (
        (x.astype(np.float32) / 255).reshape(shape),
        y.astype(np.int64),
        (xt.astype(np.float32) / 255).reshape(shape),
        yt.astype(np.int64),
    )


def sine_data(n=6000, n_test=1000, steps=50, seed=0):
    """Sine waves of random frequency and phase; the target is the next value."""
    rng = np.random.default_rng(seed)
    total = n + n_test
    freq = rng.uniform(0.05, 0.25, (total, 1))
    phase = rng.uniform(0, 2 * np.pi, (total, 1))
    t = np.arange(steps + 1)[None, :]
    waves = np.sin(freq * t + phase) + 0.05 * rng.standard_normal((total, steps + 1))
    x = waves[:, :steps, None].astype(np.float32)
    y = waves[:, steps:].astype(np.float32)
    return x[:n], y[:n], x[n:], y[n:]


SPEC = {"cnn": dict(batch=32), "mlp": dict(batch=256), "lstm": dict(batch=32)}


def data(model):
    return sine_data() if model == "lstm" else mnist_data(flat=model == "mlp")


def measure(impl, case, repeats):
    model = case.params["model"]
    x, y, xt, yt = data(model)
    if SMALL:  # the self-test's size (tests/test_bench.py): the code paths, not the speed
        x, y, xt, yt = x[:SMALL], y[:SMALL], xt[: SMALL // 2], yt[: SMALL // 2]
    epochs = max(1, min(repeats, 2))
    if case.params.get("dataset"):
        x = np.round(x * 255).astype(np.uint8)  # raw images: batches are made per step
    elif impl == "torch" and model == "cnn":  # PyTorch's layout, before the memory baseline
        x, xt = (np.ascontiguousarray(a.transpose(0, 3, 1, 2)) for a in (x, xt))
    run = {"dlcore": _dlcore, "torch": _torch, "keras-jax": _keras, "keras-tf": _keras}[impl]
    batch = SPEC[model]["batch"]
    if impl == "torch" and model == "cnn":  # the trial runs before the memory baseline
        sample = x[: 40 * batch]
        if sample.dtype == np.uint8:
            sample = np.ascontiguousarray((sample / 255).astype(np.float32).transpose(0, 3, 1, 2))
        run = functools.partial(_torch, fmt=torch_format(sample, y[: 40 * batch], batch))
    memory = PeakRSS()
    memory.start()
    seconds, score, extra = run(model, x, y, xt, yt, batch, epochs, memory)
    name = "test_mse" if model == "lstm" else "test_acc"
    extra.update(peak_rss_mib=memory.mib, peak_rss_total_mib=memory.total_mib)
    return {"seconds": seconds, "extra": {name: score, **extra}}


class PeakRSS:
    """The peak resident memory between start() and stop(): `mib` above the resident
    memory at start(), `total_mib` all of it (see the module's docstring)."""

    def start(self):
        gc.collect()
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets the high-water mark to the current resident size
            self.reset = True
        except OSError:
            self.reset = False
        self.base = _status_kib("VmRSS") if self.reset else _maxrss_kib()

    def stop(self):
        peak = _status_kib("VmHWM") if self.reset else _maxrss_kib()
        self.mib = (peak - self.base) / 1024
        self.total_mib = peak / 1024


def _malloc_trim():
    """Hands the C heap's free memory back to the system (glibc), so that what an earlier
    step freed is not resident in the baseline and then reused unseen."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def _maxrss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def dlcore_model(model):
    """The compiled dlcore model of a case, freshly seeded (also used by overhead.py)."""
    import dlcore
    from dlcore import layers, models, optimizers

    dlcore.set_random_seed(SEED)
    if model == "cnn":
        from dlcore.examples.mnist_cnn import build_model

        return build_model()
    if model == "mlp":
        net = models.Sequential(
            [
                layers.Dense(512, activation="relu", input_shape=(784,)),
                layers.Dense(10, activation="softmax"),
            ]
        )
        net.compile(
            optimizer=optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return net
    net = models.Sequential(
        [
            layers.LSTM(50, return_sequences=True, input_shape=(50, 1)),
            layers.LSTM(50),
            layers.Dense(1),
        ]
    )
    net.compile(optimizer=optimizers.Adam(1e-3), loss="mse")
    return net


def _dlcore(model, x, y, xt, yt, batch, epochs, memory):
    import dlcore
    from dlcore import callbacks

    net = dlcore_model(model)

    timer = epoch_timer(callbacks.Callback)
    if x.dtype == np.uint8:
        net.fit(_Batches(dlcore.utils.PyDataset, x, y, batch), epochs=epochs, verbose=0,
                callbacks=[timer])  # fmt: skip
    else:
        net.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer], seed=SEED)
    memory.stop()
    result = net.evaluate(xt, yt, batch_size=256, verbose=0)
    score = result[1] if isinstance(result, list) else result
    return timer.seconds, float(score), {}


def epoch_timer(base):
    """A callback of the framework's Callback class `base` that keeps every epoch's
    seconds in `.seconds`."""

    class Timer(base):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t)

    return Timer()


def _make_batch(x, y, idx):
    """The per-step data work of the dataset cases: gather, scale to [0, 1] floats."""
    return x[idx].astype(np.float32) / 255, y[idx]


def _Batches(base, x, y, batch):
    class Batches(base):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(SEED)
            self.order = self.rng.permutation(len(x))

        def __len__(self):
            return -(-len(x) // batch)

        def __getitem__(self, i):
            return _make_batch(x, y, self.order[i * batch : (i + 1) * batch])

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(x))

    return Batches()


def torch_net(model):
    """(module, loss) of a case in PyTorch, freshly seeded."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    if model == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(1600, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
        return net, nn.CrossEntropyLoss()
    if model == "mlp":
        return nn.Sequential(
            nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)
        ), nn.CrossEntropyLoss()

    class Stacked(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(1, 50, num_layers=2, batch_first=True)
            self.fc = nn.Linear(50, 1)

        def forward(self, inputs):
            _, (h, _) = self.lstm(inputs)
            return self.fc(h[-1])

    return Stacked(), nn.MSELoss()


def torch_format(x, y, batch):
    """PyTorch's faster memory format for training the CNN: DLCORE_BENCH_TORCH_FORMAT
    (nchw, channels_last) forces one; otherwise ("best") a short trial of both, the
    minimum of two alternating blocks of steps each, on throwaway models."""
    import torch

    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
    if wanted in formats:
        return formats[wanted]
    steps = max(1, min(30, len(x) // batch - 5))
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    trial = {}
    for _ in range(2):
        for name, fmt in formats.items():
            net, loss_fn = torch_net("cnn")
            net = net.to(memory_format=fmt)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            for i in range(steps + 5):
                if i == 5:
                    start = time.perf_counter()
                xb = xs[i * batch : (i + 1) * batch].contiguous(memory_format=fmt)
                opt.zero_grad()
                loss_fn(net(xb), ys[i * batch : (i + 1) * batch]).backward()
                opt.step()
            spent = time.perf_counter() - start
            trial[name] = min(trial.get(name, spent), spent)
    return formats[min(trial, key=trial.get)]


def _torch(model, x, y, xt, yt, batch, epochs, memory, fmt=None):
    import torch

    net, loss_fn = torch_net(model)
    if model == "cnn":
        net = net.to(memory_format=fmt)

        def to_input(a):  # measure() has already made the arrays (N, 1, 28, 28)
            if a.shape[1:] == (28, 28, 1):  # the dataset case's batches
                a = np.ascontiguousarray(a.transpose(0, 3, 1, 2))
            return torch.from_numpy(a).contiguous(memory_format=fmt)

    else:
        to_input = torch.from_numpy
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(SEED)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        order = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), batch):
            idx = order[i : i + batch]
            if x.dtype == np.uint8:  # the dataset case: the same per-step data work
                xb, yb = _make_batch(x, y, idx.numpy())
                xb, yb = to_input(xb), torch.from_numpy(yb)
            else:
                xb, yb = xs[idx], ys[idx]
                if model == "cnn":
                    xb = xb.contiguous(memory_format=fmt)
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    memory.stop()
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(to_input(xt[i : i + 256])) for i in range(0, len(xt), 256)])
    if model == "lstm":
        score = float(((out.numpy() - yt) ** 2).mean())
    else:
        score = float((out.argmax(1).numpy() == yt).mean())
    layout = {"memory_format_channels_last": float(fmt == torch.channels_last)} if fmt else {}
    return seconds, score, layout


def keras_layers(model):
    """The layers of a case's model in Keras 3, from its keras.Input (also used by
    predict.py for the cnn)."""
    import keras
    from keras import layers

    if model == "cnn":
        return [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    if model == "mlp":
        return [
            keras.Input((784,)),
            layers.Dense(512, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ]
    return [
        keras.Input((50, 1)),
        layers.LSTM(50, return_sequences=True),
        layers.LSTM(50),
        layers.Dense(1),
    ]


def _keras(model, x, y, xt, yt, batch, epochs, memory):
    """The same model in Keras 3 (the backend is KERAS_BACKEND, set by the worker)."""
    import keras

    keras.utils.set_random_seed(SEED)
    stack = keras_layers(model)
    net = keras.Sequential(stack)
    if model == "lstm":
        net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    else:
        net.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    timer = epoch_timer(keras.callbacks.Callback)
    # The first epoch traces and compiles the train step (and the last, smaller batch's):
    # it is kept as an extra and left out of the timed epochs. 2 epochs in all, as the
    # others train, so that the test scores compare.
    net.fit(x, y, batch_size=batch, epochs=max(epochs, 2), verbose=0, callbacks=[timer])
    memory.stop()
    result = net.evaluate(xt, yt, batch_size=256, verbose=0)
    score = result[1] if isinstance(result, list) else result
    return timer.seconds[1:], float(score), {"first_epoch_s": timer.seconds[0]}
