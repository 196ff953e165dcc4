import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference import gru as reference
from sequences import SHAPES, THREAD_SHAPES, TOL, assert_all_close, initial_states, masks, weights

FORWARD = ("y", "h_n")
GRADS = ("dx", "dh0", "dkernel", "drecurrent_kernel", "dbias")


def gru_inputs(rng, N, T, I, U, dtype=np.float64, states=True, reset_after=True):
    """(x, h0, kernel, recurrent_kernel, bias) for gru_forward."""
    x = rng.standard_normal((N, T, I)).astype(dtype)
    (h0,) = initial_states(rng, N, U, 1, dtype, states)
    bias_shape = (2, 3 * U) if reset_after else (3 * U,)
    return [x, h0, *weights(rng, I, U, 3, bias_shape, dtype)]


def incoming(rng, N, T, U, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in ((N, T, U), (N, U))]


def run(args, dy, dh_n, reset_after=True, mask=None):
    """The kernels' forward and backward, and the reference's."""
    y, h_n, cache = ops.gru_forward(*args, reset_after=reset_after, mask=mask)
    got = (y, h_n, *ops.gru_backward(dy, dh_n, cache))
    y_ref, h_ref, saved = reference.gru_forward(*args, reset_after, mask)
    return got, (y_ref, h_ref, *reference.gru_backward(dy, dh_n, saved))


# ------------------------------------------------------------------ against the reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("N,T,I,U", SHAPES)
def test_gru_matches_reference(rng, N, T, I, U, states, reset_after, dtype):
    args = gru_inputs(rng, N, T, I, U, dtype, states, reset_after)
    got, want = run(args, *incoming(rng, N, T, U, dtype), reset_after)
    assert_all_close(got, want, dtype, FORWARD + GRADS)


@pytest.mark.parametrize(
    "kind", ["random", "right_padded", "left_padded", "one_sequence", "one_step"]
)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("N,T,I,U", [(3, 7, 4, 5), (16, 6, 8, 40), (1, 9, 3, 70), (2, 5, 6, 66)])
def test_gru_masked_matches_reference(rng, N, T, I, U, reset_after, kind):
    args = gru_inputs(rng, N, T, I, U, reset_after=reset_after)
    mask = masks(rng, N, T)[kind]
    got, want = run(args, *incoming(rng, N, T, U), reset_after, mask)
    assert_all_close(got, want, np.float64, FORWARD + GRADS)
    # A masked step outputs the state it carries: the step before's, h0 at the start.
    y, h0 = got[0], args[1]
    for n, t in zip(*np.nonzero(~mask)):
        np.testing.assert_array_equal(y[n, t], y[n, t - 1] if t else h0[n])


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int64, np.float32])
def test_gru_mask_is_any_nonzero_value(rng, dtype):
    args = gru_inputs(rng, 3, 6, 4, 5)
    flags = masks(rng, 3, 6)["random"]
    on = 0.25 if np.dtype(dtype).kind == "f" else 7  # a fraction counts, as in NumPy's bool()
    values = np.where(flags, on, 0).astype(dtype)
    assert (values != 0).tolist() == flags.tolist()
    got = ops.gru_forward(*args, mask=values)[0]
    np.testing.assert_array_equal(got, ops.gru_forward(*args, mask=flags)[0])


