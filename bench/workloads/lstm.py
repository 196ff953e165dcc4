"""LSTM over a sequence, float32, against torch.nn.LSTM(batch_first=True).

Two cases per shape (N, I, U, T): the forward alone (torch under no_grad; dlcore's
lstm_forward, which also saves the state its backward needs) and forward + backward
with the gradients of x and of every weight (the incoming gradient is dy for every step;
initial states are zeros on both sides).
"""

from workloads import Case

SUITE = "lstm"
IMPLS = ("dlcore", "torch")

SHAPES = [(64, 128, 256, 50), (1, 128, 256, 50), (32, 512, 512, 20), (32, 50, 50, 50)]


def cases(quick):
    shapes = SHAPES[:2] if quick else SHAPES
    out = []
    for N, I, U, T in shapes:
        flops = 2.0 * N * T * 4 * U * (I + U)
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
    kernel = (rng.uniform(-scale, scale, (I, 4 * U))).astype(np.float32)
    rec = (rng.uniform(-scale, scale, (U, 4 * U))).astype(np.float32)
    bias = (rng.uniform(-scale, scale, 4 * U)).astype(np.float32)
    dy = rng.standard_normal((N, T, U), dtype=np.float32)
    return x, kernel, rec, bias, dy


def make(impl, case):
    p = case.params
    x, kernel, rec, bias, dy = _inputs(p["N"], p["I"], p["U"], p["T"])
    if impl == "dlcore":
        from dlcore import ops

        if not p["backward"]:
            return lambda: ops.lstm_forward(x, None, None, kernel, rec, bias)

        def forward_backward():
            cache = ops.lstm_forward(x, None, None, kernel, rec, bias)[3]
            return ops.lstm_backward(dy, None, None, cache)

        return forward_backward
    if impl == "torch":
        import torch

        lstm = torch.nn.LSTM(p["I"], p["U"], batch_first=True)
        with torch.no_grad():  # the same weights: torch keeps W^T, and two biases
            lstm.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
            lstm.weight_hh_l0.copy_(torch.from_numpy(rec.T))
            lstm.bias_ih_l0.copy_(torch.from_numpy(bias))
            lstm.bias_hh_l0.zero_()
        tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
        if not p["backward"]:

            def forward():
                with torch.no_grad():
                    return lstm(tx)

            return forward
        tx.requires_grad_(True)

        def forward_backward():
            for w in lstm.parameters():
                w.grad = None
            tx.grad = None
            y, _ = lstm(tx)
            y.backward(tdy)
            return tx.grad

        return forward_backward
    raise ValueError(impl)
