import os
import subprocess
import sys

import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference.conv import conv2d as reference
from reference.conv import conv2d_grads as reference_grads

TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-11, atol=1e-11)}

# (N, H, W, C, OC, KH, KW, strides, padding ((t, b), (l, r)), dilation). The kernels pick
# a plan from the shape (conv2d_plan in cpp/src/conv2d.cpp), so the list covers each:
# pointwise (1x1, stride 1, unpadded), direct (K = KH*KW*C <= 32, with OC over the
# vector widths and an odd pixel count), pixel tiles (larger K, tiles across samples) and
# Winograd (3x3 stride 1, C >= 16: the 16- and 64-channel 3x3 shapes here; more below).
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1, (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (1, 3, 3, 1, 1, 3, 3, (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (2, 7, 7, 3, 7, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),
    (3, 7, 5, 1, 4, 5, 5, (1, 1), ((2, 2), (2, 2)), (1, 1)),  # 5x5 'same', C = 1
    (2, 9, 6, 3, 1, 3, 2, (2, 3), ((1, 0), (0, 1)), (1, 1)),  # OC = 1, asymmetric
    (2, 11, 9, 2, 3, 3, 3, (3, 2), ((0, 2), (1, 0)), (2, 1)),  # stride 3, dilation
    (1, 8, 10, 4, 5, 2, 3, (1, 1), ((0, 0), (0, 0)), (2, 2)),  # dilation 2
    (3, 12, 11, 16, 6, 3, 3, (1, 1), ((0, 0), (0, 0)), (1, 1)),  # tiles across samples
    (2, 6, 5, 7, 3, 1, 1, (1, 1), ((0, 0), (0, 0)), (1, 1)),  # pointwise
    (2, 6, 5, 7, 3, 1, 1, (2, 2), ((0, 0), (0, 0)), (1, 1)),  # 1x1 strided: direct
    (3, 17, 15, 1, 32, 3, 3, (1, 1), ((1, 0), (0, 1)), (1, 1)),  # a first layer, tiles
    (2, 9, 8, 3, 40, 3, 3, (2, 1), ((1, 1), (0, 2)), (1, 2)),  # OC = 32 + 8: every width
    (2, 5, 6, 64, 3, 3, 3, (1, 1), ((0, 0), (0, 0)), (1, 1)),
    (3, 6, 5, 64, 5, 3, 2, (1, 1), ((1, 0), (2, 1)), (1, 2)),
    (2, 40, 6, 64, 2, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # tall and narrow (Winograd)
    (2, 5, 40, 64, 2, 1, 3, (1, 1), ((0, 0), (2, 0)), (1, 3)),
    (3, 12, 11, 15, 6, 3, 3, (1, 1), ((0, 0), (0, 0)), (1, 1)),  # 3x3, C = 15: pixel tiles
    (2, 40, 6, 12, 2, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # several pixel tiles a sample
]
IDS = [
    f"{s[0]}x{s[1]}x{s[2]}x{s[3]}->{s[4]} k{s[5]}x{s[6]} s{s[7]} p{s[8]} d{s[9]}" for s in SHAPES
]

# 3x3 stride-1 layers with C >= 16 run Winograd where it multiplies less than im2col
# (dkernel: 2/3 as much). Each shape below selects it for y, dx and dkernel (the last, a
# 3x3 y, for y and dx only), which test_winograd_plan checks, so a change of the
# selection cannot quietly leave these tests on another path.
WINOGRAD_SHAPES = [
    (1, 8, 8, 16, 16, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # batch 1
    (2, 9, 7, 16, 5, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # odd y: partial tiles
    (2, 10, 9, 17, 9, 3, 3, (1, 1), ((0, 2), (1, 0)), (1, 1)),  # asymmetric padding
    (3, 5, 13, 24, 12, 3, 3, (1, 1), ((1, 1), (0, 0)), (1, 1)),  # non-square, y 5x11
    (2, 6, 7, 19, 13, 3, 3, (1, 1), ((3, 0), (0, 3)), (1, 1)),  # padding 3: dx reads past dy
    (2, 12, 10, 16, 8, 3, 3, (1, 1), ((0, 0), (0, 0)), (1, 1)),  # unpadded: dx over a larger x
    (5, 15, 17, 21, 20, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # 360 tiles: several blocks
    (1, 3, 3, 16, 3, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # 3x3 y: the smallest chosen
]
WINOGRAD_IDS = [f"{s[0]}x{s[1]}x{s[2]}x{s[3]}->{s[4]} p{s[8]}" for s in WINOGRAD_SHAPES]

# 1-high undilated windows over rows of >= 32 outputs (every Conv1D) read their windows
# in place, one GEMM per output row; outputs whose window hangs over padding go through
# im2col, and dx at stride 1 reads a zero-padded copy of dy's row. Each shape's plan is
# checked by test_row_views_plan (R: row_views, D: direct, P: pixel_tiles).
ROW_VIEW_SHAPES = [
    ((1, 1, 40, 8, 5, 1, 5, (1, 1), ((0, 0), (0, 0)), (1, 1)), "RRR"),  # batch 1, 'valid'
    ((3, 1, 37, 7, 3, 1, 5, (1, 1), ((0, 0), (2, 2)), (1, 1)), "RRR"),  # 'same', odd sizes
    ((2, 1, 45, 9, 4, 1, 4, (1, 1), ((0, 0), (3, 0)), (1, 1)), "RRR"),  # 'causal'
    ((2, 1, 70, 16, 6, 1, 3, (1, 2), ((0, 0), (1, 1)), (1, 1)), "RPR"),  # stride 2: dx tiles
    ((2, 3, 40, 11, 5, 1, 3, (2, 1), ((0, 0), (0, 0)), (1, 1)), "RRR"),  # rows stride_h skips
    ((2, 1, 40, 6, 65, 1, 7, (1, 1), ((0, 0), (7, 1)), (1, 1)), "RRR"),  # windows all padding
    ((1, 1, 40, 8, 3, 1, 2, (1, 1), ((0, 0), (0, 4)), (1, 1)), "DRD"),  # dy past dx's reach
]
ROW_VIEW_IDS = [
    f"{s[0]}x{s[1]}x{s[2]}x{s[3]}->{s[4]} k{s[6]} s{s[7]} p{s[8]}" for s, _ in ROW_VIEW_SHAPES
]
ROW_VIEWS = [s for s, _ in ROW_VIEW_SHAPES]


def make(rng, shape, dtype):
    N, H, W, C, OC, KH, KW, strides, padding, dilation = shape
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = rng.standard_normal((KH, KW, C, OC)).astype(dtype)
    bias = rng.standard_normal(OC).astype(dtype)
    return x, kernel, bias, dict(strides=strides, padding=padding, dilation=dilation)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", SHAPES + WINOGRAD_SHAPES + ROW_VIEWS, ids=IDS + WINOGRAD_IDS + ROW_VIEW_IDS
)
def test_conv2d_forward_matches_reference(rng, shape, dtype):
    x, kernel, bias, kw = make(rng, shape, dtype)
    y = ops.conv2d_forward(x, kernel, bias, **kw)
    expected = reference(x, kernel, bias, **kw)
    assert y.dtype == dtype and y.shape == expected.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    np.testing.assert_allclose(ops.conv2d_forward(x, kernel, **kw), expected - bias, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", SHAPES + WINOGRAD_SHAPES + ROW_VIEWS, ids=IDS + WINOGRAD_IDS + ROW_VIEW_IDS
)
def test_conv2d_backward_matches_reference(rng, shape, dtype):
    x, kernel, bias, kw = make(rng, shape, dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)
    grads = ops.conv2d_backward(dy, x, kernel, **kw)
    for name, got, expected in zip(
        ("dx", "dkernel", "dbias"), grads, reference_grads(dy, x, kernel, **kw)
    ):
        assert got.dtype == dtype and got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, **TOL[dtype], err_msg=name)


@pytest.mark.parametrize(
    "shape", [SHAPES[i] for i in (2, 4, 5, 8, 11, 13)], ids=[IDS[i] for i in (2, 4, 5, 8, 11, 13)]
)
def test_conv2d_backward_finite_differences(rng, shape):
    N, H, W, C, OC, KH, KW, strides, padding, dilation = shape
    if C > 8:  # keep the finite differences small
        shape = (2, 4, 3, C, 2, KH, KW, strides, padding, dilation)
    x, kernel, bias, kw = make(rng, shape, np.float64)
    w = rng.standard_normal(reference(x, kernel, **kw).shape)

    def loss():
        return float((ops.conv2d_forward(x, kernel, bias, **kw) * w).sum())

    dx, dkernel, dbias = ops.conv2d_backward(w, x, kernel, **kw)
    inputs = {"kernel": kernel, "bias": bias}
    analytic = {"kernel": dkernel, "bias": dbias}
    if x.size <= 200:
        inputs["x"], analytic["x"] = x, dx
    check_gradients(loss, inputs, analytic)


def check_all_gradients(rng, shape):
    """Float64 finite differences of x, kernel and bias through a weighted sum of y."""
    x, kernel, bias, kw = make(rng, shape, np.float64)
    w = rng.standard_normal(reference(x, kernel, **kw).shape)

    def loss():
        return float((ops.conv2d_forward(x, kernel, bias, **kw) * w).sum())

    dx, dkernel, dbias = ops.conv2d_backward(w, x, kernel, **kw)
    check_gradients(
        loss, {"x": x, "kernel": kernel, "bias": bias}, {"x": dx, "kernel": dkernel, "bias": dbias}
    )


# One shape of each plan (pointwise, direct, pixel tiles, Winograd, row views).
FUSED_RELU_SHAPES = [SHAPES[8], SHAPES[10], SHAPES[16], WINOGRAD_SHAPES[2], ROW_VIEWS[1]]


def test_fused_relu_shapes_cover_every_plan():
    assert {plan(s)["forward"] for s in FUSED_RELU_SHAPES} == {
        "pointwise", "direct", "pixel_tiles", "winograd", "row_views"
    }  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", FUSED_RELU_SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_fused_relu_is_relu_of_the_plain_convolution(rng, shape, dtype):
    # The same bits as relu after the plain convolution, and as relu_backward before
    # the plain backward: the kernel applies the very same elementwise functions.
    x, kernel, bias, kw = make(rng, shape, dtype)
    plain = ops.conv2d_forward(x, kernel, bias, **kw)
    y = ops.conv2d_forward(x, kernel, bias, **kw, activation="relu")
    np.testing.assert_array_equal(y, ops.relu(plain))
    assert (y == 0).any() and (y > 0).any()
    dy = rng.standard_normal(y.shape).astype(dtype)
    fused = ops.conv2d_backward(dy, x, kernel, **kw, activation="relu", y=y)
    for got, want in zip(fused, ops.conv2d_backward(ops.relu_backward(dy, y), x, kernel, **kw)):
        np.testing.assert_array_equal(got, want)
    # y is the forward's output: given, it is only read
    np.testing.assert_array_equal(y, ops.relu(plain))


def test_fused_relu_finite_differences(rng):
    x, kernel, bias, kw = make(rng, SHAPES[5], np.float64)
    w = rng.standard_normal(reference(x, kernel, **kw).shape)

    def loss():
        return float((ops.conv2d_forward(x, kernel, bias, **kw, activation="relu") * w).sum())

    y = ops.conv2d_forward(x, kernel, bias, **kw, activation="relu")
    dx, dkernel, dbias = ops.conv2d_backward(w, x, kernel, **kw, activation="relu", y=y)
    check_gradients(
        loss, {"x": x, "kernel": kernel, "bias": bias}, {"x": dx, "kernel": dkernel, "bias": dbias}
    )


def test_conv2d_backward_skips_unneeded(rng):
    x, kernel, _, kw = make(rng, SHAPES[2], np.float32)
    dy = np.ones((2, 7, 7, 7), np.float32)
    full = ops.conv2d_backward(dy, x, kernel, **kw)
    for need in (
        [True, False, False],
        [False, True, False],
        [False, False, True],
        [False, False, False],
        [False, True, True],
    ):
        got = ops.conv2d_backward(
            dy, x, kernel, **kw, need_dx=need[0], need_dkernel=need[1], need_dbias=need[2]
        )
        for wanted, g, f in zip(need, got, full):
            if wanted:
                np.testing.assert_array_equal(g, f)
            else:
                assert g is None


def test_conv2d_unneeded_inputs_are_not_read(rng):
    # Without need_dkernel, x is only a shape; without need_dx, kernel is only a shape.
    x, kernel, _, kw = make(rng, SHAPES[2], np.float32)
    dy = rng.standard_normal((2, 7, 7, 7)).astype(np.float32)
    dx, _, _ = ops.conv2d_backward(dy, np.full_like(x, np.nan), kernel, **kw, need_dkernel=False)
    assert np.isfinite(dx).all()
    _, dk, _ = ops.conv2d_backward(dy, x, np.full_like(kernel, np.nan), **kw, need_dx=False)
    assert np.isfinite(dk).all()


@pytest.mark.parametrize(
    "shape", [SHAPES[i] for i in (7, 8, 11, 13)], ids=[IDS[i] for i in (7, 8, 11, 13)]
)
def test_conv2d_non_contiguous_inputs(rng, shape):
    x, kernel, bias, kw = make(rng, shape, np.float32)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(np.float32)
    odd = {
        "x": np.asfortranarray(x),
        "kernel": np.asfortranarray(kernel),
        "bias": np.repeat(bias, 2)[::2],
        "dy": np.swapaxes(np.ascontiguousarray(np.swapaxes(dy, 1, 2)), 1, 2),
    }
    assert not any(a.flags.c_contiguous for a in odd.values())
    np.testing.assert_allclose(
        ops.conv2d_forward(odd["x"], odd["kernel"], odd["bias"], **kw),
        reference(x, kernel, bias, **kw),
        **TOL[np.float32],
    )
    got = ops.conv2d_backward(odd["dy"], odd["x"], odd["kernel"], **kw)
    for g, e in zip(got, reference_grads(dy, x, kernel, **kw)):
        np.testing.assert_allclose(g, e, **TOL[np.float32])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape",
    [SHAPES[i] for i in (7, 8, 10, 14, 16, 17)],
    ids=[IDS[i] for i in (7, 8, 10, 14, 16, 17)],
)
def test_conv2d_threads_agree_and_repeat_exactly(rng, threads, shape, dtype):
    N, H, W, C, OC, KH, KW, strides, padding, dilation = shape
    shape = (4 * N, H, W, C, OC, KH, KW, strides, padding, dilation)
    x, kernel, bias, kw = make(rng, shape, dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)
    results = {}
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        results[n] = [
            ops.conv2d_forward(x, kernel, bias, **kw),
            *ops.conv2d_backward(dy, x, kernel, **kw),
        ]
        # the same thread count gives the same bits, run after run
        again = [
            ops.conv2d_forward(x, kernel, bias, **kw),
            *ops.conv2d_backward(dy, x, kernel, **kw),
        ]
        for a, b in zip(results[n], again):
            np.testing.assert_array_equal(a, b)
    expected = [reference(x, kernel, bias, **kw), *reference_grads(dy, x, kernel, **kw)]
    for n, got in results.items():
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, **TOL[dtype])


@pytest.mark.parametrize("shape", [SHAPES[i] for i in (2, 8, 13)], ids=[IDS[i] for i in (2, 8, 13)])
def test_conv2d_zero_size_batch(rng, shape):
    x, kernel, bias, kw = make(rng, shape, np.float32)
    x = x[:0]
    y = ops.conv2d_forward(x, kernel, bias, **kw)
    assert y.shape == (0,) + reference(x, kernel, **kw).shape[1:] and y.dtype == np.float32
    dx, dkernel, dbias = ops.conv2d_backward(y, x, kernel, **kw)
    assert dx.shape == x.shape and dkernel.shape == kernel.shape and dbias.shape == bias.shape
    assert not dkernel.any() and not dbias.any()


def test_conv2d_zero_channels(rng):
    # C = 0 is an empty sum: y is the bias; OC = 0 gives no output channels.
    x = np.ones((2, 4, 4, 0), np.float32)
    bias = np.arange(3, dtype=np.float32)
    y = ops.conv2d_forward(x, np.ones((3, 3, 0, 3), np.float32), bias)
    np.testing.assert_array_equal(y, np.broadcast_to(bias, (2, 2, 2, 3)))
    assert ops.conv2d_forward(np.ones((2, 4, 4, 2)), np.ones((3, 3, 2, 0))).shape == (2, 2, 2, 0)


@pytest.mark.parametrize(
    "x_dtype,k_dtype,expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float32, np.float64, np.float64),
        (np.uint8, np.float32, np.float32),
        (np.int64, np.float32, np.float64),
    ],
)
def test_conv2d_dtype_promotion(rng, x_dtype, k_dtype, expected):
    x = (rng.random((2, 5, 5, 2)) * 4).astype(x_dtype)
    kernel = rng.standard_normal((3, 3, 2, 3)).astype(k_dtype)
    y = ops.conv2d_forward(x, kernel)
    assert y.dtype == expected
    np.testing.assert_allclose(y, reference(x, kernel), rtol=1e-4, atol=1e-4)
    grads = ops.conv2d_backward(np.ones(y.shape, np.float32), x, kernel)
    assert all(g.dtype == expected for g in grads)


@pytest.mark.parametrize(
    "strides,padding,dilation,expected",
    [
        (2, 1, 1, dict(strides=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1))),
        ((1, 2), (0, 1), 2, dict(strides=(1, 2), padding=((0, 0), (1, 1)), dilation=(2, 2))),
        (
            [2, 1],
            ((0, 1), (1, 0)),
            [1, 2],
            dict(strides=(2, 1), padding=((0, 1), (1, 0)), dilation=(1, 2)),
        ),
        (
            np.int64(2),
            (np.int32(1), 0),
            (1, np.int64(1)),
            dict(strides=(2, 2), padding=((1, 1), (0, 0)), dilation=(1, 1)),
        ),
    ],
)
def test_conv2d_argument_forms(rng, strides, padding, dilation, expected):
    x = rng.standard_normal((1, 9, 8, 2))
    kernel = rng.standard_normal((3, 2, 2, 3))
    y = ops.conv2d_forward(x, kernel, strides=strides, padding=padding, dilation=dilation)
    np.testing.assert_allclose(y, reference(x, kernel, **expected), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ bad input

X, K = np.ones((2, 5, 5, 3), np.float32), np.ones((3, 3, 3, 4), np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: ops.conv2d_forward(np.ones((5, 5, 3)), K),
            ValueError,
            r"argument 'x' must be 4-D \(N, H, W, C\), got a 3-D array of shape \(5, 5, 3\)",
        ),
        (
            lambda: ops.conv2d_forward(X, np.ones((3, 3, 3))),
            ValueError,
            r"argument 'kernel' must be 4-D \(KH, KW, C, OC\), got a 3-D array of shape \(3, 3, 3\)",
        ),
        (
            lambda: ops.conv2d_forward(X, np.ones((3, 3, 2, 4))),
            ValueError,
            r"kernel has shape \(3, 3, 2, 4\) with 2 input channels but x has shape \(2, 5, 5, 3\) with 3; expected kernel \(KH, KW, 3, OC\)",
        ),
        (
            lambda: ops.conv2d_forward(X, np.ones((0, 3, 3, 4))),
            ValueError,
            r"kernel has shape \(0, 3, 3, 4\); expected KH >= 1 and KW >= 1",
        ),
        (
            lambda: ops.conv2d_forward(X, K, np.ones(5)),
            ValueError,
            r"argument 'bias' has shape \(5,\) but kernel has shape \(3, 3, 3, 4\) with OC=4; expected bias \(4,\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, np.ones((1, 4))),
            ValueError,
            r"argument 'bias' must be 1-D \(OC,\), got a 2-D array of shape \(1, 4\)",
        ),
        (
            lambda: ops.conv2d_forward(X, np.ones((7, 3, 3, 4))),
            ValueError,
            r"the height window spans 7 \(size 7, dilation 1\) but the padded input has height 5 \(5 \+ padding 0 \+ 0\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, dilation=(1, 3)),
            ValueError,
            r"the width window spans 7 \(size 3, dilation 3\) but the padded input has width 5",
        ),
        (
            lambda: ops.conv2d_forward(X, K, strides=0),
            ValueError,
            r"strides must be >= 1, got \(0, 0\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, strides=(1, -2)),
            ValueError,
            r"strides must be >= 1, got \(1, -2\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, dilation=(0, 1)),
            ValueError,
            r"dilation must be >= 1, got \(0, 1\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding=-1),
            ValueError,
            r"padding must be >= 0, got \(\(-1, -1\), \(-1, -1\)\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding=((0, 1), (2, -3))),
            ValueError,
            r"padding must be >= 0, got \(\(0, 1\), \(2, -3\)\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding=(1, 2, 3)),
            ValueError,
            r"argument 'padding' must be an int, \(pad_h, pad_w\) or \(\(top, bottom\), \(left, right\)\), got \(1, 2, 3\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding=((1, 2), (3,))),
            ValueError,
            r"argument 'padding' must be .*, got \(\(1, 2\), \(3,\)\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding="same"),
            TypeError,
            r"argument 'padding' must be an int, .* got 'same'",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding=((1, 2), 3)),
            TypeError,
            r"argument 'padding' must be .*, got \(1, 2\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, strides=(1, 2, 3)),
            ValueError,
            r"argument 'strides' must be an int or a pair of ints \(h, w\), got \(1, 2, 3\)",
        ),
        (
            lambda: ops.conv2d_forward(X, K, strides=1.5),
            TypeError,
            r"argument 'strides' must be an int or a pair of ints \(h, w\), got 1.5",
        ),
        (
            lambda: ops.conv2d_forward(X, K, dilation=True),
            TypeError,
            r"argument 'dilation' must be .*, got True",
        ),
        (
            lambda: ops.conv2d_forward(X, K, strides=2**70),
            ValueError,
            r"argument 'strides' = 1180591620717411303424 does not fit a 64-bit integer",
        ),
        (
            lambda: ops.conv2d_forward(X, K, padding=2**62),
            ValueError,
            r"height size 5 with padding \(4611686018427387904, 4611686018427387904\).* overflows a 64-bit integer",
        ),
        (
            lambda: ops.conv2d_forward(X, K, dilation=2**62),
            ValueError,
            r"overflows a 64-bit integer",
        ),
        (
            lambda: ops.conv2d_forward(
                np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=((0, 2**40), (0, 2**40))
            ),
            ValueError,
            r"overflows a 64-bit integer",
        ),
        (
            lambda: ops.conv2d_forward(None, K),
            TypeError,
            r"argument 'x' must be an array, got None",
        ),
        (
            lambda: ops.conv2d_forward(X, np.ones((3, 3, 3, 4), np.complex64)),
            TypeError,
            r"argument 'kernel' has dtype complex64",
        ),
        (
            lambda: ops.conv2d_backward(np.ones((2, 3, 3, 5)), X, K),
            ValueError,
            r"argument 'dy' has shape \(2, 3, 3, 5\) but x \(2, 5, 5, 3\) convolved with kernel \(3, 3, 3, 4\) gives y of shape \(2, 3, 3, 4\)",
        ),
        (
            lambda: ops.conv2d_backward(np.ones((2, 3, 3)), X, K),
            ValueError,
            r"argument 'dy' must be 4-D \(N, OH, OW, OC\), got a 3-D array",
        ),
        (
            lambda: ops.conv2d_backward(np.ones((2, 3, 3, 4)), X, np.ones((3, 3, 1, 4))),
            ValueError,
            r"conv2d_backward: kernel has shape \(3, 3, 1, 4\) with 1 input channels",
        ),
        (
            lambda: ops.conv2d_backward(np.ones((2, 3, 3, 4)), X, K, padding=(1, 2, 3)),
            ValueError,
            r"conv2d_backward: argument 'padding' must be",
        ),
        (
            lambda: ops.conv2d_backward(None, X, K),
            TypeError,
            r"argument 'dy' must be an array, got None",
        ),
        (
            lambda: ops.conv2d_forward(X, K, activation="tanh"),
            ValueError,
            r"conv2d_forward: argument 'activation' is 'tanh'; expected None or 'relu'",
        ),
        (
            lambda: ops.conv2d_forward(X, K, activation=1),
            TypeError,
            r"conv2d_forward: argument 'activation' is a int; expected None or 'relu'",
        ),
        (
            lambda: ops.conv2d_backward(np.ones((2, 3, 3, 4)), X, K, activation="relu"),
            ValueError,
            r"activation='relu' needs argument 'y', the forward's output; got None",
        ),
        (
            lambda: ops.conv2d_backward(
                np.ones((2, 3, 3, 4)), X, K, activation="relu", y=np.ones((2, 3, 4, 4))
            ),
            ValueError,
            r"argument 'y' has shape \(2, 3, 4, 4\) but dy has shape \(2, 3, 3, 4\)",
        ),
        (
            lambda: ops.conv2d_backward(
                np.ones((2, 3, 3, 4)), X, K, activation="relu", y=np.ones((2, 3, 3, 4), complex)
            ),
            TypeError,
            r"argument 'y' has dtype complex128",
        ),
    ],
)
def test_conv2d_rejects_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ------------------------------------------------------------------ PyTorch parity