def test_gru_mask_of_ones_changes_nothing(rng):
    args = gru_inputs(rng, 4, 5, 3, 6)
    dy, dh_n = incoming(rng, 4, 5, 6)
    plain = ops.gru_forward(*args)
    masked = ops.gru_forward(*args, mask=np.ones((4, 5), bool))
    for a, b in zip(plain[:2], masked[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ops.gru_backward(dy, dh_n, plain[2]), ops.gru_backward(dy, dh_n, masked[2])):
        np.testing.assert_array_equal(a, b)


def test_gru_fully_masked_sequence_carries_h0_to_the_end(rng):
    args = gru_inputs(rng, 2, 4, 3, 5)
    dy, dh_n = incoming(rng, 2, 4, 5)
    mask = np.zeros((2, 4), bool)
    y, h_n, cache = ops.gru_forward(*args, mask=mask)
    np.testing.assert_array_equal(h_n, args[1])
    np.testing.assert_array_equal(y, np.repeat(args[1][:, None], 4, axis=1))
    dx, dh0, dk, dr, db = ops.gru_backward(dy, dh_n, cache)
    np.testing.assert_allclose(dh0, dh_n + dy.sum(axis=1), **TOL[np.float64])
    for g in (dx, dk, dr, db):
        assert not g.any()


@pytest.mark.parametrize("missing", ["dy", "dh_n", "both"])
def test_gru_backward_none_is_zeros(rng, missing):
    N, T, I, U = 3, 4, 5, 6
    args = gru_inputs(rng, N, T, I, U)
    given = dict(zip(("dy", "dh_n"), incoming(rng, N, T, U)))
    names = ("dy", "dh_n") if missing == "both" else (missing,)
    with_none = {k: (None if k in names else v) for k, v in given.items()}
    with_zeros = {k: (np.zeros_like(v) if k in names else v) for k, v in given.items()}
    a = ops.gru_backward(**with_none, cache=ops.gru_forward(*args)[2])
    b = ops.gru_backward(**with_zeros, cache=ops.gru_forward(*args)[2])
    for got_none, got_zeros, name in zip(a, b, GRADS):
        np.testing.assert_array_equal(got_none, got_zeros, err_msg=name)


# ------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_gru_gradients_finite_differences(rng, reset_after, states, masked):
    N, T, I, U = 2, 4, 3, 3
    x, h0, kernel, rec, bias = gru_inputs(rng, N, T, I, U, states=states, reset_after=reset_after)
    mask = np.array([[1, 0, 1, 1], [1, 1, 0, 0]], bool) if masked else None
    wy, wh = incoming(rng, N, T, U)

    def loss():
        y, h_n, _ = ops.gru_forward(x, h0, kernel, rec, bias, reset_after=reset_after, mask=mask)
        return float((y * wy).sum() + (h_n * wh).sum())

    cache = ops.gru_forward(x, h0, kernel, rec, bias, reset_after=reset_after, mask=mask)[2]
    grads = dict(zip(GRADS, ops.gru_backward(wy, wh, cache)))
    inputs = {"dx": x, "dkernel": kernel, "drecurrent_kernel": rec, "dbias": bias}
    if states:
        inputs["dh0"] = h0
    check_gradients(loss, inputs, grads)


# ------------------------------------------------------------------ against torch


def test_gru_matches_torch(rng):
    """reset_after=True is torch.nn.GRU's cell: its gate rows r, z, n are Keras' columns
    z, r, h reordered and transposed, its two biases the two rows of Keras' bias."""
    torch = pytest.importorskip("torch")
    N, T, I, U = 4, 9, 7, 12
    x, h0, kernel, rec, bias = gru_inputs(rng, N, T, I, U)
    dy, dh_n = incoming(rng, N, T, U)

    def torch_order(w):
        return torch.from_numpy(
            np.concatenate([w[..., U : 2 * U], w[..., :U], w[..., 2 * U :]], -1).T.copy()
        )

    gru = torch.nn.GRU(I, U, batch_first=True).double()
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch_order(kernel))
        gru.weight_hh_l0.copy_(torch_order(rec))
        gru.bias_ih_l0.copy_(torch_order(bias[0]))
        gru.bias_hh_l0.copy_(torch_order(bias[1]))
    tx, th0 = (torch.tensor(a, requires_grad=True) for a in (x, h0))
    ty, th = gru(tx, th0[None])
    torch.autograd.backward([ty, th[0]], [torch.from_numpy(a) for a in (dy, dh_n)])

    y, h_n, cache = ops.gru_forward(x, h0, kernel, rec, bias)
    dx, dh0, dk, dr, db = ops.gru_backward(dy, dh_n, cache)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(h_n, th[0].detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(dh0, th0.grad.numpy(), **tol)
    np.testing.assert_allclose(torch_order(dk).numpy(), gru.weight_ih_l0.grad.numpy(), **tol)
    np.testing.assert_allclose(torch_order(dr).numpy(), gru.weight_hh_l0.grad.numpy(), **tol)
    np.testing.assert_allclose(torch_order(db[0]).numpy(), gru.bias_ih_l0.grad.numpy(), **tol)
    np.testing.assert_allclose(torch_order(db[1]).numpy(), gru.bias_hh_l0.grad.numpy(), **tol)


# ------------------------------------------------------------------ threads, dtypes, layouts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("N,T,I,U", THREAD_SHAPES)
def test_gru_one_and_two_threads_agree(rng, threads, N, T, I, U, masked, reset_after, dtype):
    args = gru_inputs(rng, N, T, I, U, dtype, reset_after=reset_after)
    mask = masks(rng, N, T)["random"] if masked else None
    dy, dh_n = incoming(rng, N, T, U, dtype)
    results = {}
    for n in (1, 2):
        ops.set_num_threads(n)
        y, h_n, cache = ops.gru_forward(*args, reset_after=reset_after, mask=mask)
        results[n] = (y, h_n) + ops.gru_backward(dy, dh_n, cache)
    # Each element of the outputs and of dx, dh0 is computed by one thread in a fixed
    # order whatever the thread count: bit-identical. The weight gradients come from
    # Eigen's GEMM, whose blocking depends on the thread count, and dbias, shared by
    # batch, is summed by each thread and then across threads.
    for one, two, name in zip(results[1], results[2], FORWARD + GRADS):
        if name in ("dkernel", "drecurrent_kernel", "dbias"):
            np.testing.assert_allclose(one, two, err_msg=name, **TOL[dtype])
        else:
            np.testing.assert_array_equal(one, two, err_msg=name)


def test_gru_is_deterministic(rng, threads):
    ops.set_num_threads(2)
    args = gru_inputs(rng, 16, 10, 24, 64, np.float32)
    mask = masks(rng, 16, 10)["right_padded"]
    dy = incoming(rng, 16, 10, 64, np.float32)[0]
    runs = []
    for _ in range(2):
        y, h_n, cache = ops.gru_forward(*args, mask=mask)
        runs.append((y, h_n) + ops.gru_backward(dy, None, cache))
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
def test_gru_dtype_promotion(rng, x_dtype, w_dtype, expected):
    x, h0, kernel, rec, bias = gru_inputs(rng, 2, 3, 4, 5)
    args = [(x * 2).astype(x_dtype), h0.astype(np.float32), kernel.astype(w_dtype)]
    args += [rec.astype(np.float32), bias.astype(np.float32)]
    y, h_n, cache = ops.gru_forward(*args)
    assert y.dtype == h_n.dtype == expected
    np.testing.assert_allclose(y, reference.gru_forward(*args)[0], **TOL[np.float32])
    grads = ops.gru_backward(np.ones(y.shape), None, cache)  # converted to y's dtype
    assert all(g.dtype == expected for g in grads)


def test_gru_any_memory_layout(rng):
    args = gru_inputs(rng, 3, 4, 5, 6)
    mask = masks(rng, 3, 4)["random"]
    strided = [
        np.asfortranarray(args[0]),
        args[1][:, ::-1].copy()[:, ::-1],
        np.asfortranarray(args[2]),
        args[3].T.copy().T,
        np.repeat(args[4], 2, axis=1)[:, ::2],
    ]
    dy = incoming(rng, 3, 4, 6)[0]
    want = ops.gru_forward(*args, mask=mask)
    got = ops.gru_forward(*strided, mask=np.asfortranarray(mask))
    for g, w in zip(got[:2], want[:2]):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(
        ops.gru_backward(np.asfortranarray(dy), None, got[2]), ops.gru_backward(dy, None, want[2])
    ):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("N,I,U", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_zero_sizes(rng, N, I, U, reset_after):
    args = gru_inputs(rng, N, 3, I, U, np.float32, reset_after=reset_after)
    got, want = run(args, np.ones((N, 3, U), np.float32), None, reset_after)
    assert_all_close(got, want, np.float32, FORWARD + GRADS)


# ------------------------------------------------------------------ the cache


def test_gru_cache_serves_one_backward(rng):
    cache = ops.gru_forward(*gru_inputs(rng, 2, 3, 4, 5))[2]
    assert isinstance(cache, ops.GruCache)
    assert repr(cache) == "GruCache(N=2, T=3, I=4, U=5, dtype=float64)"
    ops.gru_backward(None, np.ones((2, 5)), cache)
    assert repr(cache).endswith(", used)")
    with pytest.raises(ValueError, match=r"'cache' was already used by a backward pass"):
        ops.gru_backward(None, np.ones((2, 5)), cache)
    before = ops.gru_forward(
        *gru_inputs(rng, 2, 3, 4, 5, reset_after=False), reset_after=False, mask=np.ones((2, 3))
    )[2]
    assert repr(before) == "GruCache(N=2, T=3, I=4, U=5, reset_after=False, masked, dtype=float64)"


@pytest.mark.parametrize("bad", [None, np.ones(3), "lstm"])
def test_gru_backward_rejects_what_is_not_its_cache(rng, bad):
    if isinstance(bad, str):
        x, h0 = rng.standard_normal((2, 3, 4)), None
        bad = ops.lstm_forward(x, h0, None, np.ones((4, 20)), np.ones((5, 20)), np.ones(20))[3]
    name = type(bad).__name__
    with pytest.raises(
        TypeError, match=rf"'cache' must be the GruCache returned by gru_forward, got {name}"
    ):
        ops.gru_backward(None, None, bad)


# ------------------------------------------------------------------ bad input


def good(rng, reset_after=True, N=2, T=3, I=4, U=5):
    names = ("x", "h0", "kernel", "recurrent_kernel", "bias")
    return dict(zip(names, gru_inputs(rng, N, T, I, U, np.float32, reset_after=reset_after)))


@pytest.mark.parametrize(
    "name,value,reset_after,msg",
    [
        (
            "x",
            np.ones((2, 4)),
            True,
            r"'x' must be 3-D \(N, T, I\), got a 2-D array of shape \(2, 4\)",
        ),
        ("h0", np.ones(5), True, r"'h0' must be 2-D \(N, U\), got a 1-D array of shape \(5,\)"),
        ("kernel", np.ones(15), True, r"'kernel' must be 2-D \(I, 3U\), got a 1-D"),
        (
            "recurrent_kernel",
            np.ones((5, 15, 1)),
            True,
            r"'recurrent_kernel' must be 2-D \(U, 3U\)",
        ),
        (
            "bias",
            np.ones(30),
            True,
            r"'bias' must be 2-D \(2, 3U\) with reset_after=True, got a 1-D",
        ),
        (
            "bias",
            np.ones((2, 15)),
            False,
            r"'bias' must be 1-D \(3U,\) with reset_after=False, got a 2-D",
        ),
        (
            "recurrent_kernel",
            np.ones((5, 12)),
            True,
            r"'recurrent_kernel' has shape \(5, 12\); expected \(U, 3U\) .*\(5, 15\)",
        ),
        (
            "kernel",
            np.ones((4, 12)),
            True,
            r"'kernel' has shape \(4, 12\); expected \(I, 3U\) = \(4, 15\)",
        ),
        (
            "kernel",
            np.ones((3, 15)),
            True,
            r"'kernel' has shape \(3, 15\); expected \(I, 3U\) = \(4, 15\) for I=4",
        ),
        (
            "bias",
            np.ones((3, 15)),
            True,
            r"'bias' has shape \(3, 15\); expected \(2, 3U\) = \(2, 15\) for U=5 units with reset_after=True",
        ),
        (
            "bias",
            np.ones(12),
            False,
            r"'bias' has shape \(12,\); expected \(3U,\) = \(15,\) for U=5 units with reset_after=False",
        ),
        ("h0", np.ones((3, 5)), True, r"'h0' has shape \(3, 5\); expected \(N, U\) = \(2, 5\)"),
        (
            "x",
            np.ones((2, 0, 4)),
            True,
            r"'x' has shape \(2, 0, 4\), a sequence of length T=0; expected T >= 1",
        ),
    ],
)
def test_gru_forward_rejects_bad_shapes(rng, name, value, reset_after, msg):
    args = good(rng, reset_after)
    args[name] = value
    with pytest.raises(ValueError, match=msg):
        ops.gru_forward(*args.values(), reset_after=reset_after)


@pytest.mark.parametrize(
    "mask,error,msg",
    [
        (np.ones((2, 4)), ValueError, r"'mask' has shape \(2, 4\); expected \(N, T\) = \(2, 3\)"),
        (np.ones((3, 3)), ValueError, r"'mask' has shape \(3, 3\); expected \(N, T\) = \(2, 3\)"),
        (np.ones(3), ValueError, r"'mask' must be 2-D \(N, T\), got a 1-D"),
        (np.ones((2, 3), np.complex64), TypeError, r"'mask' has dtype complex64"),
        ("abc", TypeError, r"'mask' has dtype <U3"),
    ],
)
def test_gru_forward_rejects_bad_masks(rng, mask, error, msg):
    with pytest.raises(error, match=rf"gru_forward: argument {msg}"):
        ops.gru_forward(*good(rng).values(), mask=mask)


@pytest.mark.parametrize("name", ["x", "kernel", "recurrent_kernel", "bias"])
def test_gru_forward_rejects_none_and_non_numeric(rng, name):
    args = good(rng)
    args[name] = None
    with pytest.raises(
        TypeError, match=rf"gru_forward: argument '{name}' must be an array, got None"
    ):
        ops.gru_forward(*args.values())
    args[name] = np.ones((2, 2), np.complex64)
    with pytest.raises(TypeError, match=rf"argument '{name}' has dtype complex64"):
        ops.gru_forward(*args.values())


@pytest.mark.parametrize(
    "grads,msg",
    [
        ((np.ones((2, 3, 4)), None), r"'dy' has shape \(2, 3, 4\); expected \(2, 3, 5\)"),
        ((np.ones((2, 5)), None), r"'dy' has shape \(2, 5\); expected \(2, 3, 5\)"),
        ((None, np.ones((3, 5))), r"'dh_n' has shape \(3, 5\); expected \(2, 5\)"),
        ((None, np.array([["a"]])), r"'dh_n' has dtype <U1"),
    ],
)
def test_gru_backward_rejects_bad_gradients(rng, grads, msg):
    cache = ops.gru_forward(*good(rng).values())[2]
    with pytest.raises((ValueError, TypeError), match=msg):
        ops.gru_backward(*grads, cache)
    ops.gru_backward(None, None, cache)  # a rejected call leaves the cache usable


# ------------------------------------------------------------------ inference (keep_cache=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("kind", [None, "random", "left_padded", "one_sequence"])
@pytest.mark.parametrize("N,T,I,U", SHAPES + [(16, 5, 8, 40), (64, 3, 7, 33)])
def test_gru_inference_gives_the_training_forwards_bits(rng, N, T, I, U, reset_after, kind, dtype):
    # Nothing is saved: the gates and recurrent parts go to scratch. By batch (N >= 8)
    # and by units, both formulations, masked and not.
    states = kind != "random"  # h0 given, or None (zeros) under the random mask
    args = gru_inputs(rng, N, T, I, U, dtype, states, reset_after)
    mask = None if kind is None else masks(rng, N, T)[kind]
    want = ops.gru_forward(*args, reset_after=reset_after, mask=mask)
    *got, cache = ops.gru_forward(*args, reset_after=reset_after, mask=mask, keep_cache=False)
    assert cache is None
    for g, w, name in zip(got, want[:2], FORWARD):
        assert g.dtype == dtype and g.flags.c_contiguous, name
        np.testing.assert_array_equal(g, w, err_msg=name)
    if kind is not None:  # and the reference's values, masked steps carrying h
        ref = reference.gru_forward(*args, reset_after, mask)[:2]
        assert_all_close(got, ref, dtype, FORWARD)


def test_gru_inference_leaves_inputs_untouched(rng):
    args = gru_inputs(rng, 3, 6, 4, 5, np.float32)
    before = [a.copy() for a in args]
    y, h_n, _ = ops.gru_forward(*args, keep_cache=False)
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(h_n, y) and not np.shares_memory(h_n, args[1])


def test_gru_inference_rejects_what_the_forward_rejects(rng):
    args = gru_inputs(rng, 2, 3, 4, 5)
    args[2] = args[2][:, :-1]
    with pytest.raises(ValueError, match=r"gru_forward: argument 'kernel' has shape \(4, 14\)"):
        ops.gru_forward(*args, keep_cache=False)


def test_functional_gru_keeps_no_cache_where_no_gradient_is_wanted(rng):
    # F.gru records a node only when some input needs a gradient; without one (predict,
    # no_grad, constant inputs) it runs the inference forward, whose values are the same.
    import dlcore
    from dlcore import functional as F

    x, h0, kernel, rec, bias = gru_inputs(rng, 4, 5, 3, 6, np.float32)
    mask = masks(rng, 4, 5)["right_padded"]
    want = ops.gru_forward(x, h0, kernel, rec, bias, mask=mask)[:2]
    weights = [dlcore.Tensor(w, requires_grad=True) for w in (kernel, rec, bias)]
    for grad_mode, ws in ((dlcore.no_grad, weights), (dlcore.enable_grad, (kernel, rec, bias))):
        with grad_mode():
            out = F.gru(x, h0, *ws, mask=mask)
        for t, w in zip(out, want):
            assert t._node is None and not t.requires_grad
            np.testing.assert_array_equal(t.data, w)
    y, h_n = F.gru(x, h0, *weights, mask=mask)  # training: a node and gradients
    assert y.requires_grad and y._node is not None
    np.testing.assert_array_equal(y.data, want[0])
    (y.sum() + h_n.sum()).backward()
    assert all(w.grad is not None and np.abs(w.grad).sum() > 0 for w in weights)
