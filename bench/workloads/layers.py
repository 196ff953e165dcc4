"""Layers, float32, forward + backward at the layer level: what a training step pays for
the layer, not the kernel alone.

dlcore: the layer called on a Tensor (training=True), then ``backward(dy)`` through the
autograd engine to the input and every trainable weight (fresh gradients each repeat,
as torch.autograd.grad gives); BatchNormalization also moves its statistics. PyTorch:
the same maths through torch.nn.functional with torch.autograd.grad over the input and
the weights; F.batch_norm updates its running statistics and is timed at its best of
NCHW and channels_last (DLCORE_BENCH_TORCH_FORMAT forces one).
"""

import os

from workloads import Case
from workloads.conv import faster_of

SUITE = "layers"
IMPLS = ("dlcore", "torch")
# name: (Keras-style description, input shape)
CASES = {
    "BatchNormalization": ("train", (64, 28, 28, 64)),
    "LayerNormalization": ("train", (64, 128, 512)),
    "Embedding": ("20000x128", (64, 100)),
}
VOCAB, DIM = 20000, 128


def cases(quick):
    return [
        Case(SUITE, f"{name} fwd+bwd {'x'.join(map(str, shape))}", dict(layer=name, shape=shape))
        for name, (_, shape) in CASES.items()
    ]


def make(impl, case):
    import numpy as np

    name, shape = case.params["layer"], tuple(case.params["shape"])
    rng = np.random.default_rng(0)
    if name == "Embedding":
        x = rng.integers(0, VOCAB, shape)
        table = rng.standard_normal((VOCAB, DIM), dtype=np.float32)
        dy = rng.standard_normal((*shape, DIM), dtype=np.float32)
        weights = [table]
    else:
        C = shape[-1]
        x = rng.standard_normal(shape, dtype=np.float32) * 2 + 0.5
        dy = rng.standard_normal(shape, dtype=np.float32)
        weights = [(1 + 0.1 * rng.standard_normal(C)).astype(np.float32),
                   (0.1 * rng.standard_normal(C)).astype(np.float32)]  # fmt: skip
    if impl == "dlcore":
        return _dlcore(name, x, dy, weights)
    if impl == "torch":
        import torch

        if name == "BatchNormalization":
            formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
            wanted = os.environ.get("DLCORE_BENCH_TORCH_FORMAT", "best")
            chosen = [formats[wanted]] if wanted in formats else list(formats.values())
            return faster_of([_torch_batch_norm(torch, x, dy, weights, f) for f in chosen])
        return _torch(torch, name, x, dy, weights)
    raise ValueError(impl)


def _dlcore(name, x, dy, weights):
    from dlcore import Tensor, layers

    if name == "Embedding":
        layer = layers.Embedding(VOCAB, DIM)
        inputs = x
    else:
        layer = getattr(layers, name)()
        inputs = Tensor(x, requires_grad=True)
    layer.build(x.shape)
    layer.set_weights(weights + layer.get_weights()[len(weights) :])
    params = layer.trainable_weights + ([inputs] if isinstance(inputs, Tensor) else [])

    def step():
        for p in params:
            p.grad = None
        layer(inputs, training=True).backward(dy)
        return [p.grad for p in params]

    return step


def _torch_batch_norm(torch, x, dy, weights, memory_format):
    import torch.nn.functional as F

    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
    tg, tb = (torch.from_numpy(w) for w in weights)
    running_mean, running_var = torch.zeros_like(tg), torch.ones_like(tg)
    for t in (tx, tg, tb):
        t.requires_grad_(True)

    def step():
        y = F.batch_norm(tx, running_mean, running_var, tg, tb, True, 0.01, 1e-3)
        return torch.autograd.grad(y, [tx, tg, tb], tdy)

    return step


def _torch(torch, name, x, dy, weights):
    import torch.nn.functional as F

    tw = [torch.from_numpy(w).requires_grad_(True) for w in weights]
    tdy = torch.from_numpy(dy)
    if name == "Embedding":
        tidx = torch.from_numpy(x)
        return lambda: torch.autograd.grad(F.embedding(tidx, tw[0]), tw, tdy)
    tx = torch.from_numpy(x).requires_grad_(True)
    shape = (x.shape[-1],)
    return lambda: torch.autograd.grad(F.layer_norm(tx, shape, *tw, 1e-3), [tx, *tw], tdy)
