"""Benchmark workloads. Each module defines:

    SUITE: str                       the name --filter matches against (with the case name)
    IMPLS: tuple[str, ...]           implementations it has ("dlcore", "numpy", "torch")
    cases(quick: bool) -> list[Case]
    make(impl: str, case: Case) -> Callable[[], object]
        builds inputs and returns the zero-argument function to time. It runs inside a
        worker process that has imported only that implementation's library.
"""

from dataclasses import dataclass, field
from importlib import import_module

MODULES = ("gemm",)


@dataclass(frozen=True)
class Case:
    suite: str
    name: str
    params: dict = field(default_factory=dict, hash=False, compare=False)
    flops: float = 0.0  # floating-point operations per call (0: not a FLOP-bound case)

    @property
    def key(self):
        return f"{self.suite}/{self.name}"


def load(name):
    return import_module(f"workloads.{name}")


def all_workloads():
    return [load(name) for name in MODULES]
