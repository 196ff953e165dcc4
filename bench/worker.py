"""Times one implementation's cases in a process of its own; prints JSON to stdout.

Run by bench/run.py, which sets OMP_NUM_THREADS (and the BLAS equivalents) before this
process starts, so every library sees the thread count from its first import. The
peers set their own thread counts here, before their first operation: TensorFlow's
intra- and inter-op pools; JAX (whose XLA CPU pool has no setting) by this process's CPU
affinity, which XLA sizes its pool from; ONNX Runtime per session (workloads/predict.py).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import Case, load


def set_threads(impl, threads):
    if impl == "dlcore":
        from dlcore import ops

        ops.set_num_threads(threads)
    elif impl == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_grad_enabled(True)
    elif impl in KERAS_BACKENDS:
        os.environ["KERAS_BACKEND"] = KERAS_BACKENDS[impl]
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if impl == "keras-jax" and threads < len(os.sched_getaffinity(0)):
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
        if impl == "keras-tf":
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras  # noqa: F401  (imported before any memory or time baseline)
    elif impl == "onnxruntime":
        import onnxruntime  # noqa: F401


KERAS_BACKENDS = {"keras-jax": "jax", "keras-tf": "tensorflow"}


def time_call(fn, repeats, min_time):
    """Per-call seconds for `repeats` repeats, each long enough to time reliably."""
    fn()  # warm-up: first-touch allocations, lazy initialisation
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(min_time / once))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.05)
    p.add_argument("cases", help="JSON list of [suite, name, params]")
    args = p.parse_args()
    set_threads(args.impl, args.threads)
    results = {}
    for suite, name, params in json.loads(args.cases):
        case = Case(suite, name, params)
        workload = load(suite)
        if hasattr(workload, "measure"):  # whole training runs time themselves
            results[case.key] = workload.measure(args.impl, case, args.repeats)
        else:
            fn = workload.make(args.impl, case)
            results[case.key] = {"seconds": time_call(fn, args.repeats, args.min_time)}
            del fn
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
