"""Max-pool 2x2 (stride 2) with argmax, float32: forward, and backward from the saved
argmax, at the pooling layers of the conv benchmark's network.

dlcore takes channels-last x (N, H, W, C) and returns flat indices into x. PyTorch's
max_pool2d(return_indices=True) is timed at its best of NCHW and channels_last (set
DLCORE_BENCH_TORCH_FORMAT to force one), its backward through
aten.max_pool2d_with_indices_backward, the same scatter from saved indices.
"""

import os

from workloads import Case
from workloads.conv import faster_of

SUITE = "pool"
IMPLS = ("dlcore", "torch")
SHAPES = ((64, 26, 26, 32), (64, 11, 11, 64))  # (N, H, W, C)
POOL = 2


def cases(quick):
    out = []
    for n, h, w, c in SHAPES[:1] if quick else SHAPES:
        params = dict(n=n, h=h, w=w, c=c)
        out.append(Case(SUITE, f"maxpool2x2 fwd {n}x{h}x{w}x{c}", dict(params, backward=False)))
        out.append(Case(SUITE, f"maxpool2x2 bwd {n}x{h}x{w}x{c}", dict(params, backward=True)))
    return out


def make(impl, case):
    import numpy as np

    p = case.params
    rng = np.random.default_rng(0)
    x = rng.standard_normal((p["n"], p["h"], p["w"], p["c"]), dtype=np.float32)
    oh, ow = p["h"] // POOL, p["w"] // POOL
    dy = rng.standard_normal((p["n"], oh, ow, p["c"]), dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        if not p["backward"]:
            return lambda: ops.maxpool2d_forward(x, pool_size=POOL)
        _, argmax = ops.maxpool2d_forward(x, pool_size=POOL)
        return lambda: ops.maxpool2d_backward(dy, argmax, x.shape)
    if impl == "torch":
        import torch

        formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
        wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
        chosen = [formats[wanted]] if wanted in formats else list(formats.values())
        return faster_of([_torch_step(torch, x, dy, p, f) for f in chosen])
    raise ValueError(impl)


def _torch_step(torch, x, dy, p, memory_format):
    import torch.nn.functional as F

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    if not p["backward"]:

        def forward():
            with torch.no_grad():
                return F.max_pool2d(tx, POOL, return_indices=True)

        return forward
    _, indices = F.max_pool2d(tx, POOL, return_indices=True)
    backward = torch.ops.aten.max_pool2d_with_indices_backward
    return lambda: backward(tdy, tx, [POOL, POOL], [POOL, POOL], [0, 0], [1, 1], False, indices)
