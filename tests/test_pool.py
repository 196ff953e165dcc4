import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference.pool import maxpool2d as reference
from reference.pool import maxpool2d_backward as reference_backward

# (N, H, W, C, pool_size, strides, padding ((t, b), (l, r)))
SHAPES = [
    (1, 1, 1, 1, (1, 1), (1, 1), ((0, 0), (0, 0))),
    (2, 6, 6, 3, (2, 2), (2, 2), ((0, 0), (0, 0))),
    (2, 7, 5, 4, (2, 2), (2, 2), ((0, 0), (0, 0))),  # odd sizes: the edge is dropped
    (3, 7, 7, 5, (3, 3), (2, 2), ((0, 0), (0, 0))),  # overlapping windows
    (2, 7, 9, 3, (3, 3), (2, 2), ((1, 1), (1, 1))),  # overlapping and padded
    (1, 8, 7, 2, (2, 3), (1, 2), ((1, 0), (0, 2))),  # non-square, asymmetric
    (2, 9, 9, 1, (3, 3), (3, 3), ((2, 0), (0, 2))),  # C = 1, stride 3
    (2, 5, 6, 33, (5, 5), (1, 1), ((0, 0), (0, 0))),  # window = image height
    (2, 6, 5, 19, (2, 2), (2, 2), ((0, 0), (0, 0))),  # 2x2 windows: packets and a tail
    (1, 5, 6, 8, (2, 2), (1, 1), ((0, 1), (1, 0))),  # 2x2 overlapping, the edge ones clipped
]
IDS = [f"{s[0]}x{s[1]}x{s[2]}x{s[3]} pool{s[4]} s{s[5]} p{s[6]}" for s in SHAPES]


