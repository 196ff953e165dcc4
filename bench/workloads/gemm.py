"""Square SGEMM, C = A @ B, float32."""

from workloads import Case

SUITE = "gemm"
IMPLS = ("dlcore", "numpy", "torch")


def cases(quick):
    sizes = (256, 1024) if quick else (256, 512, 1024, 2048)
    return [Case(SUITE, f"sgemm {n}", {"n": n}, flops=2.0 * n**3) for n in sizes]


def make(impl, case):
    import numpy as np

    n = case.params["n"]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        return lambda: ops.gemm(a, b)
    if impl == "numpy":
        return lambda: a @ b
    if impl == "torch":
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(ta, tb)
    raise ValueError(impl)
