"""LSTM over a sequence, float32, against torch.nn.LSTM(batch_first=True).

Two cases per shape (N, I, U, T): the forward alone (torch under no_grad; dlcore's
lstm_forward, which also saves the state its backward needs) and forward + backward
with the gradients of x and of every weight (the incoming gradient is dy for every step;
initial states are zeros on both sides). The first shape once more with its last quarter
of steps masked in every sequence (T // 4 of them): dlcore's mask against torch's packed
sequences of the same lengths, to set beside the unmasked run.
"""

from workloads import Case, torch_sequence_call

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
    N, I, U, T = SHAPES[0]
    params = {"N": N, "I": I, "U": U, "T": T, "backward": True, "masked": True}
    flops = 3 * 2.0 * N * (T - T // 4) * 4 * U * (I + U)  # the steps that run
    out.insert(2, Case(SUITE, f"fwd+bwd masked {N}x{I}x{U}x{T}", params, flops=flops))
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


def _torch_packed(lstm, x, dy, live):
    """torch's way to skip padding: packed sequences of `live` steps each."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    tx = torch.from_numpy(x).requires_grad_(True)
    lengths = torch.full((x.shape[0],), live)
    tdy = pack_padded_sequence(torch.from_numpy(dy), lengths, batch_first=True).data

    def forward_backward():
        for w in lstm.parameters():
            w.grad = None
        tx.grad = None
        y, _ = lstm(pack_padded_sequence(tx, lengths, batch_first=True))
        y.data.backward(tdy)
        return tx.grad

    return forward_backward


def make(impl, case):
    import numpy as np

    p = case.params
    x, kernel, rec, bias, dy = _inputs(p["N"], p["I"], p["U"], p["T"])
    live = p["T"] - p["T"] // 4 if p.get("masked") else p["T"]  # steps each sequence runs
    if impl == "dlcore":
        from dlcore import ops

        # mask only when masked: a build from before masks (run with --also) takes none.
        masked = (
            {"mask": np.broadcast_to(np.arange(p["T"]) < live, (p["N"], p["T"]))}
            if p.get("masked")
            else {}
        )
        if not p["backward"]:
            return lambda: ops.lstm_forward(x, None, None, kernel, rec, bias)

        def forward_backward():
            cache = ops.lstm_forward(x, None, None, kernel, rec, bias, **masked)[3]
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
        if p.get("masked"):
            return _torch_packed(lstm, x, dy, live)
        return torch_sequence_call(lstm, x, dy, p["backward"])
    raise ValueError(impl)
