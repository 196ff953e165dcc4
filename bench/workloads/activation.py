"""Activation functions, float32, forward + backward (dx) on 4M elements, (64, 128, 512)
as a transformer's feed-forward layer makes them: the kinds whose transcendental
functions cost more than a memory pass.

dlcore: activation_forward and activation_backward (from x, or y for tanh); PyTorch: its
functional form and torch.autograd.grad.
"""

from workloads import Case

SUITE = "activation"
IMPLS = ("dlcore", "torch")
SHAPE = (64, 128, 512)
# name: (dlcore kind, dlcore parameters, torch function name, torch keyword arguments)
KINDS = {
    "gelu": ("gelu", {}, "gelu", {}),
    "gelu_tanh": ("gelu", {"approximate": True}, "gelu", {"approximate": "tanh"}),
    "silu": ("silu", {}, "silu", {}),
    "mish": ("mish", {}, "mish", {}),
    "elu": ("elu", {}, "elu", {}),
    "tanh": ("tanh", {}, "tanh", {}),
}


def cases(quick):
    names = list(KINDS)[:2] if quick else list(KINDS)
    size = "x".join(map(str, SHAPE))
    return [Case(SUITE, f"{n} fwd+bwd {size}", dict(kind=n)) for n in names]


def make(impl, case):
    import numpy as np

    kind, params, torch_name, torch_kw = KINDS[case.params["kind"]]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE, dtype=np.float32) * 2
    dy = rng.standard_normal(SHAPE, dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        def step():
            y = ops.activation_forward(x, kind, **params)
            return ops.activation_backward(dy, kind, x=x, y=y, **params)

        return step
    if impl == "torch":
        import torch

        fn = getattr(torch.nn.functional, torch_name)
        tx, tdy = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)
        return lambda: torch.autograd.grad(fn(tx, **torch_kw), [tx], tdy)
    raise ValueError(impl)
