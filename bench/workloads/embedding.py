"""Embedding lookup, float32: forward alone and forward + backward into a dense table
gradient, at a text model's sizes (vocabulary 20,000 x 128, a batch of 64 sequences of
100 token ids, int64).

PyTorch: F.embedding with a dense weight gradient (sparse=False, its default), fresh
from torch.autograd.grad; dlcore: embedding_forward and embedding_backward.
"""

from workloads import Case

SUITE = "embedding"
IMPLS = ("dlcore", "torch")
SHAPES = ((20000, 128, 64, 100),)  # (input_dim, output_dim, batch, tokens)


def cases(quick):
    out = []
    for V, D, N, T in SHAPES:
        name = f"{V}x{D} ids {N}x{T}"
        params = dict(V=V, D=D, N=N, T=T)
        out.append(Case(SUITE, f"embedding fwd {name}", dict(params, backward=False)))
        out.append(Case(SUITE, f"embedding fwd+bwd {name}", dict(params, backward=True)))
    return out


def make(impl, case):
    import numpy as np

    p = case.params
    rng = np.random.default_rng(0)
    table = rng.standard_normal((p["V"], p["D"]), dtype=np.float32)
    idx = rng.integers(0, p["V"], (p["N"], p["T"]))
    dy = rng.standard_normal((p["N"], p["T"], p["D"]), dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        if not p["backward"]:
            return lambda: ops.embedding_forward(idx, table)

        def step():
            ops.embedding_forward(idx, table)
            return ops.embedding_backward(dy, idx, p["V"])

        return step
    if impl == "torch":
        import torch
        import torch.nn.functional as F

        tw, tidx, tdy = torch.from_numpy(table), torch.from_numpy(idx), torch.from_numpy(dy)
        if not p["backward"]:

            def forward():
                with torch.no_grad():
                    return F.embedding(tidx, tw)

            return forward
        tw.requires_grad_(True)
        return lambda: torch.autograd.grad(F.embedding(tidx, tw), [tw], tdy)
    raise ValueError(impl)
