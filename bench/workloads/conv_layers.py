"""Conv2DTranspose, Conv1D and DepthwiseConv2D, float32, forward + backward (dx, dkernel,
dbias) at the issue's shapes: a DCGAN generator layer (64, 7, 7, 128) -> (64, 14, 14, 64),
4x4, stride 2, 'same'; Conv1D (64, 200, 64) -> 128 filters, kernel 5, 'valid'; and a
MobileNet block's depthwise 3x3 'same' over (32, 56, 56, 64), strides 1 and 2.

dlcore runs the kernels its layers run: conv2d_transpose_forward/_backward (the conv2d
backward-data and forward plans), conv2d on x seen as (N, 1, T, C) for Conv1D, and
depthwise_conv2d_forward/_backward. PyTorch is timed at its best layout:
conv_transpose2d and the depthwise conv2d (groups = channels) in NCHW and channels_last,
conv1d in NCL and as conv2d on (N, C, 1, T) channels_last, keeping the faster. Both sides
request the same gradients.
"""

import os

from workloads import Case
from workloads.conv import faster_of

SUITE = "conv_layers"
IMPLS = ("dlcore", "torch")

# Keras' 'same' for kernel 4, stride 2 crops one row and column on each side (PyTorch's
# padding=1): 7 -> (7 - 1) * 2 + 4 - 2 = 14.
TRANSPOSE = dict(n=64, h=7, w=7, c=128, oc=64, k=4, stride=2, crop=1)
CONV1D = dict(n=64, t=200, c=64, oc=128, k=5)
DEPTHWISE = dict(n=32, h=56, w=56, c=64, k=3, pad=1)


def _depthwise_out(stride):
    p = DEPTHWISE
    return (p["h"] + 2 * p["pad"] - p["k"]) // stride + 1


def cases(quick):
    p, q = TRANSPOSE, CONV1D
    oh = (p["h"] - 1) * p["stride"] + p["k"] - 2 * p["crop"]
    transpose_flops = 2.0 * p["n"] * p["h"] * p["w"] * p["c"] * p["oc"] * p["k"] ** 2
    conv1d_flops = 2.0 * q["n"] * (q["t"] - q["k"] + 1) * q["k"] * q["c"] * q["oc"]
    transpose = f"{p['n']}x{p['h']}x{p['w']}x{p['c']}->{oh}x{oh}x{p['oc']}"
    conv1d = f"{q['n']}x{q['t']}x{q['c']}->{q['oc']}"
    return [
        Case(SUITE, f"conv2d_transpose 4x4 s2 same fwd+bwd {transpose}",
             dict(kind="transpose"), flops=3 * transpose_flops),
        Case(SUITE, f"conv1d k{q['k']} fwd+bwd {conv1d}", dict(kind="conv1d"),
             flops=3 * conv1d_flops),
    ] + [
        Case(SUITE, f"depthwise 3x3 s{stride} same fwd+bwd {d['n']}x{d['h']}x{d['w']}x{d['c']}",
             dict(kind="depthwise", stride=stride),
             flops=3 * 2.0 * d["n"] * _depthwise_out(stride) ** 2 * d["c"] * d["k"] ** 2)
        for d in (DEPTHWISE,) for stride in (1, 2)
    ]  # fmt: skip


