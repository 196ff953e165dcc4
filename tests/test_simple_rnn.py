import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference import simple_rnn as reference
from sequences import SHAPES, THREAD_SHAPES, TOL, assert_all_close, initial_states, masks, weights

FORWARD = ("y", "h_n")
GRADS = ("dx", "dh0", "dkernel", "drecurrent_kernel", "dbias")


def rnn_inputs(rng, N, T, I, U, dtype=np.float64, states=True):
    """(x, h0, kernel, recurrent_kernel, bias) for simple_rnn_forward."""
    x = rng.standard_normal((N, T, I)).astype(dtype)
    (h0,) = initial_states(rng, N, U, 1, dtype, states)
    return [x, h0, *weights(rng, I, U, 1, (U,), dtype)]


def incoming(rng, N, T, U, dtype=np.float64):
    return [rng.standard_normal(s).astype(dtype) for s in ((N, T, U), (N, U))]


def run(args, dy, dh_n, activation="tanh", mask=None):
    """The kernels' forward and backward, and the reference's."""
    y, h_n, cache = ops.simple_rnn_forward(*args, activation=activation, mask=mask)
    got = (y, h_n, *ops.simple_rnn_backward(dy, dh_n, cache))
    y_ref, h_ref, saved = reference.simple_rnn_forward(*args, activation, mask)
    return got, (y_ref, h_ref, *reference.simple_rnn_backward(dy, dh_n, saved))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("N,T,I,U", SHAPES)
def test_simple_rnn_matches_reference(rng, N, T, I, U, states, activation, dtype):
    args = rnn_inputs(rng, N, T, I, U, dtype, states)
    got, want = run(args, *incoming(rng, N, T, U, dtype), activation)
    assert_all_close(got, want, dtype, FORWARD + GRADS)


