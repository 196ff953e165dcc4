import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference import lstm as reference
from sequences import masks

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
# (N, T, I, U): T = 1, batch 1, U = 1 and I = 1 each on their own, a long sequence, a
# batch and a width that are not multiples of any vector or tile size, and shapes large
# enough to use two threads.
SHAPES = [
    (2, 3, 4, 5),
    (1, 1, 1, 1),
    (1, 6, 3, 4),
    (3, 5, 1, 7),
    (4, 3, 6, 1),
    (3, 100, 4, 6),
    (7, 6, 17, 50),
    (13, 4, 9, 70),
    (1, 8, 16, 64),
    (2, 3, 5, 17),
]


def lstm_inputs(rng, N, T, I, U, dtype=np.float64, states=True):
    scale = 1.0 / np.sqrt(max(U, 1))
    x = rng.standard_normal((N, T, I))
    h0 = rng.standard_normal((N, U)) if states else None
    c0 = rng.standard_normal((N, U)) if states else None
    kernel = rng.uniform(-2 * scale, 2 * scale, (I, 4 * U))
    rec = rng.uniform(-2 * scale, 2 * scale, (U, 4 * U))
    bias = rng.uniform(-1, 1, 4 * U)
    cast = [None if a is None else a.astype(dtype) for a in (x, h0, c0, kernel, rec, bias)]
    return cast


def incoming(rng, N, T, U, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in ((N, T, U), (N, U), (N, U))]


def assert_all_close(got, want, dtype, names):
    for g, w, name in zip(got, want, names):
        assert g.dtype == dtype and g.shape == w.shape and g.flags.c_contiguous, name
        np.testing.assert_allclose(g, w, err_msg=name, **TOL[dtype])


FORWARD = ("y", "h_n", "c_n")
GRADS = ("dx", "dh0", "dc0", "dkernel", "drecurrent_kernel", "dbias")


