"""conv2d_transpose_forward / _backward: against the NumPy reference, finite differences,
PyTorch's conv_transpose2d, the adjoint of conv2d, threads, odd shapes and bad input."""

import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference.conv import conv2d as reference_conv2d
from reference.conv import conv2d_transpose as reference
from reference.conv import conv2d_transpose_grads as reference_grads

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}

# (N, H, W, C, OC, KH, KW, strides, padding ((t, b), (l, r)), output_padding, dilation).
# The forward runs the input-gradient pass of the convolution it transposes, the
# backward that convolution's forward (dx) and kernel gradient, each with the plan
# conv2d_plan picks for an input of y's shape: the list reaches pointwise, direct
# (K = KH*KW*OC <= 32), pixel tiles and Winograd (3x3 stride 1, OC >= 16).
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), ((0, 0), (0, 0)), (0, 0), (1, 1)),
    (2, 7, 7, 5, 3, 4, 4, (2, 2), ((1, 1), (1, 1)), (0, 0), (1, 1)),  # the DCGAN geometry
    (1, 3, 5, 2, 4, 3, 3, (2, 2), ((1, 1), (1, 1)), (1, 1), (1, 1)),  # output padding
    (2, 4, 6, 3, 2, 3, 2, (3, 1), ((0, 2), (1, 0)), (2, 0), (1, 1)),  # asymmetric, stride 3
    (2, 3, 3, 2, 3, 2, 2, (3, 3), ((0, 0), (0, 0)), (1, 1), (1, 1)),  # stride > kernel
    (2, 6, 5, 7, 3, 1, 1, (1, 1), ((0, 0), (0, 0)), (0, 0), (1, 1)),  # pointwise
    (2, 3, 3, 3, 33, 2, 2, (2, 2), ((0, 0), (0, 0)), (0, 0), (1, 1)),  # OC = 32 + 1
    (3, 7, 3, 17, 8, 3, 3, (1, 1), ((0, 0), (0, 0)), (0, 0), (2, 1)),  # dilation
    (1, 1, 7, 3, 2, 1, 3, (1, 2), ((0, 0), (1, 1)), (0, 1), (1, 1)),  # one row
    (2, 5, 4, 16, 16, 3, 3, (1, 1), ((1, 1), (1, 1)), (0, 0), (1, 1)),  # Winograd
    (3, 9, 7, 24, 17, 3, 3, (1, 1), ((0, 2), (1, 0)), (0, 0), (1, 1)),  # Winograd, asymmetric
    (2, 4, 3, 5, 7, 3, 3, (2, 2), ((3, 3), (4, 0)), (0, 0), (1, 1)),  # crops past the kernel
]
IDS = [
    f"{s[0]}x{s[1]}x{s[2]}x{s[3]}->{s[4]} k{s[5]}x{s[6]} s{s[7]} p{s[8]} op{s[9]} d{s[10]}"
    for s in SHAPES
]


def make(rng, shape, dtype):
    N, H, W, C, OC, KH, KW, strides, padding, output_padding, dilation = shape
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal((KH, KW, OC, C)).astype(dtype)
    bias = rng.standard_normal(OC).astype(dtype)
    kw = dict(strides=strides, padding=padding, output_padding=output_padding, dilation=dilation)
    return x, kernel, bias, kw


def conv_plans(x, kernel, kw):
    """The plans of the convolution the transposed one runs: its input of y's shape."""
    y_shape = reference(x, kernel, **kw).shape
    return ops.conv2d_plan(y_shape, kernel.shape, strides=kw["strides"], padding=kw["padding"],
                           dilation=kw["dilation"])  # fmt: skip


