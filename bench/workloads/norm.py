"""Batch and layer normalisation, float32, training mode: forward alone and forward +
backward with every gradient (dx, dgamma, dbeta), at a conv layer's activations and at a
transformer block's.

dlcore normalises over the last axis of channels-last x. PyTorch's F.batch_norm (which
also updates its running statistics, as the Keras layer will) is timed at its best of
NCHW and channels_last (DLCORE_BENCH_TORCH_FORMAT forces one); F.layer_norm over the last
axis needs no choice. Gradients come back fresh on both sides (torch.autograd.grad).
"""

import os

from workloads import Case
from workloads.conv import faster_of

SUITE = "norm"
IMPLS = ("dlcore", "torch")
BATCH_SHAPES = ((64, 28, 28, 64), (64, 14, 14, 128))  # (N, H, W, C)
LAYER_SHAPES = ((64, 128, 512),)  # (N, T, C)


def cases(quick):
    shapes = [("batch", s) for s in (BATCH_SHAPES[:1] if quick else BATCH_SHAPES)]
    shapes += [("layer", s) for s in LAYER_SHAPES]
    out = []
    for kind, shape in shapes:
        for backward in (False, True):
            what = "fwd+bwd" if backward else "fwd"
            name = f"{kind}norm {what} {'x'.join(map(str, shape))}"
            out.append(Case(SUITE, name, dict(kind=kind, shape=shape, backward=backward)))
    return out


def make(impl, case):
    import numpy as np

    p = case.params
    rng = np.random.default_rng(0)
    shape, C = tuple(p["shape"]), p["shape"][-1]
    x = rng.standard_normal(shape, dtype=np.float32) * 2 + 0.5
    dy = rng.standard_normal(shape, dtype=np.float32)
    gamma = (1 + 0.1 * rng.standard_normal(C)).astype(np.float32)
    beta = (0.1 * rng.standard_normal(C)).astype(np.float32)
    if impl == "dlcore":
        return _dlcore(x, dy, gamma, beta, p)
    if impl == "torch":
        import torch

        if p["kind"] == "layer":
            return _torch_layer(torch, x, dy, gamma, beta, p)
        formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
        wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
        chosen = [formats[wanted]] if wanted in formats else list(formats.values())
        return faster_of([_torch_batch(torch, x, dy, gamma, beta, p, f) for f in chosen])
    raise ValueError(impl)


def _dlcore(x, dy, gamma, beta, p):
    from dlcore import ops

    if p["kind"] == "batch":
        if not p["backward"]:
            return lambda: ops.batch_norm_forward(x, gamma, beta, epsilon=1e-3)

        def batch_step():
            _, mean, _, inv_std = ops.batch_norm_forward(x, gamma, beta, epsilon=1e-3)
            return ops.batch_norm_backward(dy, x, mean, inv_std, gamma)

        return batch_step
    if not p["backward"]:
        return lambda: ops.layer_norm_forward(x, gamma, beta, epsilon=1e-3)

    def layer_step():
        _, mean, inv_std = ops.layer_norm_forward(x, gamma, beta, epsilon=1e-3)
        return ops.layer_norm_backward(dy, x, mean, inv_std, gamma)

    return layer_step


def _torch_batch(torch, x, dy, gamma, beta, p, memory_format):
    import torch.nn.functional as F

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tg, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
    running_mean, running_var = torch.zeros_like(tg), torch.ones_like(tg)

    def forward():
        return F.batch_norm(tx, running_mean, running_var, tg, tb, True, 0.01, 1e-3)

    if not p["backward"]:

        def no_grad_forward():
            with torch.no_grad():
                return forward()

        return no_grad_forward
    for t in (tx, tg, tb):
        t.requires_grad_(True)
    return lambda: torch.autograd.grad(forward(), [tx, tg, tb], tdy)


def _torch_layer(torch, x, dy, gamma, beta, p):
    import torch.nn.functional as F

    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    tg, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
    shape = (x.shape[-1],)
    if not p["backward"]:

        def forward():
            with torch.no_grad():
                return F.layer_norm(tx, shape, tg, tb, 1e-3)

        return forward
    for t in (tx, tg, tb):
        t.requires_grad_(True)
    return lambda: torch.autograd.grad(F.layer_norm(tx, shape, tg, tb, 1e-3), [tx, tg, tb], tdy)