# ------------------------------------------------------------------ against the reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("N,T,I,U", SHAPES)
def test_lstm_matches_reference(rng, N, T, I, U, states, dtype):
    args = lstm_inputs(rng, N, T, I, U, dtype, states)
    dy, dh_n, dc_n = incoming(rng, N, T, U, dtype)
    y, h_n, c_n, cache = ops.lstm_forward(*args)
    y_ref, h_ref, c_ref, saved = reference.lstm_forward(*args)
    assert_all_close((y, h_n, c_n), (y_ref, h_ref, c_ref), dtype, FORWARD)
    grads = ops.lstm_backward(dy, dh_n, dc_n, cache)
    assert_all_close(grads, reference.lstm_backward(dy, dh_n, dc_n, saved), dtype, GRADS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("N,T,I,U", [s for s in SHAPES if s[1] <= 8])
def test_lstm_cell_matches_reference(rng, N, T, I, U, states, dtype):
    x, h, c, kernel, rec, bias = lstm_inputs(rng, N, 1, I, U, dtype, states)
    dh_next, dc_next = incoming(rng, N, 1, U, dtype)[1:]
    h_next, c_next, cache = ops.lstm_cell_forward(x[:, 0], h, c, kernel, rec, bias)
    _, h_ref, c_ref, saved = reference.lstm_forward(x, h, c, kernel, rec, bias)
    assert_all_close((h_next, c_next), (h_ref, c_ref), dtype, ("h_next", "c_next"))
    grads = ops.lstm_cell_backward(dh_next, dc_next, cache)
    dx, dh, dc, dk, dr, db = reference.lstm_backward(None, dh_next, dc_next, saved)
    assert_all_close(grads, (dx[:, 0], dh, dc, dk, dr, db), dtype, GRADS)


@pytest.mark.parametrize("missing", ["dy", "dh_n", "dc_n", "all"])
def test_lstm_backward_none_is_zeros(rng, missing):
    N, T, I, U = 3, 4, 5, 6
    args = lstm_inputs(rng, N, T, I, U)
    given = dict(zip(("dy", "dh_n", "dc_n"), incoming(rng, N, T, U)))
    names = ("dy", "dh_n", "dc_n") if missing == "all" else (missing,)
    with_none = {k: (None if k in names else v) for k, v in given.items()}
    with_zeros = {k: (np.zeros_like(v) if k in names else v) for k, v in given.items()}
    a = ops.lstm_backward(**with_none, cache=ops.lstm_forward(*args)[3])
    b = ops.lstm_backward(**with_zeros, cache=ops.lstm_forward(*args)[3])
    ref = reference.lstm_backward(*with_zeros.values(), reference.lstm_forward(*args)[3])
    for got_none, got_zeros, want, name in zip(a, b, ref, GRADS):
        np.testing.assert_array_equal(got_none, got_zeros, err_msg=name)
        np.testing.assert_allclose(got_none, want, err_msg=name, **TOL[np.float64])


@pytest.mark.parametrize("missing", ["dh_next", "dc_next"])
def test_lstm_cell_backward_none_is_zeros(rng, missing):
    x, h, c, kernel, rec, bias = lstm_inputs(rng, 3, 1, 4, 5)
    given = dict(zip(("dh_next", "dc_next"), incoming(rng, 3, 1, 5)[1:]))
    with_none = {k: (None if k == missing else v) for k, v in given.items()}
    with_zeros = {k: (np.zeros_like(v) if k == missing else v) for k, v in given.items()}
    fwd = lambda: ops.lstm_cell_forward(x[:, 0], h, c, kernel, rec, bias)[2]  # noqa: E731
    a = ops.lstm_cell_backward(**with_none, cache=fwd())
    b = ops.lstm_cell_backward(**with_zeros, cache=fwd())
    for got_none, got_zeros, name in zip(a, b, GRADS):
        np.testing.assert_array_equal(got_none, got_zeros, err_msg=name)


# ------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("states", [True, False])
def test_lstm_gradients_finite_differences(rng, states):
    N, T, I, U = 2, 3, 3, 2
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, N, T, I, U, states=states)
    wy, wh, wc = incoming(rng, N, T, U)

    def loss():
        y, h_n, c_n, _ = ops.lstm_forward(x, h0, c0, kernel, rec, bias)
        return float((y * wy).sum() + (h_n * wh).sum() + (c_n * wc).sum())

    cache = ops.lstm_forward(x, h0, c0, kernel, rec, bias)[3]
    grads = dict(zip(GRADS, ops.lstm_backward(wy, wh, wc, cache)))
    inputs = {"dx": x, "dkernel": kernel, "drecurrent_kernel": rec, "dbias": bias}
    if states:
        inputs.update(dh0=h0, dc0=c0)
    check_gradients(loss, inputs, grads)


def test_lstm_cell_gradients_finite_differences(rng):
    x, h, c, kernel, rec, bias = lstm_inputs(rng, 3, 1, 4, 3)
    x = np.ascontiguousarray(x[:, 0])
    wh, wc = incoming(rng, 3, 1, 3)[1:]

    def loss():
        h_next, c_next, _ = ops.lstm_cell_forward(x, h, c, kernel, rec, bias)
        return float((h_next * wh).sum() + (c_next * wc).sum())

    cache = ops.lstm_cell_forward(x, h, c, kernel, rec, bias)[2]
    grads = dict(zip(GRADS, ops.lstm_cell_backward(wh, wc, cache)))
    inputs = {
        "dx": x,
        "dh0": h,
        "dc0": c,
        "dkernel": kernel,
        "drecurrent_kernel": rec,
        "dbias": bias,
    }
    check_gradients(loss, inputs, grads)