@pytest.mark.parametrize(
    "kind", ["random", "right_padded", "left_padded", "one_sequence", "one_step"]
)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("N,T,I,U", [(3, 7, 4, 5), (16, 6, 8, 40), (1, 9, 3, 70)])
def test_simple_rnn_masked_matches_reference(rng, N, T, I, U, activation, kind):
    args = rnn_inputs(rng, N, T, I, U)
    mask = masks(rng, N, T)[kind]
    got, want = run(args, *incoming(rng, N, T, U), activation, mask)
    assert_all_close(got, want, np.float64, FORWARD + GRADS)
    y, h0 = got[0], args[1]
    for n, t in zip(*np.nonzero(~mask)):
        np.testing.assert_array_equal(y[n, t], y[n, t - 1] if t else h0[n])


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("states", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_simple_rnn_gradients_finite_differences(rng, activation, states, masked):
    N, T, I, U = 2, 4, 3, 3
    x, h0, kernel, rec, bias = rnn_inputs(rng, N, T, I, U, states=states)
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool) if masked else None
    wy, wh = incoming(rng, N, T, U)

    def loss():
        y, h_n, _ = ops.simple_rnn_forward(
            x, h0, kernel, rec, bias, activation=activation, mask=mask
        )
        return float((y * wy).sum() + (h_n * wh).sum())

    cache = ops.simple_rnn_forward(x, h0, kernel, rec, bias, activation=activation, mask=mask)[2]
    grads = dict(zip(GRADS, ops.simple_rnn_backward(wy, wh, cache)))
    inputs = {"dx": x, "dkernel": kernel, "drecurrent_kernel": rec, "dbias": bias}
    if states:
        inputs["dh0"] = h0
    check_gradients(loss, inputs, grads)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_simple_rnn_matches_torch(rng, activation):
    torch = pytest.importorskip("torch")
    N, T, I, U = 4, 9, 7, 12
    x, h0, kernel, rec, bias = rnn_inputs(rng, N, T, I, U)
    dy, dh_n = incoming(rng, N, T, U)
    rnn = torch.nn.RNN(I, U, nonlinearity=activation, batch_first=True).double()
    with torch.no_grad():  # torch keeps W^T and two biases
        rnn.weight_ih_l0.copy_(torch.from_numpy(kernel.T))
        rnn.weight_hh_l0.copy_(torch.from_numpy(rec.T))
        rnn.bias_ih_l0.copy_(torch.from_numpy(bias / 4))
        rnn.bias_hh_l0.copy_(torch.from_numpy(bias * 3 / 4))
    tx, th0 = (torch.tensor(a, requires_grad=True) for a in (x, h0))
    ty, th = rnn(tx, th0[None])
    torch.autograd.backward([ty, th[0]], [torch.from_numpy(a) for a in (dy, dh_n)])

    y, h_n, cache = ops.simple_rnn_forward(x, h0, kernel, rec, bias, activation=activation)
    dx, dh0, dk, dr, db = ops.simple_rnn_backward(dy, dh_n, cache)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(h_n, th[0].detach().numpy(), **tol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(dh0, th0.grad.numpy(), **tol)
    np.testing.assert_allclose(dk, rnn.weight_ih_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(dr, rnn.weight_hh_l0.grad.numpy().T, **tol)
    np.testing.assert_allclose(db, rnn.bias_ih_l0.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("N,T,I,U", THREAD_SHAPES)
def test_simple_rnn_one_and_two_threads_agree(rng, threads, N, T, I, U, masked, activation, dtype):
    args = rnn_inputs(rng, N, T, I, U, dtype)
    mask = masks(rng, N, T)["random"] if masked else None
    dy, dh_n = incoming(rng, N, T, U, dtype)
    results = {}
    for n in (1, 2):
        ops.set_num_threads(n)
        y, h_n, cache = ops.simple_rnn_forward(*args, activation=activation, mask=mask)
        results[n] = (y, h_n) + ops.simple_rnn_backward(dy, dh_n, cache)
    # As the LSTM's: the weight gradients (Eigen's GEMM) and dbias (summed by thread)
    # differ in rounding only, every other result is bit-identical.
    for one, two, name in zip(results[1], results[2], FORWARD + GRADS):
        if name in ("dkernel", "drecurrent_kernel", "dbias"):
            np.testing.assert_allclose(one, two, err_msg=name, **TOL[dtype])
        else:
            np.testing.assert_array_equal(one, two, err_msg=name)


def test_simple_rnn_cache_serves_several_backwards(rng):
    args = rnn_inputs(rng, 2, 3, 4, 5)
    dy, dh_n = incoming(rng, 2, 3, 5)
    cache = ops.simple_rnn_forward(*args, activation="relu", mask=np.ones((2, 3)))[2]
    assert (
        repr(cache)
        == "SimpleRnnCache(N=2, T=3, I=4, U=5, activation='relu', masked, dtype=float64)"
    )
    first, second = (
        ops.simple_rnn_backward(dy, dh_n, cache),
        ops.simple_rnn_backward(dy, dh_n, cache),
    )
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(
        TypeError,
        match=r"'cache' must be the SimpleRnnCache returned by simple_rnn_forward, got GruCache",
    ):
        ops.simple_rnn_backward(
            None,
            None,
            ops.gru_forward(*args[:2], np.ones((4, 15)), np.ones((5, 15)), np.ones((2, 15)))[2],
        )


@pytest.mark.parametrize("N,I,U", [(0, 3, 4), (2, 0, 4), (2, 3, 0)])
def test_simple_rnn_zero_sizes(rng, N, I, U):
    args = rnn_inputs(rng, N, 3, I, U, np.float32)
    got, want = run(args, np.ones((N, 3, U), np.float32), None)
    assert_all_close(got, want, np.float32, FORWARD + GRADS)


def test_simple_rnn_any_dtype_and_layout(rng):
    x, h0, kernel, rec, bias = rnn_inputs(rng, 3, 4, 5, 6)
    args = [
        (x * 3).astype(np.int32),
        h0.astype(np.float32),
        kernel.astype(np.float32),
        rec,
        bias.astype(np.float16),
    ]
    y, _, cache = ops.simple_rnn_forward(
        args[0], args[1], np.asfortranarray(args[2]), args[3][::-1][::-1], args[4]
    )
    assert y.dtype == np.float64  # int32 promotes float32 to float64, as in NumPy
    np.testing.assert_allclose(y, reference.simple_rnn_forward(*args)[0], **TOL[np.float64])


@pytest.mark.parametrize(
    "name,value,msg",
    [
        ("x", np.ones((2, 4)), r"'x' must be 3-D \(N, T, I\), got a 2-D array of shape \(2, 4\)"),
        ("kernel", np.ones((4, 6)), r"'kernel' has shape \(4, 6\); expected \(I, U\) = \(4, 5\)"),
        (
            "recurrent_kernel",
            np.ones((5, 6)),
            r"'recurrent_kernel' has shape \(5, 6\); expected \(U, U\) for U hidden units, i.e. \(5, 5\)",
        ),
        ("bias", np.ones(4), r"'bias' has shape \(4,\); expected \(U,\) = \(5,\)"),
        ("bias", np.ones((1, 5)), r"'bias' must be 1-D \(U,\), got a 2-D"),
        ("h0", np.ones((2, 4)), r"'h0' has shape \(2, 4\); expected \(N, U\) = \(2, 5\)"),
        (
            "x",
            np.ones((2, 0, 4)),
            r"'x' has shape \(2, 0, 4\), a sequence of length T=0; expected T >= 1",
        ),
    ],
)
def test_simple_rnn_forward_rejects_bad_shapes(rng, name, value, msg):
    args = dict(zip(("x", "h0", "kernel", "recurrent_kernel", "bias"), rnn_inputs(rng, 2, 3, 4, 5)))
    args[name] = value
    with pytest.raises(ValueError, match=rf"simple_rnn_forward: argument {msg}"):
        ops.simple_rnn_forward(*args.values())


def test_simple_rnn_rejects_bad_activation_mask_and_gradients(rng):
    args = rnn_inputs(rng, 2, 3, 4, 5)
    with pytest.raises(
        ValueError, match=r"argument 'activation' is 'sigmoid'; expected 'tanh' or 'relu'"
    ):
        ops.simple_rnn_forward(*args, activation="sigmoid")
    with pytest.raises(
        ValueError, match=r"'mask' has shape \(3, 2\); expected \(N, T\) = \(2, 3\)"
    ):
        ops.simple_rnn_forward(*args, mask=np.ones((3, 2)))
    cache = ops.simple_rnn_forward(*args)[2]
    with pytest.raises(ValueError, match=r"'dy' has shape \(2, 3, 4\); expected \(2, 3, 5\)"):
        ops.simple_rnn_backward(np.ones((2, 3, 4)), None, cache)
    with pytest.raises(ValueError, match=r"'dh_n' has shape \(5,\); expected \(2, 5\)"):
        ops.simple_rnn_backward(None, np.ones(5), cache)
