"""SimpleRNN (tanh) over a sequence, float32, against torch.nn.RNN(batch_first=True).

Two cases per shape (N, I, U, T): the forward alone (torch under no_grad) and forward +
backward with the gradients of x and of every weight (the incoming gradient is dy for
every step; initial states are zeros). torch keeps two biases; its hidden bias is zero.
"""

from workloads import Case, torch_sequence_call

SUITE = "simple_rnn"
IMPLS = ("dlcore", "torch")

SHAPES = [(64, 128, 256, 50), (1, 128, 256, 50)]


def cases(quick):
    shapes = SHAPES[:1] if quick else SHAPES
    out = []
    for N, I, U, T in shapes:
        flops = 2.0 * N * T * U * (I + U)
        params = {"N": N, "I": I, "U": U, "T": T}
        name = f"{N}x{I}x{U}x{T}"  # N x I x U x T
        out.append(Case(SUITE, f"fwd {name}", dict(params, backward=False), flops=flops))
        out.append(Case(SUITE, f"fwd+bwd {name}", dict(params, backward=True), flops=3 * flops))
    return out


def make(impl, case):
    import numpy as np

    p = case.params
    N, I, U, T = p["N"], p["I"], p["U"], p["T"]
    rng = np.random.default_rng(0)
    scale = 1.0 / np.sqrt(U)
    x = rng.standard_normal((N, T, I), dtype=np.float32)
    kernel = rng.uniform(-scale, scale, (I, U)).astype(np.float32)
    rec = rng.uniform(-scale, scale, (U, U)).astype(np.float32)
    bias = rng.uniform(-scale, scale, U).astype(np.float32)
    dy = rng.standard_normal((N, T, U), dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        if not p["backward"]:
            return lambda: ops.simple_rnn_forward(x, None, kernel, rec, bias)

        def forward_backward():
            cache = ops.simple_rnn_forward(x, None, kernel, rec, bias)[2]
            return ops.simple_rnn_backward(dy, None, cache)

        return forward_backward
    if impl == "torch":
        import torch

        rnn = torch.nn.RNN(I, U, batch_first=True)
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            rnn.weight_hh_l0.copy_(torch.from_numpy(rec.T.copy()))
            rnn.bias_ih_l0.copy_(torch.from_numpy(bias))
            rnn.bias_hh_l0.zero_()
        return torch_sequence_call(rnn, x, dy, p["backward"])
    raise ValueError(impl)