# ------------------------------------------------------------------ cell == sequence


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cell_steps_equal_the_sequence(rng, dtype):
    N, T, I, U = 5, 7, 6, 20
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, N, T, I, U, dtype)
    dy, dh_n, dc_n = incoming(rng, N, T, U, dtype)
    y, h_n, c_n, cache = ops.lstm_forward(x, h0, c0, kernel, rec, bias)
    grads = ops.lstm_backward(dy, dh_n, dc_n, cache)

    h, c, caches, ys = h0, c0, [], []
    for t in range(T):
        h, c, step = ops.lstm_cell_forward(x[:, t], h, c, kernel, rec, bias)
        ys.append(h)
        caches.append(step)
    assert_all_close((y, h_n, c_n), (np.stack(ys, axis=1), h, c), dtype, FORWARD)

    dx = np.zeros_like(x)
    dk, dr, db = np.zeros_like(kernel), np.zeros_like(rec), np.zeros_like(bias)
    dh, dc = dh_n, dc_n
    for t in reversed(range(T)):
        dx[:, t], dh, dc, dk_t, dr_t, db_t = ops.lstm_cell_backward(dh + dy[:, t], dc, caches[t])
        dk += dk_t
        dr += dr_t
        db += db_t
    assert_all_close(grads, (dx, dh, dc, dk, dr, db), dtype, GRADS)


# ------------------------------------------------------------------ threads, dtypes, layouts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# Shapes big enough for two threads: sharing the batch (8 and 33 sequences) and sharing
# the units (batch 1 and 5).
@pytest.mark.parametrize("N,T,I,U", [(8, 5, 12, 72), (1, 4, 8, 70), (33, 3, 5, 64), (5, 6, 7, 50)])
def test_lstm_one_and_two_threads_agree(rng, threads, N, T, I, U, dtype):
    args = lstm_inputs(rng, N, T, I, U, dtype)
    dy, dh_n, dc_n = incoming(rng, N, T, U, dtype)
    results = {}
    for n in (1, 2):
        ops.set_num_threads(n)
        y, h_n, c_n, cache = ops.lstm_forward(*args)
        results[n] = (y, h_n, c_n) + ops.lstm_backward(dy, dh_n, dc_n, cache)
    # Each element of the outputs and of dx, dh0, dc0 is computed by one thread in a fixed
    # order, whatever the thread count: bit-identical. The weight gradients come from
    # Eigen's GEMM, whose K blocking depends on the thread count, and dbias, shared by
    # batch, is summed by each thread and then across threads.
    names = FORWARD + GRADS
    for one, two, name in zip(results[1], results[2], names):
        if name in ("dkernel", "drecurrent_kernel", "dbias"):
            np.testing.assert_allclose(one, two, err_msg=name, **TOL[dtype])
        else:
            np.testing.assert_array_equal(one, two, err_msg=name)


def test_lstm_is_deterministic(rng, threads):
    ops.set_num_threads(2)
    args = lstm_inputs(rng, 16, 10, 24, 64, np.float32)  # two threads' worth
    dy = incoming(rng, 16, 10, 64, np.float32)[0]
    runs = []
    for _ in range(2):
        y, h_n, c_n, cache = ops.lstm_forward(*args)
        runs.append((y, h_n, c_n) + ops.lstm_backward(dy, None, None, cache))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "x_dtype,w_dtype,expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.float16, np.float32, np.float32),
        (np.int64, np.float32, np.float64),
    ],
)
def test_lstm_dtype_promotion(rng, x_dtype, w_dtype, expected):
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, 2, 3, 4, 5)
    x = (x * 2).astype(x_dtype)
    y, h_n, c_n, cache = ops.lstm_forward(
        x,
        h0.astype(np.float32),
        None,
        kernel.astype(w_dtype),
        rec.astype(np.float32),
        bias.astype(np.float32),
    )
    assert y.dtype == h_n.dtype == c_n.dtype == expected
    y_ref = reference.lstm_forward(
        x,
        h0.astype(np.float32),
        None,
        kernel.astype(w_dtype),
        rec.astype(np.float32),
        bias.astype(np.float32),
    )[0]
    np.testing.assert_allclose(y, y_ref, **TOL[np.float32])
    grads = ops.lstm_backward(np.ones(y.shape), None, None, cache)  # converted to y's dtype
    assert all(g.dtype == expected for g in grads)


