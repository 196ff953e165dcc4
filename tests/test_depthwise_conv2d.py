"""depthwise_conv2d_forward / _backward: against the NumPy reference, finite differences,
PyTorch's grouped conv2d, threads, odd shapes and bad input; the functional form's
autograd."""

import numpy as np
import pytest

import dlcore
from dlcore import ops
from gradcheck import check_gradients, check_tensor_op
from reference.conv import conv2d as reference_conv2d
from reference.conv import depthwise_as_conv2d_kernel
from reference.conv import depthwise_conv2d as reference
from reference.conv import depthwise_conv2d_grads as reference_grads

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}

# (N, H, W, C, M, KH, KW, strides, padding ((t, b), (l, r)), dilation); y has C*M channels.
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (1, 7, 5, 3, 2, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # non-square image, 'same'
    (2, 7, 5, 7, 1, 3, 3, (2, 3), ((0, 2), (1, 0)), (1, 1)),  # stride (2, 3), asymmetric
    (1, 6, 7, 3, 3, 2, 5, (1, 1), ((0, 0), (2, 2)), (1, 1)),  # 2x5
    (2, 7, 6, 1, 2, 5, 2, (2, 1), ((2, 2), (0, 1)), (2, 1)),  # 5x2, dilation (2, 1)
    (1, 1, 1, 3, 2, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # a 1x1 image, padded
    (1, 5, 5, 7, 3, 1, 1, (1, 1), ((0, 0), (0, 0)), (1, 1)),  # 1x1 kernel
    (1, 4, 9, 7, 2, 1, 1, (2, 3), ((0, 0), (0, 0)), (1, 1)),  # 1x1 kernel, strided
    (2, 9, 8, 3, 1, 3, 3, (2, 2), ((1, 1), (1, 1)), (2, 1)),  # stride 2 and dilation
    (1, 3, 3, 5, 2, 3, 3, (1, 1), ((2, 0), (0, 2)), (1, 1)),  # windows mostly padding
    (1, 8, 6, 1, 3, 3, 3, (1, 1), ((0, 2), (1, 0)), (1, 2)),  # C = 1, M = 3
    (3, 8, 8, 16, 1, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # MobileNet's 3x3
    (2, 10, 11, 17, 2, 3, 3, (2, 2), ((0, 1), (0, 1)), (1, 1)),  # 34 channels: past a vector
    (1, 12, 7, 33, 1, 5, 5, (1, 1), ((2, 2), (2, 2)), (1, 1)),  # 5x5, C = 32 + 1
    (1, 5, 4, 65, 2, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # C = 64 + 1: 2 channel blocks
]
IDS = [f"{s[0]}x{s[1]}x{s[2]}x{s[3]}*{s[4]} k{s[5]}x{s[6]} s{s[7]} p{s[8]} d{s[9]}" for s in SHAPES]


def make(rng, shape, dtype):
    N, H, W, C, M, KH, KW, strides, padding, dilation = shape
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal((KH, KW, C, M)).astype(dtype)
    bias = rng.standard_normal(C * M).astype(dtype)
    return x, kernel, bias, dict(strides=strides, padding=padding, dilation=dilation)


def forward_and_grads(x, kernel, bias, dy, kw):
    return [ops.depthwise_conv2d_forward(x, kernel, bias, **kw),
            *ops.depthwise_conv2d_backward(dy, x, kernel, **kw)]  # fmt: skip


def assert_matches_reference(got, x, kernel, bias, dy, kw, dtype):
    """y, dx, dkernel and dbias against the reference: dtype, shape and values."""
    expected = [reference(x, kernel, bias, **kw), *reference_grads(dy, x, kernel, **kw)]
    for name, g, e in zip(("y", "dx", "dkernel", "dbias"), got, expected):
        assert (g.dtype, g.shape) == (dtype, e.shape), name
        np.testing.assert_allclose(g, e, **TOL[dtype], err_msg=name)


def test_the_reference_is_a_convolution_with_a_block_diagonal_kernel(rng):
    """The depthwise reference against conv2d's, written independently."""
    x, kernel, bias, kw = make(rng, SHAPES[4], np.float64)
    np.testing.assert_allclose(
        reference(x, kernel, bias, **kw),
        reference_conv2d(x, depthwise_as_conv2d_kernel(kernel), bias, **kw),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_and_backward_match_reference(rng, shape, dtype):
    x, kernel, bias, kw = make(rng, shape, dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)
    got = forward_and_grads(x, kernel, bias, dy, kw)
    assert got[0].flags.c_contiguous
    assert_matches_reference(got, x, kernel, bias, dy, kw, dtype)
    # without a bias, y is the sum over the window alone
    unbiased = ops.depthwise_conv2d_forward(x, kernel, **kw)
    np.testing.assert_allclose(unbiased + bias, got[0], **TOL[dtype])


FD_INDICES = (1, 2, 3, 4, 5, 8, 9, 10)


@pytest.mark.parametrize("index", FD_INDICES, ids=[IDS[i] for i in FD_INDICES])
def test_backward_finite_differences(rng, index):
    x, kernel, bias, kw = make(rng, SHAPES[index], np.float64)
    w = rng.standard_normal(reference(x, kernel, **kw).shape)

    def loss():
        return float((ops.depthwise_conv2d_forward(x, kernel, bias, **kw) * w).sum())

    _, *grads = forward_and_grads(x, kernel, bias, w, kw)
    arrays = {"x": x, "kernel": kernel, "bias": bias}
    check_gradients(loss, arrays, dict(zip(arrays, grads)))


def test_backward_skips_unneeded_and_reads_only_what_it_needs(rng):
    x, kernel, _, kw = make(rng, SHAPES[2], np.float32)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(np.float32)
    full = ops.depthwise_conv2d_backward(dy, x, kernel, **kw)
    for need in ([True, False, False], [False, True, False], [False, False, True], [False] * 3,
                 [False, True, True], [True, True, False]):  # fmt: skip
        flags = dict(zip(("need_dx", "need_dkernel", "need_dbias"), need))
        got = ops.depthwise_conv2d_backward(dy, x, kernel, **kw, **flags)
        assert [g is not None for g in got] == need, flags
        for g, f in zip(got, full):
            if g is not None:
                np.testing.assert_array_equal(g, f)
    # x is only a shape without need_dkernel, kernel only a shape without need_dx
    dx, _, _ = ops.depthwise_conv2d_backward(dy, np.full_like(x, np.nan), kernel, **kw,
                                             need_dkernel=False)  # fmt: skip
    np.testing.assert_array_equal(dx, full[0])
    _, dk, _ = ops.depthwise_conv2d_backward(dy, x, np.full_like(kernel, np.nan), **kw,
                                             need_dx=False)  # fmt: skip
    np.testing.assert_array_equal(dk, full[1])


@pytest.mark.parametrize("index", [1, 6, 8, 13, 14], ids=[IDS[i] for i in (1, 6, 8, 13, 14)])
def test_non_contiguous_inputs(rng, index):
    """x strided on every axis, kernel in Fortran order, bias strided, dy reversed."""
    x, kernel, bias, kw = make(rng, SHAPES[index], np.float32)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(np.float32)

    def every_other(a):  # a's values at every other element of a larger array, each axis
        big = np.zeros([2 * n for n in a.shape], a.dtype)
        view = big[(slice(None, None, 2),) * a.ndim]
        view[...] = a
        return view

    views = [every_other(x), np.asfortranarray(kernel), every_other(bias),
             np.flip(np.ascontiguousarray(np.flip(dy)))]  # fmt: skip
    assert not any(v.flags.c_contiguous for v in views)
    assert_matches_reference(forward_and_grads(*views, kw), x, kernel, bias, dy, kw, np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "index", [2, 8, 11, 12, 13, 14], ids=[IDS[i] for i in (2, 8, 11, 12, 13, 14)]
)
def test_threads_give_the_same_bits(rng, threads, index, dtype):
    """Each element is summed by one thread in a fixed order: the same bits at 1, 2 and 3
    threads, and run after run."""
    N, *rest = SHAPES[index]
    x, kernel, bias, kw = make(rng, (4 * N, *rest), dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)
    ops.set_num_threads(1)
    first = forward_and_grads(x, kernel, bias, dy, kw)
    assert_matches_reference(first, x, kernel, bias, dy, kw, dtype)
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        for _ in range(2):
            for name, a, b in zip(("y", "dx", "dkernel", "dbias"),
                                  forward_and_grads(x, kernel, bias, dy, kw), first):  # fmt: skip
                np.testing.assert_array_equal(a, b, err_msg=f"{name} at {n} threads")


@pytest.mark.parametrize("index", [1, 2, 4], ids=[IDS[i] for i in (1, 2, 4)])
def test_zero_size_batch(rng, index):
    x, kernel, bias, kw = make(rng, SHAPES[index], np.float32)
    x = x[:0]
    y = ops.depthwise_conv2d_forward(x, kernel, bias, **kw)
    assert y.shape == (0, *reference(x, kernel, **kw).shape[1:]) and y.dtype == np.float32
    assert y.shape[3] == kernel.shape[2] * kernel.shape[3]
    dx, dkernel, dbias = ops.depthwise_conv2d_backward(y, x, kernel, **kw)
    assert dx.shape == x.shape and dkernel.shape == kernel.shape and dbias.shape == bias.shape
    assert not dkernel.any() and not dbias.any()


def test_zero_channels():
    # C = 0 leaves y no channels; the gradients are empty arrays of their shapes. (A depth
    # multiplier M = 0 is refused, as Keras refuses depth_multiplier=0: see the bad input.)
    x, kernel = np.ones((2, 4, 4, 0), np.float32), np.ones((3, 3, 0, 2), np.float32)
    y = ops.depthwise_conv2d_forward(x, kernel, np.ones(0, np.float32), padding=1)
    assert y.shape == (2, 4, 4, 0) and y.dtype == np.float32
    dx, dk, db = ops.depthwise_conv2d_backward(y, x, kernel, padding=1)
    assert (dx.shape, dk.shape, db.shape) == ((2, 4, 4, 0), (3, 3, 0, 2), (0,))


def test_zero_channels_with_a_window_no_array_bounds():
    # With no channel, x and kernel hold nothing whatever their sizes: a 2**20 x 2**20
    # window over a 2**20 x 2**20 image is 2**40 taps, which the kernels must not walk.
    big = 2**20
    x = np.ones((1, big, big, 0), np.float32)
    kernel = np.ones((big, big, 0, 1), np.float32)
    y = ops.depthwise_conv2d_forward(x, kernel)
    assert y.shape == (1, 1, 1, 0)
    dx, dk, db = ops.depthwise_conv2d_backward(y, x, kernel)
    assert (dx.shape, dk.shape, db.shape) == (x.shape, kernel.shape, (0,))


@pytest.mark.parametrize("strides", [1, 3])
def test_a_window_as_tall_as_a_tall_input(rng, strides):
    # H * KH past the tap tables' limit (2**20 entries): dx finds each pixel's taps itself.
    x = rng.standard_normal((1, 1100, 2, 2))
    kernel = rng.standard_normal((1000, 2, 2, 1))
    kw = dict(strides=(strides, 1), padding=((3, 1), (1, 0)), dilation=(1, 1))
    dy = rng.standard_normal(reference(x, kernel, **kw).shape)
    got = ops.depthwise_conv2d_backward(dy, x, kernel, **kw)
    for name, g, e in zip(("dx", "dkernel", "dbias"), got, reference_grads(dy, x, kernel, **kw)):
        np.testing.assert_allclose(g, e, **TOL[np.float64], err_msg=name)


F32, F64 = np.float32, np.float64


# (x, kernel, bias dtypes; y's dtype; the gradients', which the bias does not concern)
@pytest.mark.parametrize(
    "x_dtype,k_dtype,b_dtype,y_dtype,grad_dtype",
    [(np.float16, F32, None, F32, F32), (np.uint8, F32, F32, F32, F32),
     (np.int32, F32, None, F64, F64), (F32, F32, F64, F64, F32), (F32, F64, F32, F64, F64)],
)  # fmt: skip
def test_dtype_promotion(rng, x_dtype, k_dtype, b_dtype, y_dtype, grad_dtype):
    """float64 when NumPy would promote the inputs to it, else float32."""
    x = (rng.random((2, 5, 4, 3)) * 4).astype(x_dtype)
    kernel = rng.standard_normal((3, 2, 3, 2)).astype(k_dtype)
    bias = None if b_dtype is None else rng.standard_normal(6).astype(b_dtype)
    y = ops.depthwise_conv2d_forward(x, kernel, bias, strides=(2, 1))
    assert y.dtype == y_dtype
    np.testing.assert_allclose(y, reference(x, kernel, bias, strides=(2, 1)), rtol=1e-3, atol=1e-3)
    grads = ops.depthwise_conv2d_backward(np.ones(y.shape, F32), x, kernel, strides=(2, 1))
    assert [g.dtype for g in grads] == [grad_dtype] * 3


def test_argument_forms(rng):
    """strides, padding and dilation as ints, pairs, lists and NumPy integers."""
    x, kernel = rng.standard_normal((1, 9, 8, 2)), rng.standard_normal((3, 2, 2, 3))
    expected = reference(x, kernel, strides=(2, 1), padding=((1, 1), (0, 0)), dilation=(1, 2))
    for strides, padding, dilation in [
        ((2, 1), (1, 0), (1, 2)),
        ([2, 1], ((1, 1), (0, 0)), [np.int64(1), 2]),
        ((np.int32(2), 1), [np.int64(1), 0], (1, np.int32(2))),
    ]:
        y = ops.depthwise_conv2d_forward(x, kernel, strides=strides, padding=padding,
                                         dilation=dilation)  # fmt: skip
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    # an int is the same on both axes
    y = ops.depthwise_conv2d_forward(x, kernel, strides=2, padding=1, dilation=2)
    expected = reference(x, kernel, strides=(2, 2), padding=((1, 1), (1, 1)), dilation=(2, 2))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("index", [2, 3, 4, 8, 12], ids=[IDS[i] for i in (2, 3, 4, 8, 12)])
def test_matches_torch(rng, index):
    """torch's conv2d with groups=C on NCHW: weight (C*M, 1, KH, KW), output channel c*M + m."""
    torch = pytest.importorskip("torch")
    nnf = torch.nn.functional
    x, kernel, bias, kw = make(rng, SHAPES[index], np.float64)
    KH, KW, C, M = kernel.shape
    (top, bottom), (left, right) = kw["padding"]
    dy = rng.standard_normal(reference(x, kernel, **kw).shape)
    weight = kernel.transpose(2, 3, 0, 1).reshape(C * M, 1, KH, KW)
    leaves = [torch.tensor(np.ascontiguousarray(a), requires_grad=True)
              for a in (x.transpose(0, 3, 1, 2), weight, bias)]  # fmt: skip
    ty = nnf.conv2d(nnf.pad(leaves[0], (left, right, top, bottom)), leaves[1], leaves[2],
                    stride=kw["strides"], dilation=kw["dilation"], groups=C)  # fmt: skip
    t_grads = torch.autograd.grad(ty, leaves, torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
    tdx, tdk, tdb = (g.numpy() for g in t_grads)
    expected = [ty.detach().numpy().transpose(0, 2, 3, 1), tdx.transpose(0, 2, 3, 1),
                tdk.reshape(C, M, KH, KW).transpose(2, 3, 0, 1), tdb]  # fmt: skip
    got = forward_and_grads(x, kernel, bias, dy, kw)
    for name, g, e in zip(("y", "dx", "dkernel", "dbias"), got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10, err_msg=name)


# ------------------------------------------------------------------ functional, autograd


@pytest.mark.parametrize(
    "x_shape,k_shape,kw",
    [
        ((2, 5, 4, 3), (3, 3, 3, 2), dict(padding="same")),
        ((1, 6, 5, 2), (2, 3, 2, 1), dict(strides=(2, 1), padding="same")),
        ((2, 5, 6, 1), (3, 2, 1, 3), dict(padding="valid", dilation=(2, 1))),
        ((1, 4, 4, 3), (3, 3, 3, 1), dict(strides=2, padding=((0, 2), (1, 0)))),
    ],
)
def test_functional_gradients(rng, x_shape, k_shape, kw):
    x, kernel = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    bias = rng.standard_normal(k_shape[2] * k_shape[3])
    check_tensor_op(lambda a, k, b: dlcore.functional.depthwise_conv2d(a, k, b, **kw),
                    x, kernel, bias)  # fmt: skip
    check_tensor_op(lambda a, k: dlcore.functional.depthwise_conv2d(a, k, **kw), x, kernel)


@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (3, 1), (1, 2), ((2, 1), (1, 2))])
def test_functional_padding_strings(rng, strides, dilation):
    """'same' pads as conv2d's 'same' (ceil(size / stride) outputs), 'valid' not at all."""
    from dlcore.functional.window import conv_padding

    x, kernel = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 2, 3, 2))
    for mode in ("valid", "same"):
        y = dlcore.functional.depthwise_conv2d(x, kernel, strides=strides, padding=mode,
                                               dilation=dilation).numpy()  # fmt: skip
        pad = conv_padding(mode, (7, 6), (3, 2), strides, dilation)
        s = np.broadcast_to(strides, 2)
        want = reference(x, kernel, strides=tuple(s), padding=pad,
                         dilation=tuple(np.broadcast_to(dilation, 2)))  # fmt: skip
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
        if mode == "same":
            assert y.shape[1:3] == (-(-7 // s[0]), -(-6 // s[1]))


# ------------------------------------------------------------------ bad input

X, K = np.ones((2, 5, 5, 3), np.float32), np.ones((3, 3, 3, 2), np.float32)
F, B = ops.depthwise_conv2d_forward, ops.depthwise_conv2d_backward
DY = np.ones((2, 3, 3, 6), np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F(np.ones((5, 5, 3)), K), ValueError,
         r"depthwise_conv2d_forward: argument 'x' must be 4-D \(N, H, W, C\), got a 3-D array "
         r"of shape \(5, 5, 3\)"),
        (lambda: F(X, np.ones((3, 3, 3))), ValueError,
         r"depthwise_conv2d_forward: argument 'kernel' must be 4-D .*got a 3-D array of shape "
         r"\(3, 3, 3\)"),
        (lambda: F(X, np.ones((3, 3, 2, 2))), ValueError,
         r"depthwise_conv2d_forward: kernel has shape \(3, 3, 2, 2\) with 2 input channels but "
         r"x has shape \(2, 5, 5, 3\) with 3"),
        (lambda: F(X, np.ones((3, 3, 6, 1))), ValueError,  # the C*M output channels are not C
         r"kernel has shape \(3, 3, 6, 1\) with 6 input channels but x has shape \(2, 5, 5, 3\)"),
        (lambda: F(X, np.ones((0, 3, 3, 2))), ValueError,
         r"depthwise_conv2d_forward: kernel has shape \(0, 3, 3, 2\); expected KH >= 1"),
        (lambda: F(X, np.ones((3, 3, 3, 0))), ValueError,
         r"kernel has shape \(3, 3, 3, 0\); expected .*a depth multiplier M >= 1"),
        (lambda: F(X, K, np.ones(3)), ValueError,
         r"depthwise_conv2d_forward: argument 'bias' has shape \(3,\)"),
        (lambda: F(X, K, np.ones(2)), ValueError, r"argument 'bias' has shape \(2,\)"),
        (lambda: F(X, K, np.ones((1, 6))), ValueError,
         r"argument 'bias' must be 1-D .*got a 2-D array of shape \(1, 6\)"),
        (lambda: F(X, np.ones((7, 3, 3, 2))), ValueError,
         r"the height window spans 7 \(size 7, dilation 1\) but the padded input has height 5 "
         r"\(5 \+ padding 0 \+ 0\)"),
        (lambda: F(X, K, dilation=(1, 3)), ValueError,
         r"the width window spans 7 \(size 3, dilation 3\) but the padded input has width 5"),
        (lambda: F(X, K, strides=0), ValueError, r"strides must be >= 1, got \(0, 0\)"),
        (lambda: F(X, K, strides=(1, -2)), ValueError, r"strides must be >= 1, got \(1, -2\)"),
        (lambda: F(X, K, dilation=(0, 1)), ValueError, r"dilation must be >= 1, got \(0, 1\)"),
        (lambda: F(X, K, padding=-1), ValueError,
         r"padding must be >= 0, got \(\(-1, -1\), \(-1, -1\)\)"),
        (lambda: F(X, K, padding=((0, 1), (2, -3))), ValueError,
         r"padding must be >= 0, got \(\(0, 1\), \(2, -3\)\)"),
        (lambda: F(X, K, padding=(1, 2, 3)), ValueError,
         r"argument 'padding' must be an int, \(pad_h, pad_w\) or \(\(top, bottom\), "
         r"\(left, right\)\), got \(1, 2, 3\)"),
        (lambda: F(X, K, padding="same"), TypeError,
         r"argument 'padding' must be an int, .* got 'same'"),
        (lambda: F(X, K, strides=(1, 2, 3)), ValueError,
         r"argument 'strides' must be an int or a pair of ints \(h, w\), got \(1, 2, 3\)"),
        (lambda: F(X, K, strides=1.5), TypeError,
         r"argument 'strides' must be an int or a pair of ints \(h, w\), got 1.5"),
        (lambda: F(X, K, dilation=True), TypeError, r"argument 'dilation' must be .*, got True"),
        (lambda: F(X, K, padding=2**62), ValueError, r"overflows a 64-bit integer"),
        (lambda: F(X, K, dilation=2**62), ValueError, r"overflows a 64-bit integer"),
        (lambda: F(None, K), TypeError,
         r"depthwise_conv2d_forward: argument 'x' must be an array, got None"),
        (lambda: F(X, K.astype(np.complex64)), TypeError, r"argument 'kernel' has dtype complex64"),
        (lambda: B(DY[:, :2], X, K), ValueError,
         r"depthwise_conv2d_backward: argument 'dy' has shape \(2, 2, 3, 6\) but .*\(2, 3, 3, 6\)"),
        (lambda: B(DY[..., :3], X, K), ValueError,
         r"argument 'dy' has shape \(2, 3, 3, 3\) but .*\(2, 3, 3, 6\)"),
        (lambda: B(DY[0], X, K), ValueError,
         r"depthwise_conv2d_backward: argument 'dy' must be 4-D \(N, OH, OW, .*\), got a 3-D"),
        (lambda: B(DY, X, np.ones((3, 3, 1, 6))), ValueError,
         r"depthwise_conv2d_backward: kernel has shape \(3, 3, 1, 6\) with 1 input channels"),
        (lambda: B(DY, X, K, padding=(1, 2, 3)), ValueError,
         r"depthwise_conv2d_backward: argument 'padding' must be"),
        (lambda: B(DY, X, K, strides=0), ValueError,
         r"depthwise_conv2d_backward: strides must be >= 1"),
        (lambda: B(None, X, K), TypeError, r"argument 'dy' must be an array, got None"),
        (lambda: B(DY, X.astype(np.complex128), K), TypeError, r"argument 'x' has dtype complex128"),
    ],
)  # fmt: skip
def test_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