def test_the_shapes_reach_every_plan(rng):
    seen = {"forward": set(), "input_grad": set(), "weight_grads": set()}
    for shape in SHAPES:
        x, kernel, _, kw = make(rng, shape, np.float32)
        for name, plan in conv_plans(x, kernel, kw).items():
            seen[name].add(plan)
    # the transposed forward is the input_grad pass, its dx the forward pass
    assert seen["input_grad"] >= {"pointwise", "pixel_tiles", "winograd"}
    assert seen["forward"] >= {"pointwise", "direct", "pixel_tiles", "winograd"}
    assert seen["weight_grads"] >= {"pointwise", "direct", "pixel_tiles", "winograd"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_matches_reference(rng, shape, dtype):
    x, kernel, bias, kw = make(rng, shape, dtype)
    y = ops.conv2d_transpose_forward(x, kernel, bias, **kw)
    expected = reference(x, kernel, bias, **kw)
    assert y.dtype == dtype and y.shape == expected.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    np.testing.assert_allclose(
        ops.conv2d_transpose_forward(x, kernel, **kw), expected - bias, **TOL[dtype]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_backward_matches_reference(rng, shape, dtype):
    x, kernel, _, kw = make(rng, shape, dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)
    grads = ops.conv2d_transpose_backward(dy, x, kernel, **kw)
    for name, got, expected in zip(
        ("dx", "dkernel", "dbias"), grads, reference_grads(dy, x, kernel, **kw)
    ):
        assert got.dtype == dtype and got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize("index", [1, 2, 3, 4, 7, 9], ids=[IDS[i] for i in (1, 2, 3, 4, 7, 9)])
def test_backward_finite_differences(rng, index):
    N, H, W, C, OC, *rest = SHAPES[index]
    if C * H * W > 100:  # keep the finite differences small
        N, H, W = 1, min(H, 3), min(W, 3)
    x, kernel, bias, kw = make(rng, (N, H, W, C, OC, *rest), np.float64)
    w = rng.standard_normal(reference(x, kernel, **kw).shape)

    def loss():
        return float((ops.conv2d_transpose_forward(x, kernel, bias, **kw) * w).sum())

    dx, dkernel, dbias = ops.conv2d_transpose_backward(w, x, kernel, **kw)
    check_gradients(
        loss,
        {"x": x, "kernel": kernel, "bias": bias},
        {"x": dx, "kernel": dkernel, "bias": dbias},
    )


def test_is_the_adjoint_of_conv2d(rng):
    """<conv2d(a, k), b> = <a, conv2d_transpose(b, k)>, with the same (KH, KW, C, OC)
    array as conv2d's kernel and the transposed one's."""
    a, k = rng.standard_normal((2, 9, 8, 3)), rng.standard_normal((3, 4, 3, 5))
    geometry = dict(strides=(2, 3), padding=((1, 0), (2, 1)), dilation=(1, 1))
    conv = ops.conv2d_forward(a, k, **geometry)
    b = rng.standard_normal(conv.shape)
    # x of 9 rows and 8 columns convolves to conv's size; output_padding recovers them
    up = ops.conv2d_transpose_forward(b, k, **geometry, output_padding=(1, 1))
    assert up.shape == a.shape
    np.testing.assert_allclose((conv * b).sum(), (a * up).sum(), rtol=1e-12)


def test_backward_skips_unneeded_and_reads_only_what_it_needs(rng):
    x, kernel, _, kw = make(rng, SHAPES[1], np.float32)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(np.float32)
    full = ops.conv2d_transpose_backward(dy, x, kernel, **kw)
    for need in ([True, False, False], [False, True, False], [False, False, True], [False] * 3):
        flags = dict(zip(("need_dx", "need_dkernel", "need_dbias"), need))
        got = ops.conv2d_transpose_backward(dy, x, kernel, **kw, **flags)
        for wanted, g, f in zip(need, got, full):
            if wanted:
                np.testing.assert_array_equal(g, f)
            else:
                assert g is None
    # x is only a shape without need_dkernel, kernel only a shape without need_dx
    dx, _, _ = ops.conv2d_transpose_backward(dy, np.full_like(x, np.nan), kernel, **kw,
                                             need_dkernel=False)  # fmt: skip
    assert np.isfinite(dx).all()
    _, dk, _ = ops.conv2d_transpose_backward(dy, x, np.full_like(kernel, np.nan), **kw,
                                             need_dx=False)  # fmt: skip
    assert np.isfinite(dk).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index", [1, 5, 6, 10], ids=[IDS[i] for i in (1, 5, 6, 10)])
def test_threads_agree_and_repeat_exactly(rng, threads, index, dtype):
    N, *rest = SHAPES[index]
    x, kernel, bias, kw = make(rng, (4 * N, *rest), dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)

    def run():
        return [ops.conv2d_transpose_forward(x, kernel, bias, **kw),
                *ops.conv2d_transpose_backward(dy, x, kernel, **kw)]  # fmt: skip

    expected = [reference(x, kernel, bias, **kw), *reference_grads(dy, x, kernel, **kw)]
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        got = run()
        for a, b in zip(got, run()):
            np.testing.assert_array_equal(a, b)  # the same bits, run after run
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, **TOL[dtype])


def test_zero_size_batch_and_channels(rng):
    x, kernel, bias, kw = make(rng, SHAPES[1], np.float32)
    y = ops.conv2d_transpose_forward(x[:0], kernel, bias, **kw)
    assert y.shape == (0, 14, 14, 3) and y.dtype == np.float32
    dx, dk, db = ops.conv2d_transpose_backward(y, x[:0], kernel, **kw)
    assert dx.shape == (0, 7, 7, 5) and not dk.any() and not db.any() and dk.shape == kernel.shape
    # C = 0 is an empty sum: y is the bias; OC = 0 gives no output channels
    y = ops.conv2d_transpose_forward(np.ones((2, 3, 3, 0)), np.ones((2, 2, 3, 0)), bias, strides=2)
    np.testing.assert_array_equal(y, np.broadcast_to(bias, (2, 6, 6, 3)))
    assert ops.conv2d_transpose_forward(np.ones((2, 3, 3, 2)), np.ones((2, 2, 0, 2))).shape == (
        2, 4, 4, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    "x_dtype,k_dtype,expected",
    [(np.float32, np.float32, np.float32), (np.float32, np.float64, np.float64),
     (np.uint8, np.float32, np.float32), (np.int64, np.float32, np.float64)],
)  # fmt: skip
def test_dtype_promotion(rng, x_dtype, k_dtype, expected):
    x = (rng.random((2, 3, 4, 2)) * 4).astype(x_dtype)
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(k_dtype)
    y = ops.conv2d_transpose_forward(x, kernel, strides=2)
    assert y.dtype == expected
    np.testing.assert_allclose(y, reference(x, kernel, strides=(2, 2)), rtol=1e-4, atol=1e-4)
    grads = ops.conv2d_transpose_backward(np.ones(y.shape, np.float32), x, kernel, strides=2)
    assert all(g.dtype == expected for g in grads)


def test_argument_forms(rng):
    x, kernel = rng.standard_normal((1, 4, 3, 2)), rng.standard_normal((3, 2, 3, 2))
    expected = reference(x, kernel, strides=(2, 3), padding=((1, 1), (0, 0)),
                         output_padding=(1, 2), dilation=(1, 1))  # fmt: skip
    for strides, padding, output_padding in [
        ((2, 3), (1, 0), (1, 2)),
        ([2, 3], ((1, 1), (0, 0)), [np.int64(1), 2]),
    ]:
        y = ops.conv2d_transpose_forward(x, kernel, strides=strides, padding=padding,
                                         output_padding=output_padding)  # fmt: skip
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("index", [1, 2, 7], ids=[IDS[i] for i in (1, 2, 7)])
def test_matches_torch(rng, index):
    torch = pytest.importorskip("torch")
    x, kernel, bias, kw = make(rng, SHAPES[index], np.float64)
    (pad_h, _), (pad_w, _) = kw["padding"]  # symmetric here: torch's padding is
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    tk = torch.tensor(kernel.transpose(3, 2, 0, 1), requires_grad=True)  # (C, OC, KH, KW)
    tb = torch.tensor(bias, requires_grad=True)
    ty = torch.nn.functional.conv_transpose2d(
        tx, tk, tb, stride=kw["strides"], padding=(pad_h, pad_w),
        output_padding=kw["output_padding"], dilation=kw["dilation"],
    )  # fmt: skip
    y = ops.conv2d_transpose_forward(x, kernel, bias, **kw)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2)))
    dx, dk, db = ops.conv2d_transpose_backward(dy, x, kernel, **kw)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk, tk.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ bad input