def test_lstm_any_memory_layout(rng):
    N, T, I, U = 3, 4, 5, 6
    args = lstm_inputs(rng, N, T, I, U)
    strided = [
        np.asfortranarray(args[0]),
        args[1][:, ::-1].copy()[:, ::-1],
        np.repeat(args[2], 2, axis=1)[:, ::2],
        np.asfortranarray(args[3]),
        args[4].T.copy().T,
        np.repeat(args[5], 2)[::2],
    ]
    for a, b in zip(args, strided):
        np.testing.assert_array_equal(a, b)
    dy = incoming(rng, N, T, U)[0]
    want = ops.lstm_forward(*args)
    got = ops.lstm_forward(*strided)
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(
        ops.lstm_backward(np.asfortranarray(dy), None, None, got[3]),
        ops.lstm_backward(dy, None, None, want[3]),
    ):
        np.testing.assert_array_equal(g, w)


def test_lstm_accepts_nested_lists():
    y, h_n, c_n, _ = ops.lstm_forward([[[0.5]]], None, None, [[0.0] * 4], [[0.0] * 4], [0.0] * 4)
    # zero weights: every gate is sigmoid(0) = 0.5 and g = tanh(0) = 0, so c stays 0
    np.testing.assert_array_equal(y, [[[0.0]]])
    np.testing.assert_array_equal(c_n, [[0.0]])


@pytest.mark.parametrize("N,I,U", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_lstm_zero_sizes(rng, N, I, U):
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, N, 3, I, U, np.float32)
    y, h_n, c_n, cache = ops.lstm_forward(x, h0, c0, kernel, rec, bias)
    assert y.shape == (N, 3, U) and h_n.shape == c_n.shape == (N, U)
    y_ref, h_ref, c_ref, saved = reference.lstm_forward(x, h0, c0, kernel, rec, bias)
    np.testing.assert_allclose(y, y_ref, **TOL[np.float32])
    dy = np.ones_like(y)
    grads = ops.lstm_backward(dy, None, None, cache)
    for g, w, name in zip(grads, reference.lstm_backward(dy, None, None, saved), GRADS):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, err_msg=name, **TOL[np.float32])