def call(x, shape):
    return ops.maxpool2d_forward(x, pool_size=shape[4], strides=shape[5], padding=shape[6])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_maxpool2d_matches_reference(rng, shape, dtype):
    x = rng.standard_normal(shape[:4]).astype(dtype)
    y, argmax = call(x, shape)
    y_ref, argmax_ref = reference(x, *shape[4:])
    assert y.dtype == dtype and argmax.dtype == np.int64 and y.shape == argmax.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(x.reshape(-1)[argmax], y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.maxpool2d_backward(dy, argmax, x.shape)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(
        dx, reference_backward(dy, argmax_ref, x.shape), rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_maxpool2d_inference_gives_the_same_values_without_positions(rng, shape, dtype):
    x = rng.standard_normal(shape[:4]).astype(dtype)
    x.reshape(-1)[:: max(1, x.size // 5)] = np.nan  # a NaN wins in both paths
    y_ref, _ = reference(x, *shape[4:])
    y, argmax = ops.maxpool2d_forward(
        x, pool_size=shape[4], strides=shape[5], padding=shape[6], need_argmax=False
    )
    assert argmax is None and y.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(y, call(x, shape)[0])


def test_max_pool_keeps_no_positions_when_no_gradient_is_wanted(monkeypatch):
    import dlcore
    import dlcore.functional as F

    asked = []
    real = ops.maxpool2d_forward

    def spy(*args, **kwargs):
        asked.append(kwargs.get("need_argmax", True))
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "maxpool2d_forward", spy)
    x = dlcore.Tensor(np.arange(32.0).reshape(1, 4, 4, 2), requires_grad=True)
    with dlcore.no_grad():
        F.max_pool2d(x, 2)
    F.max_pool2d(dlcore.Tensor(x.data), 2)  # a constant needs no gradient either
    y = F.max_pool2d(x, 2)
    y.sum().backward()
    assert asked == [False, False, True]
    assert x.grad.sum() == 8  # one 1 per window reached its maximum


def test_maxpool2d_ties_go_to_the_first_in_window_order():
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 0, 1] = x[0, 0, 1, 1] = 5.0  # same value: (0, 1) comes first in (kh, kw) order
    y, argmax = ops.maxpool2d_forward(x, pool_size=2)
    assert argmax[0, 0, 0, 0] == 0  # all zeros: the first cell
    assert argmax[0, 0, 0, 1] == (0 * 4 + 1) * 2 + 1  # (0, 1), not (1, 0)
    np.testing.assert_array_equal(argmax, reference(x, (2, 2), (2, 2))[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("strides", [(2, 2), (1, 1)])
def test_maxpool2d_2x2_ties_and_nans_on_every_lane(rng, dtype, strides):
    """Whole 2x2 windows take their own path: over packets of channels and the channels
    after them, ties still go to the first cell and the first NaN still wins, with the
    argmax of the reference."""
    x = rng.integers(0, 3, (3, 6, 7, 21)).astype(dtype)  # few values: ties everywhere
    x[rng.random(x.shape) < 0.05] = np.nan
    y, argmax = ops.maxpool2d_forward(x, pool_size=2, strides=strides)
    y_ref, argmax_ref = reference(x, (2, 2), strides)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    values, none = ops.maxpool2d_forward(x, pool_size=2, strides=strides, need_argmax=False)
    assert none is None
    np.testing.assert_array_equal(values, y_ref)


def test_maxpool2d_padding_never_wins():
    x = -np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    x[0, 0, 0, 0] = -np.inf
    y, argmax = ops.maxpool2d_forward(x, pool_size=2, strides=2, padding=1)
    assert (y < 0).all()  # a zero from the padding would have won
    np.testing.assert_array_equal(argmax, reference(x, (2, 2), (2, 2), ((1, 1), (1, 1)))[1])
    # the corner window holds one cell, -inf, and padding: the cell wins
    assert y[0, 0, 0, 0] == -np.inf and argmax[0, 0, 0, 0] == 0


def test_maxpool2d_nan_wins_and_propagates():
    x = np.arange(32, dtype=np.float32).reshape(1, 4, 4, 2)
    x[0, 0, 1, 0] = np.nan
    x[0, 1, 1, 0] = np.nan
    x[0, 3, 3, 1] = np.nan
    y, argmax = ops.maxpool2d_forward(x, pool_size=2)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == (0 * 4 + 1) * 2  # the first NaN
    assert np.isnan(y[0, 1, 1, 1]) and argmax[0, 1, 1, 1] == (3 * 4 + 3) * 2 + 1
    assert np.isnan(y).sum() == 2
    np.testing.assert_array_equal(argmax, reference(x, (2, 2), (2, 2))[1])


def test_maxpool2d_overlapping_windows_accumulate():
    x = np.zeros((1, 5, 5, 1))
    x[0, 2, 2, 0] = 1.0  # the max of all four overlapping 3x3 windows
    y, argmax = ops.maxpool2d_forward(x, pool_size=3, strides=1)
    assert (argmax == 12).all()
    dx = ops.maxpool2d_backward(np.full(y.shape, 0.5), argmax, x.shape)
    assert dx[0, 2, 2, 0] == 0.5 * 9 and dx.sum() == 0.5 * 9


def test_maxpool2d_backward_finite_differences(rng):
    # distinct values a few eps apart from nothing: the argmax is stable under +-1e-6
    x = rng.permutation(2 * 7 * 9 * 3).reshape(2, 7, 9, 3).astype(np.float64) / 10
    w = rng.standard_normal(call(x, SHAPES[4])[0].shape)

    def loss():
        return float((call(x, SHAPES[4])[0] * w).sum())

    dx = ops.maxpool2d_backward(w, call(x, SHAPES[4])[1], x.shape)
    check_gradients(loss, {"x": x}, {"x": dx})


def test_maxpool2d_strides_default_to_pool_size(rng):
    x = rng.standard_normal((2, 9, 9, 3))
    y, argmax = ops.maxpool2d_forward(x, pool_size=(3, 2))
    y_ref, argmax_ref = reference(x, (3, 2), (3, 2))
    np.testing.assert_array_equal(argmax, argmax_ref)
    y2, _ = ops.maxpool2d_forward(x, pool_size=(3, 2), strides=None, padding=(0, 0))
    np.testing.assert_array_equal(y, y2)


def test_maxpool2d_non_contiguous_inputs(rng):
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    xf = np.asfortranarray(x)
    y, argmax = call(xf, SHAPES[4])
    np.testing.assert_array_equal(argmax, reference(x, *SHAPES[4][4:])[1])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.maxpool2d_backward(np.asfortranarray(dy), np.asfortranarray(argmax), x.shape)
    np.testing.assert_allclose(dx, reference_backward(dy, argmax, x.shape), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maxpool2d_threads_agree(rng, threads, dtype):
    x = rng.standard_normal((5, 13, 11, 7)).astype(dtype)
    dy = rng.standard_normal((5, 6, 5, 7)).astype(dtype)
    out = []
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        y, argmax = ops.maxpool2d_forward(x, pool_size=3, strides=2, padding=0)
        out.append((y, argmax, ops.maxpool2d_backward(dy, argmax, x.shape)))
    for got in out[1:]:
        for a, b in zip(out[0], got):
            np.testing.assert_array_equal(a, b)


def test_maxpool2d_zero_size_batch():
    x = np.ones((0, 4, 4, 3), np.float32)
    y, argmax = ops.maxpool2d_forward(x)
    assert y.shape == argmax.shape == (0, 2, 2, 3)
    dx = ops.maxpool2d_backward(y, argmax, x.shape)
    assert dx.shape == x.shape and dx.dtype == np.float32


def test_maxpool2d_backward_accepts_list_shape_and_promotes_dtype():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y, argmax = ops.maxpool2d_forward(x)
    dx = ops.maxpool2d_backward(np.ones(y.shape, np.int64), argmax, list(x.shape))
    assert dx.dtype == np.float64 and dx.sum() == 4


# ------------------------------------------------------------------ bad input

X = np.ones((2, 6, 6, 3), np.float32)
Y, A = ops.maxpool2d_forward(X)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: ops.maxpool2d_forward(np.ones((6, 6, 3))),
            ValueError,
            r"argument 'x' must be 4-D \(N, H, W, C\), got a 3-D array of shape \(6, 6, 3\)",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size=0),
            ValueError,
            r"pool_size must be >= 1, got \(0, 0\)",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size=(2, -1)),
            ValueError,
            r"pool_size must be >= 1, got \(2, -1\)",
        ),
        (
            lambda: ops.maxpool2d_forward(X, strides=0),
            ValueError,
            r"strides must be >= 1, got \(0, 0\)",
        ),
        (
            lambda: ops.maxpool2d_forward(X, padding=-1),
            ValueError,
            r"padding must be >= 0, got \(\(-1, -1\), \(-1, -1\)\)",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size=2, padding=((0, 2), (0, 0))),
            ValueError,
            r"padding \(\(0, 2\), \(0, 0\)\) must be smaller than pool_size \(2, 2\) on every side",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size=7),
            ValueError,
            r"the height window spans 7 \(size 7, dilation 1\) but the padded input has height 6",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size=(1, 2, 3)),
            ValueError,
            r"argument 'pool_size' must be an int or a pair of ints \(h, w\), got \(1, 2, 3\)",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size="2"),
            TypeError,
            r"argument 'pool_size' must be .*, got '2'",
        ),
        (
            lambda: ops.maxpool2d_forward(X, padding=[[0, 1]]),
            ValueError,
            r"argument 'padding' must be",
        ),
        (
            lambda: ops.maxpool2d_forward(X, strides=2**64),
            ValueError,
            r"argument 'strides' = 18446744073709551616 does not fit",
        ),
        (
            lambda: ops.maxpool2d_forward(X, pool_size=2**62, padding=(2**62 - 1, 0)),
            ValueError,
            r"overflows a 64-bit integer",
        ),
        (
            lambda: ops.maxpool2d_forward(None),
            TypeError,
            r"argument 'x' must be an array, got None",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A.astype(np.int32), X.shape),
            TypeError,
            r"argument 'argmax' has dtype int32; expected int64",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A.astype(np.float64), X.shape),
            TypeError,
            r"argument 'argmax' has dtype float64; expected int64",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, None, X.shape),
            TypeError,
            r"argument 'argmax' must be an array, got None",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A[:, :2], X.shape),
            ValueError,
            r"argument 'argmax' has shape \(2, 2, 3, 3\) but dy has shape \(2, 3, 3, 3\); expected the same shape",
        ),
        (
            lambda: ops.maxpool2d_backward(Y[0], A[0], X.shape),
            ValueError,
            r"argument 'dy' must be 4-D \(N, OH, OW, C\), got a 3-D array",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A, (2, 6, 6)),
            ValueError,
            r"argument 'x_shape' must be a tuple of 4 ints \(N, H, W, C\), got \(2, 6, 6\)",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A, 12),
            TypeError,
            r"argument 'x_shape' must be a tuple of 4 ints",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A, (2, 6.0, 6, 3)),
            TypeError,
            r"argument 'x_shape' must be .*, got 6.0",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A, (2, -6, 6, 3)),
            ValueError,
            r"argument 'x_shape' is \(2, -6, 6, 3\); expected 4 sizes >= 0",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A, (2, 2**40, 2**40, 3)),
            ValueError,
            r"overflows a 64-bit integer",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, A, (3, 6, 6, 3)),
            ValueError,
            r"argument 'dy' has shape \(2, 3, 3, 3\) but x_shape is \(3, 6, 6, 3\); expected dy \(3, OH, OW, 3\)",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, np.where(A == A[0, 1, 1, 2], 108, A), X.shape),
            ValueError,
            r"argmax holds 108 at flat position 14 \(sample 0\); expected an index into that sample of x_shape \(2, 6, 6, 3\), in \[0, 108\)",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, np.where(A == A[1, 0, 0, 0], -1, A), X.shape),
            ValueError,
            r"argmax holds -1 at flat position 27 \(sample 1\); expected .* in \[108, 216\)",
        ),
        (
            lambda: ops.maxpool2d_backward(Y, np.where(A == A[1, 0, 0, 0], -(2**63), A), X.shape),
            ValueError,
            r"argmax holds -9223372036854775808",
        ),
    ],
)
def test_maxpool2d_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_maxpool2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 9, 7, 3))
    y, argmax = ops.maxpool2d_forward(x, pool_size=3, strides=2, padding=1)
    ty, tidx = torch.nn.functional.max_pool2d(
        torch.tensor(x.transpose(0, 3, 1, 2)), 3, 2, 1, return_indices=True
    )
    np.testing.assert_array_equal(y, ty.numpy().transpose(0, 2, 3, 1))
    # torch's indices are per (n, c) plane, h * W + w; ours are flat channels-last
    n, c = np.arange(2)[:, None, None, None], np.arange(3)[None, None, None, :]
    plane = tidx.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(argmax, ((n * 9 + plane // 7) * 7 + plane % 7) * 3 + c)


def test_maxpool2d_backward_names_an_x_shape_too_large_to_allocate():
    # 2**62 elements fit int64 but not memory: NumPy's "array is too big" named nothing.
    dy, argmax = np.ones((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.int64)
    with pytest.raises(ValueError, match=r"argument 'x_shape' is \(1, 2147483648, 2147483648, 1\)"):
        ops.maxpool2d_backward(dy, argmax, (1, 2**31, 2**31, 1))


# ------------------------------------------------------------------ average pool

from reference.pool import avgpool2d as reference_avg  # noqa: E402
from reference.pool import avgpool2d_backward as reference_avg_backward  # noqa: E402
from reference.pool import global_avgpool as reference_global  # noqa: E402
from reference.pool import global_avgpool_backward as reference_global_backward  # noqa: E402

AVG_TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-13)}


def avg_window(shape):
    return dict(pool_size=shape[4], strides=shape[5], padding=shape[6])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_avgpool2d_matches_reference(rng, shape, dtype):
    x = rng.standard_normal(shape[:4]).astype(dtype)
    y = ops.avgpool2d_forward(x, **avg_window(shape))
    y_ref = reference_avg(x, *shape[4:])
    assert y.dtype == dtype and y.shape == y_ref.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, y_ref, **AVG_TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.avgpool2d_backward(dy, x.shape, **avg_window(shape))
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(
        dx, reference_avg_backward(dy, x.shape, *shape[4:]), **AVG_TOL[dtype]
    )


def test_avgpool2d_leaves_padding_out_of_the_mean():
    x = np.ones((1, 3, 3, 2))
    y = ops.avgpool2d_forward(x, pool_size=3, strides=1, padding=1)
    np.testing.assert_array_equal(y, np.ones((1, 3, 3, 2)))  # zeros counted would lower the edges
    dx = ops.avgpool2d_backward(np.ones_like(y), x.shape, pool_size=3, strides=1, padding=1)
    # the corner cell is in 4 windows of 4 cells, the centre in 9 windows: 4 of 4 cells,
    # 4 of 6, 1 of 9
    assert dx[0, 0, 0, 0] == pytest.approx(1 / 4 + 2 / 6 + 1 / 9)
    assert dx[0, 1, 1, 0] == pytest.approx(4 / 4 + 4 / 6 + 1 / 9)


def test_avgpool2d_backward_finite_differences(rng):
    x = rng.standard_normal((2, 7, 6, 3))
    window = dict(pool_size=(3, 2), strides=(2, 1), padding=((1, 1), (0, 1)))
    w = rng.standard_normal(ops.avgpool2d_forward(x, **window).shape)

    def loss():
        return float((ops.avgpool2d_forward(x, **window) * w).sum())

    check_gradients(loss, {"x": x}, {"x": ops.avgpool2d_backward(w, x.shape, **window)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avgpool2d_threads_agree(rng, threads, dtype):
    x = rng.standard_normal((5, 13, 11, 7)).astype(dtype)
    window = dict(pool_size=3, strides=2, padding=1)
    dy = rng.standard_normal((5, 7, 6, 7)).astype(dtype)
    out = []
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        out.append(
            (ops.avgpool2d_forward(x, **window), ops.avgpool2d_backward(dy, x.shape, **window))
        )
    for got in out[1:]:
        for a, b in zip(out[0], got):
            np.testing.assert_array_equal(a, b)


def test_avgpool2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 9, 7, 3))
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, 3, 2, 1, count_include_pad=False)
    y = ops.avgpool2d_forward(x, pool_size=3, strides=2, padding=1)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-13)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    dx = ops.avgpool2d_backward(dy, x.shape, pool_size=3, strides=2, padding=1)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-13)


