"""Whole training epochs, dlcore against the same model in PyTorch.

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
every epoch's seconds; the first epoch includes no compilation on either side.
DLCORE_BENCH_SEED (default 0) seeds both sides, to see the spread of the accuracies.
"""

import os
import time

import numpy as np

from workloads import Case

SUITE = "train"
IMPLS = ("dlcore", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
SEED = int(os.environ.get("DLCORE_BENCH_SEED", "0"))
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
            Case(SUITE, "cnn epoch from a dataset", {"model": "cnn", "dataset": True}, cnn_flops),
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


def _data(model):
    return sine_data() if model == "lstm" else mnist_data(flat=model == "mlp")


def measure(impl, case, repeats):
    model = case.params["model"]
    x, y, xt, yt = _data(model)
    epochs = max(1, min(repeats, 2))
    run = {"dlcore": _dlcore, "torch": _torch}[impl]
    if case.params.get("dataset"):
        x = np.round(x * 255).astype(np.uint8)  # raw images: batches are made per step
    seconds, score = run(model, x, y, xt, yt, SPEC[model]["batch"], epochs)
    name = "test_mse" if model == "lstm" else "test_acc"
    return {"seconds": seconds, "extra": {name: score}}


def _dlcore(model, x, y, xt, yt, batch, epochs):
    import dlcore
    from dlcore import callbacks, layers, models, optimizers

    dlcore.set_random_seed(SEED)
    if model == "cnn":
        from dlcore.examples.mnist_cnn import build_model

        net = build_model()
    elif model == "mlp":
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
    else:
        net = models.Sequential(
            [
                layers.LSTM(50, return_sequences=True, input_shape=(50, 1)),
                layers.LSTM(50),
                layers.Dense(1),
            ]
        )
        net.compile(optimizer=optimizers.Adam(1e-3), loss="mse")

    class Timer(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t)

    timer = Timer()
    if x.dtype == np.uint8:
        net.fit(_Batches(dlcore.utils.PyDataset, x, y, batch), epochs=epochs, verbose=0,
                callbacks=[timer])  # fmt: skip
    else:
        net.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[timer], seed=SEED)
    result = net.evaluate(xt, yt, batch_size=256, verbose=0)
    score = result[1] if isinstance(result, list) else result
    return timer.seconds, float(score)


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


def _torch(model, x, y, xt, yt, batch, epochs):
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

        def to_input(a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))

        loss_fn = nn.CrossEntropyLoss()
    elif model == "mlp":
        net = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
        to_input = torch.from_numpy
        loss_fn = nn.CrossEntropyLoss()
    else:

        class Stacked(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(1, 50, num_layers=2, batch_first=True)
                self.fc = nn.Linear(50, 1)

            def forward(self, inputs):
                _, (h, _) = self.lstm(inputs)
                return self.fc(h[-1])

        net = Stacked()
        to_input = torch.from_numpy
        loss_fn = nn.MSELoss()
    xs, ys = to_input(x), torch.from_numpy(y)
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
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(to_input(xt[i : i + 256])) for i in range(0, len(xt), 256)])
    if model == "lstm":
        score = float(((out.numpy() - yt) ** 2).mean())
    else:
        score = float((out.argmax(1).numpy() == yt).mean())
    return seconds, score