def test_lstm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    N, T, I, U = 4, 9, 7, 12
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, N, T, I, U)
    dy, dh_n, dc_n = incoming(rng, N, T, U)
    lstm = torch.nn.LSTM(I, U, batch_first=True).double()
    with torch.no_grad():  # torch keeps W^T and splits the bias in two
        lstm.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
        lstm.weight_hh_l0.copy_(torch.from_numpy(rec.T))
        lstm.bias_ih_l0.copy_(torch.from_numpy(bias / 4))
        lstm.bias_hh_l0.copy_(torch.from_numpy(bias * 3 / 4))
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, (th, tc) = lstm(tx, (th0[None], tc0[None]))
    torch.autograd.backward([ty, th[0], tc[0]], [torch.from_numpy(a) for a in (dy, dh_n, dc_n)])

    y, h_n, c_n, cache = ops.lstm_forward(x, h0, c0, kernel, rec, bias)
    dx, dh0, dc0, dk, dr, db = ops.lstm_backward(dy, dh_n, dc_n, cache)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(h_n, th[0].detach().numpy(), **tol)
    np.testing.assert_allclose(c_n, tc[0].detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(dh0, th0.grad.numpy(), **tol)
    np.testing.assert_allclose(dc0, tc0.grad.numpy(), **tol)
    np.testing.assert_allclose(dk, lstm.weight_ih_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(dr, lstm.weight_hh_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(db, lstm.bias_ih_l0.grad.numpy(), **tol)
    np.testing.assert_allclose(db, lstm.bias_hh_l0.grad.numpy(), **tol)


# ------------------------------------------------------------------ the cache


def test_lstm_cache_serves_one_backward(rng):
    args = lstm_inputs(rng, 2, 3, 4, 5)
    cache = ops.lstm_forward(*args)[3]
    assert isinstance(cache, ops.LstmCache)
    assert repr(cache) == "LstmCache(N=2, T=3, I=4, U=5, dtype=float64)"
    ops.lstm_backward(None, np.ones((2, 5)), None, cache)
    assert repr(cache).endswith(", used)")
    with pytest.raises(ValueError, match=r"'cache' was already used by a backward pass"):
        ops.lstm_backward(None, np.ones((2, 5)), None, cache)


@pytest.mark.parametrize(
    "bad,name", [(None, "NoneType"), (np.ones(3), "ndarray"), ("cell", "LstmCellCache")]
)
def test_lstm_backward_rejects_what_is_not_its_cache(rng, bad, name):
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, 2, 3, 4, 5)
    if isinstance(bad, str):
        bad = ops.lstm_cell_forward(x[:, 0], h0, c0, kernel, rec, bias)[2]
    msg = rf"'cache' must be the LstmCache returned by lstm_forward, got {name}"
    with pytest.raises(TypeError, match=msg):
        ops.lstm_backward(None, None, None, bad)


def test_lstm_cell_backward_rejects_a_sequence_cache(rng):
    cache = ops.lstm_forward(*lstm_inputs(rng, 2, 3, 4, 5))[3]
    msg = r"must be the LstmCellCache returned by lstm_cell_forward, got LstmCache"
    with pytest.raises(TypeError, match=msg):
        ops.lstm_cell_backward(None, None, cache)
    x, h, c, kernel, rec, bias = lstm_inputs(rng, 2, 1, 4, 5)
    cell = ops.lstm_cell_forward(x[:, 0], h, c, kernel, rec, bias)[2]
    ops.lstm_cell_backward(None, None, cell)
    with pytest.raises(ValueError, match=r"already used"):
        ops.lstm_cell_backward(None, None, cell)


# ------------------------------------------------------------------ bad input


def good(rng, N=2, T=3, I=4, U=5):
    return dict(
        zip(
            ("x", "h0", "c0", "kernel", "recurrent_kernel", "bias"),
            lstm_inputs(rng, N, T, I, U, np.float32),
        )
    )


@pytest.mark.parametrize(
    "name,value,msg",
    [
        ("x", np.ones((2, 4)), r"'x' must be 3-D \(N, T, I\), got a 2-D array of shape \(2, 4\)"),
        ("h0", np.ones(5), r"'h0' must be 2-D \(N, U\), got a 1-D array of shape \(5,\)"),
        ("c0", np.ones((1, 2, 5)), r"'c0' must be 2-D \(N, U\), got a 3-D"),
        ("kernel", np.ones(20), r"'kernel' must be 2-D \(I, 4U\), got a 1-D"),
        (
            "recurrent_kernel",
            np.ones((5, 20, 1)),
            r"'recurrent_kernel' must be 2-D \(U, 4U\), got a 3-D",
        ),
        (
            "bias",
            np.ones((1, 20)),
            r"'bias' must be 1-D \(4U,\), got a 2-D array of shape \(1, 20\)",
        ),
        (
            "recurrent_kernel",
            np.ones((5, 16)),
            r"'recurrent_kernel' has shape \(5, 16\); expected \(U, 4U\) .*\(5, 20\)",
        ),
        (
            "kernel",
            np.ones((4, 16)),
            r"'kernel' has shape \(4, 16\); expected \(I, 4U\) = \(4, 20\)",
        ),
        (
            "kernel",
            np.ones((3, 20)),
            r"'kernel' has shape \(3, 20\); expected \(I, 4U\) = \(4, 20\) for I=4",
        ),
        ("bias", np.ones(16), r"'bias' has shape \(16,\); expected \(4U,\) = \(20,\)"),
        ("h0", np.ones((3, 5)), r"'h0' has shape \(3, 5\); expected \(N, U\) = \(2, 5\)"),
        ("c0", np.ones((2, 4)), r"'c0' has shape \(2, 4\); expected \(N, U\) = \(2, 5\)"),
        (
            "x",
            np.ones((2, 0, 4)),
            r"'x' has shape \(2, 0, 4\), a sequence of length T=0; expected T >= 1",
        ),
    ],
)
def test_lstm_forward_rejects_bad_shapes(rng, name, value, msg):
    args = good(rng)
    args[name] = value
    with pytest.raises(ValueError, match=msg):
        ops.lstm_forward(*args.values())


@pytest.mark.parametrize(
    "name,value,msg",
    [
        (
            "x",
            np.ones((2, 1, 4)),
            r"lstm_cell_forward: argument 'x_t' must be 2-D \(N, I\), got a 3-D",
        ),
        ("h0", np.ones((3, 5)), r"argument 'h' has shape \(3, 5\); expected \(N, U\) = \(2, 5\)"),
        ("c0", np.ones(5), r"argument 'c' must be 2-D"),
        (
            "kernel",
            np.ones((4, 12)),
            r"'kernel' has shape \(4, 12\); expected \(I, 4U\) = \(4, 20\)",
        ),
    ],
)
def test_lstm_cell_forward_rejects_bad_shapes(rng, name, value, msg):
    args = good(rng)
    args["x"] = args["x"][:, 0]
    args[name] = value
    with pytest.raises(ValueError, match=msg):
        ops.lstm_cell_forward(*args.values())


@pytest.mark.parametrize("name", ["x", "kernel", "recurrent_kernel", "bias"])
def test_lstm_forward_rejects_none_and_non_numeric(rng, name):
    args = good(rng)
    args[name] = None
    msg = rf"lstm_forward: argument '{name}' must be an array, got None"
    with pytest.raises(TypeError, match=msg):
        ops.lstm_forward(*args.values())
    args[name] = np.ones((2, 2), np.complex64)
    with pytest.raises(TypeError, match=rf"argument '{name}' has dtype complex64"):
        ops.lstm_forward(*args.values())


@pytest.mark.parametrize(
    "grads,msg",
    [
        ((np.ones((2, 3, 4)), None, None), r"'dy' has shape \(2, 3, 4\); expected \(2, 3, 5\)"),
        ((np.ones((2, 5)), None, None), r"'dy' has shape \(2, 5\); expected \(2, 3, 5\)"),
        ((None, np.ones((3, 5)), None), r"'dh_n' has shape \(3, 5\); expected \(2, 5\)"),
        ((None, None, np.ones((2, 3, 5))), r"'dc_n' has shape \(2, 3, 5\); expected \(2, 5\)"),
    ],
)
def test_lstm_backward_rejects_bad_gradients(rng, grads, msg):
    cache = ops.lstm_forward(*good(rng).values())[3]
    with pytest.raises(ValueError, match=msg):
        ops.lstm_backward(*grads, cache)
    ops.lstm_backward(None, None, None, cache)  # a rejected call leaves the cache usable


def test_lstm_cell_backward_rejects_bad_gradients(rng):
    args = good(rng)
    args["x"] = args["x"][:, 0]
    cache = ops.lstm_cell_forward(*args.values())[2]
    with pytest.raises(ValueError, match=r"'dh_next' has shape \(2, 4\); expected \(2, 5\)"):
        ops.lstm_cell_backward(np.ones((2, 4)), None, cache)
    with pytest.raises(TypeError, match=r"'dc_next' has dtype <U1"):
        ops.lstm_cell_backward(None, np.array([["a"]]), cache)


# ------------------------------------------------------------------ masks


@pytest.mark.parametrize(
    "kind", ["random", "right_padded", "left_padded", "one_sequence", "one_step"]
)
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("N,T,I,U", [(3, 7, 4, 5), (16, 6, 8, 40), (1, 9, 3, 70), (2, 5, 6, 66)])
def test_lstm_masked_matches_reference(rng, N, T, I, U, states, kind):
    args = lstm_inputs(rng, N, T, I, U, states=states)
    mask = masks(rng, N, T)[kind]
    dy, dh_n, dc_n = incoming(rng, N, T, U)
    y, h_n, c_n, cache = ops.lstm_forward(*args, mask=mask)
    y_ref, h_ref, c_ref, saved = reference.lstm_forward(*args, mask)
    assert_all_close((y, h_n, c_n), (y_ref, h_ref, c_ref), np.float64, FORWARD)
    grads = ops.lstm_backward(dy, dh_n, dc_n, cache)
    assert_all_close(grads, reference.lstm_backward(dy, dh_n, dc_n, saved), np.float64, GRADS)
    # A masked step outputs the state it carries: the step before's, h0 (or 0) at first.
    h0 = args[1] if states else np.zeros((N, U))
    for n, t in zip(*np.nonzero(~mask)):
        np.testing.assert_array_equal(y[n, t], y[n, t - 1] if t else h0[n])


def test_lstm_masked_gradients_finite_differences(rng):
    N, T, I, U = 2, 4, 3, 2
    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, N, T, I, U)
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool)
    wy, wh, wc = incoming(rng, N, T, U)

    def loss():
        y, h_n, c_n, _ = ops.lstm_forward(x, h0, c0, kernel, rec, bias, mask=mask)
        return float((y * wy).sum() + (h_n * wh).sum() + (c_n * wc).sum())

    cache = ops.lstm_forward(x, h0, c0, kernel, rec, bias, mask=mask)[3]
    grads = dict(zip(GRADS, ops.lstm_backward(wy, wh, wc, cache)))
    inputs = {"dx": x, "dh0": h0, "dc0": c0, "dkernel": kernel, "drecurrent_kernel": rec}
    check_gradients(loss, dict(inputs, dbias=bias), grads)