def test_avgpool2d_zero_size_and_dtypes():
    x = np.ones((0, 4, 4, 3), np.float32)
    y = ops.avgpool2d_forward(x)
    assert y.shape == (0, 2, 2, 3) and y.dtype == np.float32
    assert ops.avgpool2d_backward(y, x.shape).shape == x.shape
    y = ops.avgpool2d_forward(np.arange(16, dtype=np.int64).reshape(1, 4, 4, 1))
    assert y.dtype == np.float64 and y[0, 0, 0, 0] == 2.5
    dx = ops.avgpool2d_backward(np.ones((1, 2, 2, 1), np.uint8), [1, 4, 4, 1])
    assert dx.dtype == np.float32 and (dx == 0.25).all()


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: ops.avgpool2d_forward(np.ones((6, 6, 3))), ValueError,
         r"avgpool2d_forward: argument 'x' must be 4-D \(N, H, W, C\), got a 3-D array"),
        (lambda: ops.avgpool2d_forward(X, pool_size=(2, 0)), ValueError,
         r"pool_size must be >= 1, got \(2, 0\)"),
        (lambda: ops.avgpool2d_forward(X, strides=(0, 1)), ValueError, r"strides must be >= 1"),
        (lambda: ops.avgpool2d_forward(X, pool_size=3, padding=((0, 3), (0, 0))), ValueError,
         r"padding \(\(0, 3\), \(0, 0\)\) must be smaller than pool_size \(3, 3\) on every side"),
        (lambda: ops.avgpool2d_forward(X, pool_size=7), ValueError,
         r"the height window spans 7 .* padded input has height 6"),
        (lambda: ops.avgpool2d_forward(X.astype(object)), TypeError, r"argument 'x' has dtype object"),
        (lambda: ops.avgpool2d_backward(Y, X.shape, pool_size=3), ValueError,
         r"avgpool2d_backward: argument 'dy' has shape \(2, 3, 3, 3\) but x_shape \(2, 6, 6, 3\) pooled "
         r"with this window gives y of shape \(2, 2, 2, 3\); expected dy of that shape"),
        (lambda: ops.avgpool2d_backward(Y, (2, 6, 6)), ValueError,
         r"argument 'x_shape' must be a tuple of 4 ints \(N, H, W, C\), got \(2, 6, 6\)"),
        (lambda: ops.avgpool2d_backward(Y, (2, -6, 6, 3)), ValueError,
         r"argument 'x_shape' is \(2, -6, 6, 3\); expected 4 sizes >= 0"),
        (lambda: ops.avgpool2d_backward(Y, (2, 2**40, 2**40, 3)), ValueError, r"overflows a 64-bit integer"),
        (lambda: ops.avgpool2d_backward(Y, (1, 2**31, 2**31, 1), pool_size=(2**30, 2**30)), ValueError,
         r"argument 'x_shape' is \(1, 2147483648, 2147483648, 1\), .*\(the gradient's bytes must fit"),
        (lambda: ops.avgpool2d_backward(Y[0], X.shape), ValueError, r"argument 'dy' must be 4-D"),
        (lambda: ops.avgpool2d_backward(None, X.shape), TypeError, r"argument 'dy' must be an array, got None"),
        (lambda: ops.avgpool2d_backward(Y, X.shape, strides="2"), TypeError, r"argument 'strides' must be"),
    ],
)  # fmt: skip
def test_avgpool2d_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ global average pool