X, K = np.ones((2, 3, 3, 4), np.float32), np.ones((3, 3, 2, 4), np.float32)
F, B = ops.conv2d_transpose_forward, ops.conv2d_transpose_backward
DY = np.ones((2, 5, 5, 2), np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F(np.ones((3, 3, 4)), K), ValueError,
         r"conv2d_transpose_forward: argument 'x' must be 4-D \(N, H, W, C\), got a 3-D array"),
        (lambda: F(X, np.ones((3, 3, 4))), ValueError,
         r"argument 'kernel' must be 4-D \(KH, KW, OC, C\), got a 3-D array of shape \(3, 3, 4\)"),
        (lambda: F(X, np.ones((3, 3, 4, 2))), ValueError,
         r"kernel has shape \(3, 3, 4, 2\) with 2 input channels but x has shape \(2, 3, 3, 4\) "
         r"with 4; expected kernel \(KH, KW, OC, 4\)"),
        (lambda: F(X, np.ones((0, 3, 2, 4))), ValueError,
         r"kernel has shape \(0, 3, 2, 4\); expected KH >= 1 and KW >= 1"),
        (lambda: F(X, K, np.ones(4)), ValueError,
         r"argument 'bias' has shape \(4,\) but kernel has shape \(3, 3, 2, 4\) with OC=2; "
         r"expected bias \(2,\)"),
        (lambda: F(X, K, strides=0), ValueError, r"strides must be >= 1, got \(0, 0\)"),
        (lambda: F(X, K, dilation=(1, 0)), ValueError, r"dilation must be >= 1, got \(1, 0\)"),
        (lambda: F(X, K, padding=-1), ValueError, r"padding must be >= 0"),
        (lambda: F(X, K, strides=2, output_padding=2), ValueError,
         r"output_padding along the height is 2 with stride 2; expected 0 <= output_padding < stride"),
        (lambda: F(X, K, output_padding=(0, -1)), ValueError,
         r"output_padding along the width is -1 with stride 1"),
        (lambda: F(X, K, output_padding=(1, 2, 3)), ValueError,
         r"argument 'output_padding' must be an int or a pair of ints \(h, w\), got \(1, 2, 3\)"),
        (lambda: F(X, K, output_padding=0.5), TypeError,
         r"argument 'output_padding' must be an int or a pair of ints \(h, w\), got 0.5"),
        (lambda: F(X, K, padding=((3, 2), (0, 0))), ValueError,
         r"padding \(3, 2\) crops the whole height of 5 \(3 inputs, stride 1, window 3, dilation 1\)"),
        (lambda: F(np.ones((2, 0, 3, 4)), K), ValueError,
         r"x has height 0; expected >= 1"),
        (lambda: F(X, K, strides=2**62), ValueError, r"overflows a 64-bit integer"),
        # An empty batch does not make an impossible y possible (NumPy counts alike).
        (lambda: F(np.ones((0, 2, 4, 4)), K, strides=(3, 2), dilation=2**31), ValueError,
         r"shape \(0, 4294967300, 4294967303, 2\): its number of elements overflows a 64-bit integer"),
        (lambda: F(X, K, padding=2**63), ValueError, r"argument 'padding' = 9223372036854775808 does not fit"),
        (lambda: F(X, K, padding=2**62), ValueError, r"padding \(4611686018427387904, 4611686018427387904\) crops the whole height"),
        (lambda: F(None, K), TypeError, r"argument 'x' must be an array, got None"),
        (lambda: F(X.astype(np.complex64), K), TypeError, r"argument 'x' has dtype complex64"),
        (lambda: B(DY[:, :4], X, K), ValueError,
         r"argument 'dy' has shape \(2, 4, 5, 2\) but x \(2, 3, 3, 4\) transpose-convolved with "
         r"kernel \(3, 3, 2, 4\) gives y of shape \(2, 5, 5, 2\); expected dy of that shape"),
        (lambda: B(DY[0], X, K), ValueError, r"argument 'dy' must be 4-D \(N, OH, OW, OC\)"),
        (lambda: B(DY, X, K, output_padding=3), ValueError, r"output_padding along the height is 3"),
        (lambda: B(None, X, K), TypeError, r"argument 'dy' must be an array, got None"),
    ],
)  # fmt: skip
def test_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_reference_conv2d_agrees_with_the_reference_transpose(rng):
    """The two references are written independently; their adjointness checks both."""
    a, k = rng.standard_normal((1, 5, 4, 2)), rng.standard_normal((2, 3, 2, 3))
    conv = reference_conv2d(a, k, strides=(2, 1), padding=((0, 1), (1, 1)))
    b = rng.standard_normal(conv.shape)
    up = reference(b, k, strides=(2, 1), padding=((0, 1), (1, 1)), output_padding=(0, 0))
    assert up.shape == a.shape
    np.testing.assert_allclose((conv * b).sum(), (a * up).sum(), rtol=1e-12)
