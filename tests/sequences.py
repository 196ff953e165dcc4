"""Inputs and checks the recurrent kernels' tests share (test_lstm.py, test_gru.py,
test_simple_rnn.py): weights for G gate columns, masks of every kind a layer can meet,
and comparisons of a kernel's results with its reference."""

import numpy as np

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}

# (N, T, I, U): T = 1, batch 1, U = 1 and I = 1 each on their own, a long sequence,
# sizes that straddle a SIMD packet and a panel (7, 17, 33), and shapes large enough for
# two threads by batch (N >= 8) and by units (U > 32).
SHAPES = [
    (2, 3, 4, 5),
    (1, 1, 1, 1),
    (1, 6, 3, 4),
    (3, 5, 1, 7),
    (4, 3, 6, 1),
    (3, 60, 4, 3),
    (7, 6, 17, 33),
    (13, 4, 9, 70),
    (1, 8, 16, 64),
    (2, 3, 5, 17),
]
# Two threads share the batch of the first, the units of the others.
THREAD_SHAPES = [(8, 5, 12, 72), (1, 4, 8, 70), (33, 3, 5, 64), (5, 6, 7, 50)]


def weights(rng, I, U, gates, bias_shape, dtype=np.float64):
    """kernel (I, gU), recurrent_kernel (U, gU) and a bias, scaled to keep gates lively."""
    scale = 2.0 / np.sqrt(max(U, 1))
    kernel = rng.uniform(-scale, scale, (I, gates * U))
    rec = rng.uniform(-scale, scale, (U, gates * U))
    bias = rng.uniform(-1, 1, bias_shape)
    return [a.astype(dtype) for a in (kernel, rec, bias)]


def initial_states(rng, N, U, count, dtype=np.float64, given=True):
    """`count` initial states (N, U), or as many Nones."""
    return [rng.standard_normal((N, U)).astype(dtype) if given else None for _ in range(count)]


def masks(rng, N, T):
    """Masks (N, T) of every kind: random steps, right- and left-padded sequences of
    random lengths, one sequence masked entirely, one step masked in every sequence."""
    lengths = rng.integers(0, T + 1, N)
    steps = np.arange(T)
    out = {
        "random": rng.random((N, T)) < 0.6,
        "right_padded": steps[None, :] < lengths[:, None],
        "left_padded": steps[None, :] >= (T - lengths)[:, None],
        "one_sequence": np.ones((N, T), bool),
        "one_step": np.ones((N, T), bool),
    }
    out["one_sequence"][N // 2] = False
    out["one_step"][:, T // 2] = False
    return out


def assert_all_close(got, want, dtype, names, tol=None):
    for g, w, name in zip(got, want, names):
        assert g.dtype == dtype and g.shape == w.shape and g.flags.c_contiguous, name
        np.testing.assert_allclose(g, w, err_msg=name, **(tol or TOL[dtype]))
