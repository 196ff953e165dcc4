"""Data-parallel training on one machine: seconds per epoch and the allreduce's share.

    python bench/distributed.py --model cnn                      # 1 rank, every core
    mpirun -n 2 python bench/distributed.py --model cnn          # 2 ranks, cores split
    mpirun -n 2 python bench/distributed.py --allreduce 225034   # the Allreduce alone

A training run fits a freshly seeded model (the tutorials' MNIST CNN or MLP, Adam) with
fit(distributed=True) on the 20k MNIST training subset, ``--batch-size`` samples per
rank and step, and prints from rank 0 one JSON line: ranks, threads per rank, seconds of
every epoch, steps per epoch, every rank's seconds inside Allreduce per step (waiting
for the slower rank included) and in allreduce_gradients as a whole (with packing), and
the test accuracy. ``--allreduce N`` times the Allreduce of N float32 values alone, the
ranks starting together (a Barrier before each call): the cost of the transfer itself.

The README's table: three rounds, each running in turn ``--model cnn`` on 1 rank (2
threads), 2 ranks with ``--batch-size 32`` and 16, 1 rank with OMP_NUM_THREADS=1, and
``--allreduce 225034``; medians of the second epochs.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dlcore  # noqa: E402
from dlcore import callbacks, distributed, layers, models, optimizers  # noqa: E402
from workloads.train import mnist_data  # noqa: E402


def build(name):
    if name == "cnn":
        from dlcore.examples.mnist_cnn import build_model

        return build_model()
    model = models.Sequential(
        [
            layers.Dense(512, activation="relu", input_shape=(784,)),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class StepClock(callbacks.Callback):
    """Seconds of every epoch, and the allreduce counters at each epoch's end."""

    def __init__(self):
        super().__init__()
        self.seconds, self.counters = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        self.counters.append(distributed.stats())


def train(args, world):
    x, y, xt, yt = mnist_data(flat=args.model == "mlp")
    dlcore.set_random_seed(0)
    model = build(args.model)
    clock = StepClock()
    model.fit(
        x,
        y,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[clock],
        seed=0,
        distributed=True,
    )
    _, accuracy = model.evaluate(xt, yt, batch_size=256, verbose=0, distributed=True)
    steps = -(-(len(x) // world.size) // args.batch_size)
    # per step of the last epoch (the first pays for first-touch page faults)
    last, before = clock.counters[-1], (clock.counters[-2] if args.epochs > 1 else None)

    def per_step(key):
        return (last[key] - (before[key] if before else 0.0)) / steps

    mine = (per_step("allreduce_seconds"), per_step("total_seconds"))
    every = (world.comm.gather(mine) if world.comm is not None else [mine]) or []
    return {
        "model": args.model,
        "ranks": world.size,
        "threads": dlcore.ops.get_num_threads(),
        "batch_per_rank": args.batch_size,
        "steps": steps,
        "epoch_seconds": clock.seconds,
        "allreduce_seconds_per_step": [e[0] for e in every],
        "reduce_seconds_per_step": [e[1] for e in every],
        "allreduce_bytes": last["allreduce_bytes"] // max(last["allreduce_calls"], 1),
        "test_accuracy": accuracy,
    }


def time_allreduce(n, repeats, world):
    from mpi4py import MPI

    buf = np.ones(n, np.float32)
    times = []
    for _ in range(repeats + 5):
        world.comm.Barrier()
        start = time.perf_counter()
        world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        times.append(time.perf_counter() - start)
    times = times[5:]  # the first calls set up the connections
    return {
        "allreduce_values": n,
        "bytes": buf.nbytes,
        "ranks": world.size,
        "median_seconds": statistics.median(times),
        "min_seconds": min(times),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("cnn", "mlp"), default="cnn")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument(
        "--allreduce",
        type=int,
        default=None,
        metavar="N",
        help="time the Allreduce of N float32 values instead of training",
    )
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    world = distributed.init()
    if args.allreduce:
        if world.size < 2:
            p.error("--allreduce needs several ranks: mpirun -n 2 python bench/distributed.py ...")
        result = time_allreduce(args.allreduce, args.repeats, world)
    else:
        result = train(args, world)
    if world.rank == 0:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
