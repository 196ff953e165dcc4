"""AveragePooling2D 2x2 (stride 2) and GlobalAveragePooling2D, float32, forward +
backward (dx), on (64, 26, 26, 32), the first pooling layer of the conv benchmark's
network.

dlcore runs avgpool2d_forward/_backward and global_avgpool_forward/_backward on
channels-last x. PyTorch is timed at its best of NCHW and channels_last (set
DLCORE_BENCH_TORCH_FORMAT to force one): avg_pool2d, and a mean over (H, W), with
autograd's input gradient.
"""

import os

from workloads import Case
from workloads.conv import faster_of

SUITE = "avgpool"
IMPLS = ("dlcore", "torch")
SHAPE = (64, 26, 26, 32)  # (N, H, W, C)
POOL = 2


def cases(quick):
    shape = "x".join(map(str, SHAPE))
    return [
        Case(SUITE, f"avgpool2x2 fwd+bwd {shape}", dict(kind="avgpool")),
        Case(SUITE, f"global avgpool fwd+bwd {shape}", dict(kind="global")),
    ]


def make(impl, case):
    import numpy as np

    n, h, w, c = SHAPE
    kind = case.params["kind"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE, dtype=np.float32)
    dy_shape = (n, h // POOL, w // POOL, c) if kind == "avgpool" else (n, c)
    dy = rng.standard_normal(dy_shape, dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        if kind == "avgpool":

            def step():
                ops.avgpool2d_forward(x, pool_size=POOL)
                return ops.avgpool2d_backward(dy, x.shape, pool_size=POOL)

            return step

        def step():
            ops.global_avgpool_forward(x)
            return ops.global_avgpool_backward(dy, x.shape)

        return step
    if impl == "torch":
        import torch

        formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
        wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
        chosen = [formats[wanted]] if wanted in formats else list(formats.values())
        return faster_of([_torch_step(torch, kind, x, dy, f) for f in chosen])
    raise ValueError(impl)


def _torch_step(torch, kind, x, dy, memory_format):
    import torch.nn.functional as F

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tx.requires_grad_(True)
    if kind == "avgpool":
        tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
        return lambda: torch.autograd.grad(F.avg_pool2d(tx, POOL), [tx], tdy)
    tdy = torch.from_numpy(dy)
    return lambda: torch.autograd.grad(tx.mean((2, 3)), [tx], tdy)
