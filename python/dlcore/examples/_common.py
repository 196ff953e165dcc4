"""What the example programs share: arguments, MNIST loading, timing."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from dlcore import callbacks, distributed
from dlcore.datasets import mnist


def parser(description, epochs, batch_size, mnist_data=False, fit_distributed=False):
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds' run on a slice of the data (used by the tests)",
    )
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--seed", type=int, default=0)
    if mnist_data:
        p.add_argument(
            "--data",
            default=None,
            help="directory with the MNIST IDX files (default: $DLCORE_DATA, the "
            "cache, or download)",
        )
    if fit_distributed:
        p.add_argument(
            "--distributed",
            action="store_true",
            help="train data-parallel on the ranks of an MPI job, e.g. "
            "mpirun -n 2 python -m dlcore.examples.mnist_cnn --distributed "
            "(--batch-size is per rank)",
        )
    return p


def join_distributed(args):
    """With --distributed, joins the MPI job (which also splits the cores among the ranks
    of each machine) and silences every rank but 0, so that the program prints once.
    Returns this process's rank (0 without --distributed)."""
    rank = distributed.init().rank if args.distributed else 0
    if rank != 0:
        sys.stdout = open(os.devnull, "w")
    return rank


def load_mnist(data, quick=False, train=None, test=None, flat=False):
    """MNIST scaled to [0, 1] floats, (N, 28, 28, 1) or (N, 784) with ``flat``."""
    (x_train, y_train), (x_test, y_test) = mnist.load_data(data)
    if train is not None:
        x_train, y_train = x_train[:train], y_train[:train]
    if test is not None:
        x_test, y_test = x_test[:test], y_test[:test]
    shape = (-1, 784) if flat else (-1, 28, 28, 1)
    x_train = (x_train.astype(np.float32) / 255).reshape(shape)
    x_test = (x_test.astype(np.float32) / 255).reshape(shape)
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64))


class EpochTimer(callbacks.Callback):
    """Wall-clock seconds of every epoch (validation included, as Keras reports it)."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def save_image_grid(path, rows, titles=None, shape=(28, 28)):
    """Saves rows of images (each row an array (n, 784) or (n, 28, 28)) as one PNG.
    Returns the path, or None (with a note) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            f"(matplotlib is not installed, so {path} was not written: pip install 'dlcore[plot]')"
        )
        return None
    n_rows, n_cols = len(rows), len(rows[0])
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 1.0, n_rows * 1.1), squeeze=False)
    for r, images in enumerate(rows):
        for c, img in enumerate(images):
            ax = axes[r][c]
            ax.imshow(np.asarray(img).reshape(shape), cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
        if titles:
            axes[r][0].set_title(titles[r], fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return str(path)


class Stopwatch:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self):
        return time.perf_counter() - self.start