@pytest.mark.parametrize("N,T,I,U", [(8, 5, 12, 72), (1, 4, 8, 70), (33, 3, 5, 64)])
def test_lstm_masked_one_and_two_threads_agree(rng, threads, N, T, I, U):
    args = lstm_inputs(rng, N, T, I, U, np.float32)
    mask = masks(rng, N, T)["random"]
    dy, dh_n, dc_n = incoming(rng, N, T, U, np.float32)
    results = {}
    for n in (1, 2):
        ops.set_num_threads(n)
        y, h_n, c_n, cache = ops.lstm_forward(*args, mask=mask)
        results[n] = (y, h_n, c_n) + ops.lstm_backward(dy, dh_n, dc_n, cache)
    for one, two, name in zip(results[1], results[2], FORWARD + GRADS):
        if name in ("dkernel", "drecurrent_kernel", "dbias"):
            np.testing.assert_allclose(one, two, err_msg=name, **TOL[np.float32])
        else:
            np.testing.assert_array_equal(one, two, err_msg=name)


def test_lstm_all_ones_mask_changes_nothing_and_repr_says_masked(rng):
    args = lstm_inputs(rng, 3, 4, 5, 6)
    dy = incoming(rng, 3, 4, 6)[0]
    plain, masked = ops.lstm_forward(*args), ops.lstm_forward(*args, mask=np.ones((3, 4), int))
    assert repr(masked[3]) == "LstmCache(N=3, T=4, I=5, U=6, masked, dtype=float64)"
    for a, b in zip(plain[:3], masked[:3]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        ops.lstm_backward(dy, None, None, plain[3]), ops.lstm_backward(dy, None, None, masked[3])
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "mask,error,msg",
    [
        (np.ones((2, 4)), ValueError, r"'mask' has shape \(2, 4\); expected \(N, T\) = \(2, 3\)"),
        (np.ones((2, 3, 1)), ValueError, r"'mask' must be 2-D \(N, T\), got a 3-D"),
        (np.ones((2, 3), np.complex128), TypeError, r"'mask' has dtype complex128"),
    ],
)
def test_lstm_forward_rejects_bad_masks(rng, mask, error, msg):
    with pytest.raises(error, match=rf"lstm_forward: argument {msg}"):
        ops.lstm_forward(*good(rng).values(), mask=mask)