GLOBAL_SHAPES = [(1, 1, 1), (2, 7, 3), (3, 5, 33), (2, 3, 4, 5), (1, 1, 7, 2), (4, 0, 3), (0, 5, 2)]


def keep_mask(rng, shape):
    mask = rng.random(shape[:-1]) < 0.6
    if shape[0] and np.prod(shape[1:-1]):
        mask.reshape(shape[0], -1)[:, 0] = True  # a position kept in every sample
    return mask


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=str)
def test_global_avgpool_matches_reference(rng, shape, dtype, masked):
    x = rng.standard_normal(shape).astype(dtype)
    mask = keep_mask(rng, shape) if masked else None
    y = ops.global_avgpool_forward(x, mask)
    assert y.dtype == dtype and y.shape == (shape[0], shape[-1])
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(y, reference_global(x, mask), **AVG_TOL[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.global_avgpool_backward(dy, x.shape, mask)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, reference_global_backward(dy, x.shape, mask), **AVG_TOL[dtype])


def test_global_avgpool_mask_leaves_out_what_it_hides():
    x = np.array([[[1.0], [np.nan], [3.0], [np.inf]]])
    mask = np.array([[True, False, True, False]])
    assert ops.global_avgpool_forward(x, mask)[0, 0] == 2.0  # NaN and inf hidden
    dx = ops.global_avgpool_backward(np.ones((1, 1)), x.shape, mask)
    np.testing.assert_array_equal(dx[0, :, 0], [0.5, 0, 0.5, 0])
    # a sample the mask hides whole has no mean (0 / 0), as in Keras; no gradient reaches it
    none = np.zeros((1, 4), bool)
    assert np.isnan(ops.global_avgpool_forward(x, none)).all()
    assert not ops.global_avgpool_backward(np.ones((1, 1)), x.shape, none).any()


def test_global_avgpool_backward_finite_differences(rng):
    x = rng.standard_normal((2, 3, 4, 3))
    mask = keep_mask(rng, x.shape)
    w = rng.standard_normal((2, 3))

    def loss():
        return float((ops.global_avgpool_forward(x, mask) * w).sum())

    check_gradients(loss, {"x": x}, {"x": ops.global_avgpool_backward(w, x.shape, mask)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avgpool_threads_agree(rng, threads, dtype):
    x = rng.standard_normal((9, 13, 11, 7)).astype(dtype)
    mask = keep_mask(rng, x.shape)
    dy = rng.standard_normal((9, 7)).astype(dtype)
    out = []
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        out.append((ops.global_avgpool_forward(x, mask), ops.global_avgpool_backward(dy, x.shape)))
    for got in out[1:]:
        for a, b in zip(out[0], got):
            np.testing.assert_array_equal(a, b)


XG = np.ones((2, 5, 3), np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: ops.global_avgpool_forward(np.ones((2, 3))), ValueError,
         r"global_avgpool_forward: argument 'x' must be 3-D \(N, T, C\) or 4-D \(N, H, W, C\), got a 2-D array of shape \(2, 3\)"),
        (lambda: ops.global_avgpool_forward(np.ones((1, 2, 3, 4, 5))), ValueError, r"got a 5-D array"),
        (lambda: ops.global_avgpool_forward(XG, np.ones((2, 5))), TypeError,
         r"argument 'mask' has dtype float64; expected bool"),
        (lambda: ops.global_avgpool_forward(XG, np.ones((2, 4), bool)), ValueError,
         r"argument 'mask' has shape \(2, 4\) but x has shape \(2, 5, 3\); expected mask \(2, 5\)"),
        (lambda: ops.global_avgpool_forward(XG, "yes"), TypeError, r"argument 'mask' has dtype <U3"),
        (lambda: ops.global_avgpool_forward(None), TypeError, r"argument 'x' must be an array, got None"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 4)), XG.shape), ValueError,
         r"argument 'dy' has shape \(2, 4\) but x_shape is \(2, 5, 3\); expected dy \(2, 3\)"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 3, 1)), XG.shape), ValueError,
         r"argument 'dy' must be 2-D \(N, C\)"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 3)), (2, 3)), ValueError,
         r"argument 'x_shape' must be a tuple of 3 or 4 ints \(N, ..., C\), got \(2, 3\)"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 3)), (2, -1, 3)), ValueError,
         r"argument 'x_shape' is \(2, -1, 3\); expected sizes >= 0"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 3)), (2, 2**62, 2**3, 3)), ValueError,
         r"overflows a 64-bit integer"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 3)), (2, 5, 3), np.ones((2, 5, 3), bool)), ValueError,
         r"argument 'mask' has shape \(2, 5, 3\) but x has shape \(2, 5, 3\); expected mask \(2, 5\)"),
        (lambda: ops.global_avgpool_backward(np.ones((2, 3)), 7), TypeError, r"argument 'x_shape' must be"),
    ],
)  # fmt: skip
def test_global_avgpool_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
