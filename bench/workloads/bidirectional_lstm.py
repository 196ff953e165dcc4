"""Bidirectional LSTM over a sequence, float32, against
torch.nn.LSTM(batch_first=True, bidirectional=True).

dlcore runs what its Bidirectional layer runs: the LSTM kernel forwards over x and
backwards over a reversed copy of x, the outputs concatenated (N, T, 2U); forward +
backward adds both backward kernels, the reversals of the incoming gradient and the sum
of both gradients of x. The incoming gradient is dy for every step of both directions;
the gradients of x and of every weight are requested on both sides.
"""

from workloads import Case, torch_sequence_call

SUITE = "bidirectional_lstm"
IMPLS = ("dlcore", "torch")

SHAPES = [(32, 128, 128, 50), (1, 128, 128, 50)]


def cases(quick):
    shapes = SHAPES[:1] if quick else SHAPES
    out = []
    for N, I, U, T in shapes:
        flops = 2 * 2.0 * N * T * 4 * U * (I + U)  # two directions
        params = {"N": N, "I": I, "U": U, "T": T}
        name = f"{N}x{I}x{U}x{T}"  # N x I x U x T
        out.append(Case(SUITE, f"fwd {name}", dict(params, backward=False), flops=flops))
        out.append(Case(SUITE, f"fwd+bwd {name}", dict(params, backward=True), flops=3 * flops))
    return out


def _weights(rng, I, U):
    import numpy as np

    scale = 1.0 / np.sqrt(U)
    kernel = rng.uniform(-scale, scale, (I, 4 * U)).astype(np.float32)
    rec = rng.uniform(-scale, scale, (U, 4 * U)).astype(np.float32)
    bias = rng.uniform(-scale, scale, 4 * U).astype(np.float32)
    return kernel, rec, bias


def make(impl, case):
    import numpy as np

    p = case.params
    N, I, U, T = p["N"], p["I"], p["U"], p["T"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, I), dtype=np.float32)
    fw, bw = _weights(rng, I, U), _weights(rng, I, U)
    dy = rng.standard_normal((N, T, 2 * U), dtype=np.float32)
    if impl == "dlcore":
        from dlcore import ops

        def forward():
            y, _, _, cache_f = ops.lstm_forward(x, None, None, *fw)
            y_rev, _, _, cache_b = ops.lstm_forward(
                np.ascontiguousarray(x[:, ::-1]), None, None, *bw
            )
            return np.concatenate([y, y_rev[:, ::-1]], axis=-1), cache_f, cache_b

        if not p["backward"]:
            return forward

        def forward_backward():
            _, cache_f, cache_b = forward()
            dy_f = np.ascontiguousarray(dy[..., :U])
            dy_b = np.ascontiguousarray(dy[:, ::-1, U:])
            dx = ops.lstm_backward(dy_f, None, None, cache_f)[0]
            dx_rev = ops.lstm_backward(dy_b, None, None, cache_b)[0]
            return dx + dx_rev[:, ::-1]

        return forward_backward
    if impl == "torch":
        import torch

        lstm = torch.nn.LSTM(I, U, batch_first=True, bidirectional=True)
        with torch.no_grad():  # the same weights: torch keeps W^T, and two biases
            for suffix, (kernel, rec, bias) in (("", fw), ("_reverse", bw)):
                getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(kernel.T))
                getattr(lstm, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(rec.T))
                getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(bias))
                getattr(lstm, f"bias_hh_l0{suffix}").zero_()
        return torch_sequence_call(lstm, x, dy, p["backward"])
    raise ValueError(impl)
