"""Benchmark workloads. Each module defines:

    SUITE: str                       the name --filter matches against (with the case name)
    IMPLS: tuple[str, ...]           implementations it has ("dlcore", "numpy", "torch",
                                     "onnxruntime", "keras-jax", "keras-tf")
    ONE_PROCESS_PER_CASE: bool       optional: run.py starts a worker per case, not per suite
    METRICS: dict                    optional: extra name -> (label, unit), shown as rows
    cases(quick: bool) -> list[Case] (a Case's `impls`, when given, narrows IMPLS)
    make(impl: str, case: Case) -> Callable[[], object]
        builds inputs and returns the zero-argument function to time. It runs inside a
        worker process that has imported only that implementation's library.
or, for cases that time themselves (a training epoch):
    measure(impl, case, repeats) -> {"seconds": [...], "extra": {name: value}}
"""

import pkgutil
from dataclasses import dataclass, field
from importlib import import_module

# Every module in this package is a workload, in this order first, then by name.
ORDER = ("gemm", "conv", "pool", "lstm", "train")
MODULES = sorted(
    (m.name for m in pkgutil.iter_modules(__path__)),
    key=lambda name: (ORDER.index(name) if name in ORDER else len(ORDER), name),
)


@dataclass(frozen=True)
class Case:
    suite: str
    name: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    flops: float = 0.0  # floating-point operations per call (0: not a FLOP-bound case)
    impls: tuple = field(default=(), compare=False)  # () = all of the workload's IMPLS

    @property
    def key(self):
        return f"{self.suite}/{self.name}"


def load(name):
    return import_module(f"workloads.{name}")


def all_workloads():
    return [load(name) for name in MODULES]


def torch_sequence_call(module, x, dy, backward):
    """What to time of a torch recurrent module (batch_first) on the NumPy x (N, T, I):
    its forward under no_grad, or forward and backward with the gradients of x and of
    every weight, dy (NumPy, the output's shape) the incoming gradient."""
    import torch

    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    if not backward:

        def forward():
            with torch.no_grad():
                return module(tx)

        return forward
    tx.requires_grad_(True)

    def forward_backward():
        for w in module.parameters():
            w.grad = None
        tx.grad = None
        y, _ = module(tx)
        y.backward(tdy)
        return tx.grad

    return forward_backward