@pytest.mark.parametrize(
    "shape", [SHAPES[i] for i in (4, 5, 11, 13)], ids=[IDS[i] for i in (4, 5, 11, 13)]
)
def test_conv2d_matches_torch(rng, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, kernel, bias, kw = make(rng, shape, np.float64)
    (top, bottom), (left, right) = kw["padding"]
    tx = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    tk = torch.tensor(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), requires_grad=True)
    tb = torch.tensor(bias, requires_grad=True)
    ty = F.conv2d(
        F.pad(tx, (left, right, top, bottom)), tk, tb, stride=kw["strides"], dilation=kw["dilation"]
    )
    y = ops.conv2d_forward(x, kernel, bias, **kw)
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 3, 1, 2))))
    dx, dkernel, dbias = ops.conv2d_backward(dy, x, kernel, **kw)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        dkernel, tk.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(dbias, tb.grad.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ Winograd F(2x2, 3x3)


def plan(shape):
    N, H, W, C, OC, KH, KW, strides, padding, dilation = shape
    return ops.conv2d_plan(
        (N, H, W, C), (KH, KW, C, OC), strides=strides, padding=padding, dilation=dilation
    )


@pytest.mark.parametrize("shape", WINOGRAD_SHAPES, ids=WINOGRAD_IDS)
def test_winograd_plan(shape):
    weights = "pixel_tiles" if shape is WINOGRAD_SHAPES[-1] else "winograd"
    assert plan(shape) == {"forward": "winograd", "input_grad": "winograd", "weight_grads": weights}


@pytest.mark.parametrize("shape,expected", ROW_VIEW_SHAPES, ids=ROW_VIEW_IDS)
def test_row_views_plan(shape, expected):
    names = {"R": "row_views", "D": "direct", "P": "pixel_tiles"}
    got = plan(shape)
    assert "".join(
        k for pass_ in ("forward", "input_grad", "weight_grads") for k, v in names.items()
        if got[pass_] == v
    ) == expected  # fmt: skip


@pytest.mark.parametrize(
    "x_shape,kernel_shape,kw,expected",
    [
        ((64, 1, 200, 64), (1, 5, 64, 128), dict(), "row_views"),  # the benchmark's Conv1D
        ((8, 1, 31, 64), (1, 5, 64, 64), dict(padding=((0, 0), (2, 2))), "pixel_tiles"),  # OW 31
        ((8, 1, 64, 64), (1, 3, 64, 64), dict(dilation=(1, 2)), "pixel_tiles"),
        ((8, 1, 64, 64), (1, 3, 64, 64), dict(padding=((1, 0), (1, 1))), "pixel_tiles"),
        ((8, 17, 17, 64), (1, 7, 64, 64), dict(padding=((0, 0), (3, 3))), "pixel_tiles"),
        ((8, 40, 40, 64), (3, 1, 64, 64), dict(padding=((1, 1), (0, 0))), "pixel_tiles"),
    ],
)
def test_row_views_only_where_they_fit(x_shape, kernel_shape, kw, expected):
    assert ops.conv2d_plan(x_shape, kernel_shape, **kw)["forward"] == expected


@pytest.mark.parametrize(
    "shape", [ROW_VIEWS[i] for i in (1, 3, 5)], ids=[ROW_VIEW_IDS[i] for i in (1, 3, 5)]
)
def test_row_views_finite_differences(rng, shape):
    N, H, W, C, OC, KH, KW, strides, padding, dilation = shape
    shape = (1, H, W, C, 2, KH, KW, strides, padding, dilation)  # K > 32: not direct
    assert plan(shape)["forward"] == plan(shape)["weight_grads"] == "row_views"
    check_all_gradients(rng, shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [ROW_VIEWS[i] for i in (0, 2, 4)], ids=[ROW_VIEW_IDS[i] for i in (0, 2, 4)]
)
def test_row_views_threads_agree_and_repeat_exactly(rng, threads, shape, dtype):
    N, H, W, C, OC, KH, KW, strides, padding, dilation = shape
    shape = (3 * N + 2, H, W, C, OC, KH, KW, strides, padding, dilation)
    results = results_at_thread_counts(rng, shape, dtype)
    # y and dx: each output row is one thread's product, whatever the thread count
    for got in results.values():
        np.testing.assert_array_equal(got[0], results[1][0])
        np.testing.assert_array_equal(got[1], results[1][1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape",
    [
        # dx of 9-pixel samples: two samples to a tile, 10 groups, the last one short
        (19, 6, 5, 8, 16, 3, 3, (2, 2), ((1, 1), (1, 1)), (1, 1)),
        # a 1152 x 128 kernel gradient (590 KB in float32): each thread sums its taps
        (3, 6, 6, 128, 128, 3, 3, (2, 2), ((1, 0), (0, 1)), (1, 1)),
        # one sample: the threads share each tile's dx product by rows; a 3 x 2 x 300
        # window (K = 1800) packs the kernel in chunks of the depth for y
        (1, 7, 9, 300, 13, 3, 2, (2, 1), ((0, 2), (1, 0)), (1, 1)),
        # 1030 output channels: dx's products run over chunks of them
        (2, 5, 6, 5, 1030, 3, 3, (2, 2), ((1, 1), (0, 1)), (1, 1)),
    ],
    ids=["samples grouped", "taps split", "one sample, deep window", "many output channels"],
)
def test_pixel_tile_groupings(rng, threads, shape, dtype):
    assert plan(shape) == dict.fromkeys(("forward", "input_grad", "weight_grads"), "pixel_tiles")
    results = results_at_thread_counts(rng, shape, dtype)
    # y and dx: each tile is one thread's product, at any thread count
    for got in results.values():
        np.testing.assert_array_equal(got[0], results[1][0])
        np.testing.assert_array_equal(got[1], results[1][1])


def test_pixel_tile_dx_with_more_threads_than_sample_groups(rng, threads):
    # 16 samples of 9 pixels make 8 groups of 2; at 12 threads the samples go one a task
    shape = (16, 6, 5, 8, 16, 3, 3, (2, 2), ((1, 1), (1, 1)), (1, 1))
    x, kernel, _, kw = make(rng, shape, np.float64)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape)
    want = reference_grads(dy, x, kernel, **kw)[0]
    for n in (12, 17):
        ops.set_num_threads(n)
        got = ops.conv2d_backward(dy, x, kernel, **kw, need_dkernel=False, need_dbias=False)[0]
        np.testing.assert_allclose(got, want, **TOL[np.float64])


TAP_SPLIT_UNDER_A_THREAD_LIMIT = """
import numpy as np
from dlcore import ops
from reference.conv import conv2d_grads

rng = np.random.default_rng(0)
x = rng.standard_normal((4, 8, 8, 64)).astype(np.float32)
kernel = rng.standard_normal((5, 5, 64, 96)).astype(np.float32)
dy = rng.standard_normal((4, 8, 8, 96)).astype(np.float32)
assert ops.conv2d_plan(x.shape, kernel.shape, padding=2)["weight_grads"] == "pixel_tiles"
ops.set_num_threads(3)
for _ in range(3):
    dk = ops.conv2d_backward(dy, x, kernel, padding=2, need_dx=False, need_dbias=False)[1]
    want = conv2d_grads(dy, x, kernel, padding=((2, 2), (2, 2)))[1]
    np.testing.assert_allclose(dk, want, rtol=1e-4, atol=1e-3)
print("ok")
"""


def test_tap_split_kernel_gradient_when_the_runtime_starts_fewer_threads():
    # OMP_THREAD_LIMIT=1: every team has one thread, which takes all three shares of the
    # taps, each within its ceil(taps / 3)-tap buffer
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-c", TAP_SPLIT_UNDER_A_THREAD_LIMIT],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"


def test_winograd_float32_error_is_small(rng):
    # F(2x2, 3x3) adds a few roundings per output: at 128 channels its float32 error
    # should stay near that of a plain dot product (~1e-6 of the values' scale).
    shape = (2, 10, 10, 128, 32, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert plan(shape)["forward"] == "winograd"
    x, kernel, bias, kw = make(rng, shape, np.float32)
    expected = reference(x, kernel, bias, **kw)
    dy = rng.standard_normal(expected.shape).astype(np.float32)
    dx = ops.conv2d_backward(dy, x, kernel, **kw, need_dkernel=False, need_dbias=False)[0]
    for got, want in (
        (ops.conv2d_forward(x, kernel, bias, **kw), expected),
        (dx, reference_grads(dy, x, kernel, **kw)[0]),
    ):
        assert np.abs(got - want).max() / np.abs(want).max() < 2e-6


@pytest.mark.parametrize(
    "shape",
    [WINOGRAD_SHAPES[-1], (1, 4, 4, 16, 2, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1))],
    ids=["y 3x3", "y 4x4"],
)
def test_winograd_finite_differences(rng, shape):
    # x of 144 and 256 values: every gradient is checked; dkernel runs Winograd in the second
    check_all_gradients(rng, shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [WINOGRAD_SHAPES[i] for i in (0, 1, 6)], ids=[WINOGRAD_IDS[i] for i in (0, 1, 6)]
)
def test_winograd_threads_agree_and_repeat_exactly(rng, threads, shape, dtype):
    results_at_thread_counts(rng, shape, dtype)


# Few tiles (under 32 a thread) and at least a panel of output channels a thread: the
# forward splits the output channels among the threads, each transforming its own filters
# and every tile. Its bits are those of one thread, which splits nothing.
FEW_TILE_SHAPES = [
    (1, 5, 5, 16, 40, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # 9 tiles, a partial panel
    (1, 13, 13, 32, 64, 3, 3, (1, 1), ((0, 0), (0, 0)), (1, 1)),  # the seed CNN's conv2, b1
    (2, 7, 9, 17, 33, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # odd sizes, 2 samples
    (1, 6, 11, 16, 100, 3, 3, (1, 1), ((0, 2), (1, 0)), (1, 1)),  # asymmetric padding
    (1, 3, 3, 16, 3, 3, 3, (1, 1), ((1, 1), (1, 1)), (1, 1)),  # one panel: tiles split
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", FEW_TILE_SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}x{s[3]}->{s[4]}" for s in FEW_TILE_SHAPES]
)
def test_winograd_forward_at_few_tiles_has_one_threads_bits(rng, threads, shape, dtype):
    assert plan(shape)["forward"] == "winograd"
    x, kernel, bias, kw = make(rng, shape, dtype)
    expected = reference(x, kernel, bias, **kw)
    ops.set_num_threads(1)
    one = ops.conv2d_forward(x, kernel, bias, **kw)
    np.testing.assert_allclose(one, expected, **TOL[dtype])
    # The transposed convolution's dx is this forward adding onto its output, with no
    # bias: x as its dy, this kernel, its x of y's shape (not read for dx).
    transposed = dict(strides=(1, 1), padding=kw["padding"], output_padding=(0, 0))
    x_t = rng.standard_normal(one.shape).astype(dtype)
    dx_one = ops.conv2d_transpose_backward(x, x_t, kernel, **transposed)[0]
    np.testing.assert_allclose(dx_one, expected - bias, **TOL[dtype])
    for n in (2, 3, 7):
        ops.set_num_threads(n)
        np.testing.assert_array_equal(ops.conv2d_forward(x, kernel, bias, **kw), one)
        dx = ops.conv2d_transpose_backward(x, x_t, kernel, **transposed)[0]
        np.testing.assert_array_equal(dx, dx_one)


def results_at_thread_counts(rng, shape, dtype):
    """y, dx, dkernel, dbias at 1, 2 and 3 threads: at each count the same bits twice
    running, and the reference's values to the dtype's tolerance."""
    x, kernel, bias, kw = make(rng, shape, dtype)
    dy = rng.standard_normal(reference(x, kernel, **kw).shape).astype(dtype)
    expected = [reference(x, kernel, bias, **kw), *reference_grads(dy, x, kernel, **kw)]
    results = {}
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        got = [ops.conv2d_forward(x, kernel, bias, **kw), *ops.conv2d_backward(dy, x, kernel, **kw)]
        again = [
            ops.conv2d_forward(x, kernel, bias, **kw),
            *ops.conv2d_backward(dy, x, kernel, **kw),
        ]
        for a, b, e in zip(got, again, expected):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_allclose(a, e, **TOL[dtype])
        results[n] = got
    return results


# The benchmark's layers (bench/workloads/conv.py): the three deeper ones run Winograd
# in every pass, measured faster there; the 1-channel first layer stays direct.
@pytest.mark.parametrize(
    "x_shape,oc,pad,expected",
    [
        ((64, 28, 28, 1), 32, 0, ("direct", "pixel_tiles", "direct")),
        ((64, 26, 26, 32), 64, 0, ("winograd", "winograd", "winograd")),
        ((32, 56, 56, 64), 64, 1, ("winograd", "winograd", "winograd")),
        ((16, 28, 28, 128), 128, 1, ("winograd", "winograd", "winograd")),
    ],
)
def test_benchmark_layers_plan(x_shape, oc, pad, expected):
    got = ops.conv2d_plan(x_shape, (3, 3, x_shape[3], oc), padding=pad)
    assert (got["forward"], got["input_grad"], got["weight_grads"]) == expected


P, W = "pixel_tiles", "winograd"


@pytest.mark.parametrize(
    "x_shape,kernel_shape,kw,expected",
    [
        ((2, 8, 8, 15), (3, 3, 15, 16), dict(padding=1), (P, P, P)),  # C < 16
        ((2, 8, 8, 16), (3, 3, 16, 16), dict(padding=1, strides=2), (P, P, P)),
        ((2, 8, 8, 16), (3, 3, 16, 16), dict(padding=2, dilation=2), (P, P, P)),
        ((2, 8, 8, 16), (5, 5, 16, 16), dict(padding=2), (P, P, P)),
        ((8, 3, 3, 64), (3, 3, 64, 64), dict(), (P, P, P)),  # y 1x1: one tile a pixel
        ((8, 5, 5, 64), (3, 3, 64, 64), dict(), (W, P, P)),  # y 3x3; dx's grid 5x5 from it
        ((8, 5, 5, 64), (3, 3, 64, 64), dict(padding=1), (W, W, W)),  # y 5x5
        ((2, 8, 8, 64), (1, 1, 64, 64), dict(), ("pointwise",) * 3),
    ],
)
def test_plan_keeps_other_shapes_off_winograd(x_shape, kernel_shape, kw, expected):
    got = ops.conv2d_plan(x_shape, kernel_shape, **kw)
    assert (got["forward"], got["input_grad"], got["weight_grads"]) == expected


def test_conv2d_plan_rejects_bad_input():
    with pytest.raises(
        ValueError, match=r"conv2d_plan: kernel has shape \(3, 3, 2, 4\) with 2 input channels"
    ):
        ops.conv2d_plan((2, 5, 5, 3), (3, 3, 2, 4))
    with pytest.raises(ValueError, match=r"argument 'x_shape'"):
        ops.conv2d_plan((2, 5, 5), (3, 3, 3, 4))


def test_conv2d_plan_of_an_empty_batch_with_huge_dimensions():
    # As NumPy counts, an empty batch does not make an uncountable shape valid: x of
    # (0, INT64_MAX, INT64_MAX, 16) is the overflow error a full batch of it is (it once
    # passed, and the Winograd tile count (H + 1) / 2 overflowed).
    big = 2**63 - 1
    with pytest.raises(ValueError, match=r"its number of elements overflows a 64-bit integer"):
        ops.conv2d_plan((0, big, big, 16), (3, 3, 16, 16))
    # The largest countable empty batch still plans.
    got = ops.conv2d_plan((0, 2**20, 2**20, 16), (3, 3, 16, 16))
    assert set(got) == {"forward", "input_grad", "weight_grads"}
    assert set(got.values()) <= {"pointwise", "direct", "pixel_tiles", "winograd"}