# ------------------------------------------------------------------ inference (keep_cache=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("kind", [None, "random", "left_padded", "one_sequence"])
@pytest.mark.parametrize("N,T,I,U", SHAPES + [(16, 5, 8, 40), (64, 3, 7, 33)])
def test_lstm_inference_gives_the_training_forwards_bits(rng, N, T, I, U, states, kind, dtype):
    # Nothing is saved, the gates go to scratch and c stays in c_n; by batch (N >= 8)
    # and by units, masked and not, states given or zeros.
    args = lstm_inputs(rng, N, T, I, U, dtype, states)
    mask = None if kind is None else masks(rng, N, T)[kind]
    want = ops.lstm_forward(*args, mask=mask)
    *got, cache = ops.lstm_forward(*args, mask=mask, keep_cache=False)
    assert cache is None
    for g, w, name in zip(got, want[:3], FORWARD):
        assert g.dtype == dtype and g.flags.c_contiguous, name
        np.testing.assert_array_equal(g, w, err_msg=name)
    if kind is not None:  # and the reference's values, masked steps carrying the states
        ref = reference.lstm_forward(*args, mask)[:3]
        assert_all_close(got, ref, dtype, FORWARD)


def test_lstm_inference_leaves_inputs_and_states_untouched(rng):
    # c lives in c_n: c0 must not be written through, nor x or the weights.
    args = lstm_inputs(rng, 3, 6, 4, 5, np.float32)
    before = [a.copy() for a in args]
    y, h_n, c_n, _ = ops.lstm_forward(*args, keep_cache=False)
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(c_n, args[2]) and not np.shares_memory(h_n, y)


