"""Conv2D 3x3, float32, forward alone and forward + backward, at the shapes of a small
MNIST/ImageNet-style network.

dlcore takes channels-last x (N, H, W, C) and kernel (KH, KW, C, OC). PyTorch is timed
at its best: in NCHW and in channels_last, keeping the faster (set
DLCORE_BENCH_TORCH_FORMAT=nchw or channels_last to force one); the data is converted to
its layout before timing. Both sides compute the same gradients: the 1-channel layer is
a first layer, so its input gradient is requested on neither side.
"""

import os
import time

from workloads import Case

SUITE = "conv"
IMPLS = ("dlcore", "torch")

# (N, H, W, C, OC, padding, need_dx)
SHAPES = (
    (64, 28, 28, 1, 32, 0, False),
    (64, 26, 26, 32, 64, 0, True),
    (32, 56, 56, 64, 64, 1, True),
    (16, 28, 28, 128, 128, 1, True),
)
KH = KW = 3


def _forward_flops(n, h, w, c, oc, pad):
    oh, ow = h + 2 * pad - KH + 1, w + 2 * pad - KW + 1
    return 2.0 * n * oh * ow * KH * KW * c * oc


def cases(quick):
    out = []
    for n, h, w, c, oc, pad, need_dx in SHAPES[:2] if quick else SHAPES:
        flops = _forward_flops(n, h, w, c, oc, pad)
        params = dict(n=n, h=h, w=w, c=c, oc=oc, pad=pad, need_dx=need_dx)
        shape = f"{n}x{h}x{w}x{c}->{oc}" + (f" p{pad}" if pad else "")
        out.append(Case(SUITE, f"fwd {shape}", dict(params, backward=False), flops=flops))
        # forward, dkernel (and dx): one GEMM-sized product each; dbias is negligible
        grads = "dk,db" + (",dx" if need_dx else "")
        out.append(
            Case(
                SUITE,
                f"fwd+bwd({grads}) {shape}",
                dict(params, backward=True),
                flops=flops * (3 if need_dx else 2),
            )
        )
    return out


def make(impl, case):
    import numpy as np

    p = case.params
    rng = np.random.default_rng(0)
    x = rng.standard_normal((p["n"], p["h"], p["w"], p["c"]), dtype=np.float32)
    k = rng.standard_normal((KH, KW, p["c"], p["oc"]), dtype=np.float32) * 0.1
    b = rng.standard_normal(p["oc"], dtype=np.float32)
    oh, ow = p["h"] + 2 * p["pad"] - KH + 1, p["w"] + 2 * p["pad"] - KW + 1
    dy = rng.standard_normal((p["n"], oh, ow, p["oc"]), dtype=np.float32)
    if impl == "dlcore":
        return _dlcore(x, k, b, dy, p)
    if impl == "torch":
        return _torch(x, k, b, dy, p)
    raise ValueError(impl)


def _dlcore(x, k, b, dy, p):
    from dlcore import ops

    pad = p["pad"]
    if not p["backward"]:
        return lambda: ops.conv2d_forward(x, k, b, padding=pad)

    def step():
        ops.conv2d_forward(x, k, b, padding=pad)
        return ops.conv2d_backward(dy, x, k, padding=pad, need_dx=p["need_dx"])

    return step


def _torch_step(torch, x, k, b, dy, p, memory_format):
    import torch.nn.functional as F

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tk = torch.from_numpy(k).permute(3, 2, 0, 1).contiguous(memory_format=memory_format)
    tb = torch.from_numpy(b)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    pad = p["pad"]
    if not p["backward"]:

        def forward():
            with torch.no_grad():
                return F.conv2d(tx, tk, tb, padding=pad)

        return forward
    tx.requires_grad_(p["need_dx"])
    tk.requires_grad_(True)
    tb.requires_grad_(True)
    inputs = [tx, tk, tb] if p["need_dx"] else [tk, tb]

    def step():
        y = F.conv2d(tx, tk, tb, padding=pad)
        return torch.autograd.grad(y, inputs, tdy)  # fresh gradients, as dlcore returns

    return step


def _seconds(fn, calls=3):
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def faster_of(steps):
    """The fastest of several ways to do the same thing, by a short trial alternating
    between them twice against the noise (used for torch's two memory formats)."""
    if len(steps) == 1:
        return steps[0]
    trials = [[] for _ in steps]
    for _ in range(2):
        for t, step in zip(trials, steps):
            t.append(_seconds(step))
    best = [min(t) for t in trials]
    return steps[best.index(min(best))]


def _torch(x, k, b, dy, p):
    import torch

    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
    chosen = [formats[wanted]] if wanted in formats else list(formats.values())
    return faster_of([_torch_step(torch, x, k, b, dy, p, f) for f in chosen])
