"""GRU over a sequence, float32, against torch.nn.GRU(batch_first=True).

torch's GRU is Keras' reset_after=True formulation (gate order r, z, n against Keras'
z, r, h), so both sides run the same cell on the same weights. Two cases per shape
(N, I, U, T): the forward alone (torch under no_grad; dlcore's gru_forward, which also
saves the state its backward needs) and forward + backward with the gradients of x and
of every weight (the incoming gradient is dy for every step; initial states are zeros).
"""

from workloads import Case, torch_sequence_call

SUITE = "gru"
IMPLS = ("dlcore", "torch")

SHAPES = [(64, 128, 256, 50), (1, 128, 256, 50), (32, 50, 50, 50)]


def cases(quick):
    shapes = SHAPES[:2] if quick else SHAPES
    out = []
    for N, I, U, T in shapes:
        flops = 2.0 * N * T * 3 * U * (I + U)
        params = {"N": N, "I": I, "U": U, "T": T}
        name = f"{N}x{I}x{U}x{T}"  # N x I x U x T
        out.append(Case(SUITE, f"fwd {name}", dict(params, backward=False), flops=flops))
        out.append(Case(SUITE, f"fwd+bwd {name}", dict(params, backward=True), flops=3 * flops))
    return out


def _inputs(N, I, U, T):
    import numpy as np

    rng = np.random.default_rng(0)
    scale = 1.0 / np.sqrt(U)
    x = rng.standard_normal((N, T, I), dtype=np.float32)
    kernel = rng.uniform(-scale, scale, (I, 3 * U)).astype(np.float32)
    rec = rng.uniform(-scale, scale, (U, 3 * U)).astype(np.float32)
    bias = rng.uniform(-scale, scale, (2, 3 * U)).astype(np.float32)
    dy = rng.standard_normal((N, T, U), dtype=np.float32)
    return x, kernel, rec, bias, dy


def _torch_order(w, U):
    """Keras' gate columns z, r, h as torch's rows r, z, n (transposed)."""
    import numpy as np

    return np.ascontiguousarray(
        np.concatenate([w[..., U : 2 * U], w[..., :U], w[..., 2 * U :]], -1).T
    )


def make(impl, case):
    p = case.params
    U = p["U"]
    x, kernel, rec, bias, dy = _inputs(p["N"], p["I"], U, p["T"])
    if impl == "dlcore":
        from dlcore import ops

        if not p["backward"]:
            return lambda: ops.gru_forward(x, None, kernel, rec, bias)

        def forward_backward():
            cache = ops.gru_forward(x, None, kernel, rec, bias)[2]
            return ops.gru_backward(dy, None, cache)

        return forward_backward
    if impl == "torch":
        import torch

        gru = torch.nn.GRU(p["I"], U, batch_first=True)
        with torch.no_grad():
            gru.weight_ih_l0.copy_(torch.from_numpy(_torch_order(kernel, U)))
            gru.weight_hh_l0.copy_(torch.from_numpy(_torch_order(rec, U)))
            gru.bias_ih_l0.copy_(torch.from_numpy(_torch_order(bias[0], U)))
            gru.bias_hh_l0.copy_(torch.from_numpy(_torch_order(bias[1], U)))
        return torch_sequence_call(gru, x, dy, p["backward"])
    raise ValueError(impl)
