"""Framework time per training step of dlcore: the wall time that is not spent in kernels.

The models and data of train.py: the CNN for its first `steps` batches (300, or 100 with
--quick), the MLP and the LSTM for a whole epoch. After a short warm-up fit, each repeat
fits the same steps twice, one after the other: once plainly, timing the wall clock,
and once inside `dlcore.profile()`, which adds up the time of every kernel call (from
the Python call of `dlcore.ops.<kernel>` to its return, so the bindings' argument
checks count as kernel time). Per step:

    framework = (plain wall - profiled kernel time) / steps

The wall time comes from the plain fit because the profiler's timing wrappers cost time
of their own (their cost is the extra `profiled_wall_per_step_s` minus
`wall_per_step_s`). The framework time is everything else a step does: autograd
bookkeeping, the layers', loss's, metrics' and optimizer's Python and NumPy, slicing the
batches, and fit's per-epoch work spread over the steps.

    python bench/run.py --filter overhead/ --impls dlcore --threads 2 --rounds 5
"""

import time

from workloads import Case

SUITE = "overhead"
IMPLS = ("dlcore",)


def cases(quick):
    out = [Case(SUITE, "cnn step", {"model": "cnn", "steps": 100 if quick else 300})]
    if not quick:
        out += [
            Case(SUITE, "mlp step", {"model": "mlp", "steps": None}),
            Case(SUITE, "lstm step", {"model": "lstm", "steps": None}),
        ]
    return out


def measure(impl, case, repeats):
    import statistics

    import dlcore
    from workloads.train import SEED, SMALL, SPEC, data, dlcore_model

    model, steps = case.params["model"], case.params["steps"]
    batch = SPEC[model]["batch"]
    x, y, _, _ = data(model)
    if SMALL:  # the self-test's size
        steps = max(1, SMALL // batch)
    if steps:
        x, y = x[: steps * batch], y[: steps * batch]
    steps = -(-len(x) // batch)
    net = dlcore_model(model)

    def fit(n):
        net.fit(x[:n], y[:n], batch_size=batch, epochs=1, verbose=0, seed=SEED)

    fit(min(10 * batch, len(x)))  # warm-up: first-touch allocations, workspaces, lazy builds
    framework, wall, kernels, profiled, calls = [], [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        fit(len(x))
        wall.append((time.perf_counter() - start) / steps)
        with dlcore.profile(print_table=False) as prof:
            fit(len(x))
        kernels.append(sum(s[1] for s in prof.stats.values()) / steps)
        profiled.append(prof.wall / steps)
        calls.append(sum(s[0] for s in prof.stats.values()) / steps)
        framework.append(wall[-1] - kernels[-1])
    return {
        "seconds": framework,
        "extra": {
            "wall_per_step_s": statistics.median(wall),
            "kernels_per_step_s": statistics.median(kernels),
            "profiled_wall_per_step_s": statistics.median(profiled),
            "kernel_calls_per_step": statistics.median(calls),
        },
    }