def make(impl, case):
    import numpy as np

    rng = np.random.default_rng(0)
    if case.params["kind"] == "transpose":
        p = TRANSPOSE
        oh = (p["h"] - 1) * p["stride"] + p["k"] - 2 * p["crop"]
        x = rng.standard_normal((p["n"], p["h"], p["w"], p["c"]), dtype=np.float32)
        k = rng.standard_normal((p["k"], p["k"], p["oc"], p["c"]), dtype=np.float32) * 0.05
        dy = rng.standard_normal((p["n"], oh, oh, p["oc"]), dtype=np.float32)
    elif case.params["kind"] == "depthwise":
        p = dict(DEPTHWISE, oc=DEPTHWISE["c"], stride=case.params["stride"])
        o = _depthwise_out(p["stride"])
        x = rng.standard_normal((p["n"], p["h"], p["w"], p["c"]), dtype=np.float32)
        k = rng.standard_normal((p["k"], p["k"], p["c"], 1), dtype=np.float32) * 0.3
        dy = rng.standard_normal((p["n"], o, o, p["c"]), dtype=np.float32)
    else:
        p = CONV1D
        x = rng.standard_normal((p["n"], p["t"], p["c"]), dtype=np.float32)
        k = rng.standard_normal((p["k"], p["c"], p["oc"]), dtype=np.float32) * 0.05
        dy = rng.standard_normal((p["n"], p["t"] - p["k"] + 1, p["oc"]), dtype=np.float32)
    b = rng.standard_normal(p["oc"], dtype=np.float32)
    kind = case.params["kind"], p.get("stride")
    if impl == "dlcore":
        return _dlcore(kind, x, k, b, dy)
    if impl == "torch":
        return _torch(kind, x, k, b, dy)
    raise ValueError(impl)


def _dlcore(kind, x, k, b, dy):
    from dlcore import ops

    kind, stride = kind
    if kind == "depthwise":
        window = dict(strides=stride, padding=DEPTHWISE["pad"])

        def step():
            ops.depthwise_conv2d_forward(x, k, b, **window)
            return ops.depthwise_conv2d_backward(dy, x, k, **window)

        return step
    if kind == "transpose":
        window = dict(strides=TRANSPOSE["stride"], padding=TRANSPOSE["crop"])

        def step():
            ops.conv2d_transpose_forward(x, k, b, **window)
            return ops.conv2d_transpose_backward(dy, x, k, **window)

        return step
    n, t, c = x.shape  # Conv1D's path: conv2d on (N, 1, T, C), kernel (1, K, C, OC)
    x4, k4, dy4 = x.reshape(n, 1, t, c), k[None], dy[:, None]

    def step():
        ops.conv2d_forward(x4, k4, b)
        return ops.conv2d_backward(dy4, x4, k4)

    return step


def _torch_step(torch, kind, x, k, b, dy, layout):
    """fwd+bwd in one PyTorch layout: NCHW or channels_last for conv_transpose2d; NCL
    conv1d, or conv2d on (N, C, 1, T) channels_last, for Conv1D."""
    import torch.nn.functional as F

    def to(a, perm, unit_height=False):
        t = torch.from_numpy(a).permute(*perm)
        return (t[:, :, None] if unit_height else t).contiguous(memory_format=layout)

    kind, stride = kind
    tb = torch.from_numpy(b).clone()
    if kind == "depthwise":  # weight (C, 1, KH, KW): groups = C
        tx, tk, tdy = to(x, (0, 3, 1, 2)), to(k, (2, 3, 0, 1)), to(dy, (0, 3, 1, 2))
        groups = x.shape[3]

        def forward():
            return F.conv2d(tx, tk, tb, stride, DEPTHWISE["pad"], 1, groups)

    elif kind == "transpose":
        tx, tk, tdy = to(x, (0, 3, 1, 2)), to(k, (3, 2, 0, 1)), to(dy, (0, 3, 1, 2))

        def forward():
            return F.conv_transpose2d(tx, tk, tb, TRANSPOSE["stride"], TRANSPOSE["crop"])

    elif layout is torch.contiguous_format:
        tx, tk, tdy = to(x, (0, 2, 1)), to(k, (2, 1, 0)), to(dy, (0, 2, 1))

        def forward():
            return F.conv1d(tx, tk, tb)

    else:
        tx, tk, tdy = (to(x, (0, 2, 1), True), to(k, (2, 1, 0), True),
                       to(dy, (0, 2, 1), True))  # fmt: skip

        def forward():
            return F.conv2d(tx, tk, tb)

    inputs = [tx, tk, tb]
    for t in inputs:
        t.requires_grad_(True)
    return lambda: torch.autograd.grad(forward(), inputs, tdy)  # fresh gradients, as dlcore


def _torch(kind, x, k, b, dy):
    import torch

    layouts = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
    chosen = [layouts[wanted]] if wanted in layouts else list(layouts.values())
    return faster_of([_torch_step(torch, kind, x, k, b, dy, f) for f in chosen])