def test_lstm_inference_rejects_what_the_forward_rejects(rng):
    args = lstm_inputs(rng, 2, 3, 4, 5)
    args[3] = args[3][:, :-1]
    with pytest.raises(ValueError, match=r"lstm_forward: argument 'kernel' has shape \(4, 19\)"):
        ops.lstm_forward(*args, keep_cache=False)


def test_functional_lstm_keeps_no_cache_where_no_gradient_is_wanted(rng):
    # F.lstm records a node only when some input needs a gradient; without one (predict,
    # no_grad, constant inputs) it runs the inference forward, whose values are the same.
    import dlcore
    from dlcore import functional as F

    x, h0, c0, kernel, rec, bias = lstm_inputs(rng, 4, 5, 3, 6, np.float32)
    mask = masks(rng, 4, 5)["right_padded"]
    want = ops.lstm_forward(x, h0, c0, kernel, rec, bias, mask=mask)[:3]
    weights = [dlcore.Tensor(w, requires_grad=True) for w in (kernel, rec, bias)]
    for grad_mode, ws in ((dlcore.no_grad, weights), (dlcore.enable_grad, (kernel, rec, bias))):
        with grad_mode():
            out = F.lstm(x, h0, c0, *ws, mask=mask)
        for t, w in zip(out, want):
            assert t._node is None and not t.requires_grad
            np.testing.assert_array_equal(t.data, w)
    y, h_n, c_n = F.lstm(x, h0, c0, *weights, mask=mask)  # training: a node and gradients
    assert y.requires_grad and y._node is not None
    np.testing.assert_array_equal(y.data, want[0])
    (y.sum() + c_n.sum()).backward()
    assert all(w.grad is not None and np.abs(w.grad).sum() > 0 for w in weights)
