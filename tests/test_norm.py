import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from keras_parity import import_keras
from reference import norm as ref

# x shapes: M = 1, C = 1 / 3 / 7 / 12 (channels read in wide rows of 8 / gcd(C, 8) rows),
# batch 1, 1-D x, and sizes with several chunks of rows and a short last wide row.
SHAPES = [
    (1, 1),
    (1, 3),
    (5, 7),
    (7,),
    (2, 3, 3),
    (1, 4, 4, 3),
    (3, 1),
    (6, 12),
    (2, 5, 5, 64),
    (70001, 1),  # 9 chunks, the last 69 rows: 8 wide rows and 5 rows left
    (9, 37, 35, 3),  # 3 chunks of a C = 3 image
]
IDS = ["x".join(map(str, s)) for s in SHAPES]
AFFINE = [(True, True), (False, False), (True, False)]


def params(rng, C, affine, dtype):
    gamma = (1 + 0.5 * rng.standard_normal(C)).astype(dtype) if affine[0] else None
    beta = rng.standard_normal(C).astype(dtype) if affine[1] else None
    return gamma, beta


def tol(dtype, size=1):
    # float32 sums of up to 70,000 terms: a little more than one rounding per element
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- batch norm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", AFFINE, ids=["scale-center", "neither", "scale"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_batch_norm_matches_reference(rng, shape, affine, dtype):
    x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
    gamma, beta = params(rng, shape[-1], affine, dtype)
    y, mean, variance, inv_std = ops.batch_norm_forward(x, gamma, beta, epsilon=1e-3)
    y_ref, mean_ref, var_ref, inv_ref = ref.batch_norm(x, gamma, beta, 1e-3)
    C = shape[-1]
    assert y.shape == shape and mean.shape == variance.shape == inv_std.shape == (C,)
    assert y.dtype == mean.dtype == variance.dtype == inv_std.dtype == dtype
    for got, want in ((y, y_ref), (mean, mean_ref), (variance, var_ref), (inv_std, inv_ref)):
        np.testing.assert_allclose(got, want, **tol(dtype))
    dy = rng.standard_normal(shape).astype(dtype)
    for training in (True, False):
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, mean, inv_std, gamma, training=training)
        want = ref.batch_norm_backward(dy, x, mean, inv_std, gamma, training=training)
        for got, w in zip((dx, dgamma, dbeta), want):
            assert got.dtype == dtype and got.shape == w.shape
            np.testing.assert_allclose(got, w, **tol(dtype))
    y_inf = ops.batch_norm_inference(x, mean, variance, gamma, beta, epsilon=1e-3)
    np.testing.assert_allclose(
        y_inf, ref.batch_norm_inference(x, mean, variance, gamma, beta), **tol(dtype)
    )


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 5), (1, 2), (9, 1)])
def test_batch_norm_backward_finite_differences(rng, shape, training):
    x = rng.standard_normal(shape)
    gamma, beta = 1 + 0.3 * rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    w = rng.standard_normal(shape)
    _, mean0, variance0, inv0 = ops.batch_norm_forward(x, gamma, beta)

    def loss():
        if training:
            y = ops.batch_norm_forward(x, gamma, beta, epsilon=1e-3)[0]
        else:  # the statistics held fixed, as moving statistics are
            y = ops.batch_norm_inference(x, mean0, variance0, gamma, beta, epsilon=1e-3)
        return float((y * w).sum())

    dx, dgamma, dbeta = ops.batch_norm_backward(w, x, mean0, inv0, gamma, training=training)
    check_gradients(
        loss, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}
    )


def test_batch_norm_statistics_keep_float32_precision_far_from_zero(rng):
    # A naive sum of squares loses everything here (mean 1e4, std 1e-1: the variance is
    # 1e-10 of the mean's square); the chunked two-pass statistics keep float32's.
    x = (1e4 + 0.1 * rng.standard_normal((50000, 4))).astype(np.float32)
    _, mean, variance, _ = ops.batch_norm_forward(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-7)
    np.testing.assert_allclose(variance, x64.var(0), rtol=1e-4)


def test_batch_norm_need_flags(rng):
    x, dy = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    gamma = rng.standard_normal(5)
    _, mean, _, inv_std = ops.batch_norm_forward(x, gamma)
    full = ops.batch_norm_backward(dy, x, mean, inv_std, gamma)
    for flags in [(True, False, False), (False, True, False), (False, False, True), (False,) * 3]:
        got = ops.batch_norm_backward(
            dy, x, mean, inv_std, gamma, need_dx=flags[0], need_dgamma=flags[1], need_dbeta=flags[2]
        )
        for want, g, need in zip(full, got, flags):
            if need:
                np.testing.assert_array_equal(g, want)
            else:
                assert g is None
    # gamma None is a scale of 1: dgamma is still the gradient that scale would get
    _, mean1, _, inv1 = ops.batch_norm_forward(x)
    dx, dgamma, _ = ops.batch_norm_backward(dy, x, mean1, inv1)
    want = ref.batch_norm_backward(dy, x, mean1, inv1)
    np.testing.assert_allclose(dx, want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dgamma, want[1], rtol=1e-10)


def test_batch_norm_empty_batch_gives_nan_statistics():
    x = np.zeros((0, 4, 3), np.float32)
    y, mean, variance, inv_std = ops.batch_norm_forward(x)
    assert y.shape == x.shape and np.isnan(mean).all() and np.isnan(variance).all()
    dx, dgamma, dbeta = ops.batch_norm_backward(x, x, mean, inv_std)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, 0)
    y, mean, variance, inv_std = ops.batch_norm_forward(np.zeros((3, 0)))
    assert y.shape == (3, 0) and mean.shape == (0,)


def test_batch_norm_moving_statistics_update_as_keras(rng):
    keras = import_keras()
    x = (3 * rng.standard_normal((8, 5, 5, 6)) + 2).astype(np.float32)
    layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    layer.build(x.shape)
    gamma = (1 + 0.2 * rng.standard_normal(6)).astype(np.float32)
    beta = rng.standard_normal(6).astype(np.float32)
    moving_mean = rng.standard_normal(6).astype(np.float32)
    moving_var = (1 + rng.random(6)).astype(np.float32)
    layer.set_weights([gamma, beta, moving_mean, moving_var])
    want = np.asarray(layer(x, training=True))
    y, mean, variance, _ = ops.batch_norm_forward(x, gamma, beta, epsilon=1e-3)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=2e-5)
    # Keras folds the biased batch variance into moving_variance
    new_mean, new_var = moving_mean * 0.9 + mean * 0.1, moving_var * 0.9 + variance * 0.1
    np.testing.assert_allclose(np.asarray(layer.moving_mean.value), new_mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(layer.moving_variance.value), new_var, rtol=1e-6)
    want = np.asarray(layer(x, training=False))
    got = ops.batch_norm_inference(x, new_mean, new_var, gamma, beta, epsilon=1e-3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


# ---------------------------------------------------------------- layer norm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", AFFINE, ids=["scale-center", "neither", "scale"])
@pytest.mark.parametrize("shape", SHAPES + [(3, 1000)], ids=[*IDS, "3x1000"])
def test_layer_norm_matches_reference(rng, shape, affine, dtype):
    x = (2 * rng.standard_normal(shape) + 1).astype(dtype)
    gamma, beta = params(rng, shape[-1], affine, dtype)
    y, mean, inv_std = ops.layer_norm_forward(x, gamma, beta, epsilon=1e-3)
    y_ref, mean_ref, inv_ref = ref.layer_norm(x, gamma, beta, 1e-3)
    assert y.shape == shape and mean.shape == inv_std.shape == shape[:-1]
    assert y.dtype == mean.dtype == inv_std.dtype == dtype
    for got, want in ((y, y_ref), (mean, mean_ref), (inv_std, inv_ref)):
        np.testing.assert_allclose(got, want, **tol(dtype))
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = ops.layer_norm_backward(dy, x, mean, inv_std, gamma)
    want = ref.layer_norm_backward(dy, x, mean, inv_std, gamma)
    for got, w in zip((dx, dgamma, dbeta), want):
        assert got.dtype == dtype and got.shape == w.shape
        np.testing.assert_allclose(got, w, **tol(dtype))


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (1, 2), (3, 1)])
def test_layer_norm_backward_finite_differences(rng, shape):
    x = rng.standard_normal(shape)
    gamma, beta = 1 + 0.3 * rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    w = rng.standard_normal(shape)

    def loss():
        return float((ops.layer_norm_forward(x, gamma, beta, epsilon=1e-3)[0] * w).sum())

    _, mean, inv_std = ops.layer_norm_forward(x, gamma, beta)
    dx, dgamma, dbeta = ops.layer_norm_backward(w, x, mean, inv_std, gamma)
    check_gradients(
        loss, {"x": x, "gamma": gamma, "beta": beta}, {"x": dx, "gamma": dgamma, "beta": dbeta}
    )


def test_layer_norm_need_flags_and_zero_sizes(rng):
    x, dy = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    _, mean, inv_std = ops.layer_norm_forward(x)
    full = ops.layer_norm_backward(dy, x, mean, inv_std)
    dx, dgamma, dbeta = ops.layer_norm_backward(dy, x, mean, inv_std, need_dx=False)
    assert dx is None
    np.testing.assert_array_equal(dgamma, full[1])
    dx, dgamma, dbeta = ops.layer_norm_backward(
        dy, x, mean, inv_std, need_dgamma=False, need_dbeta=False
    )
    assert dgamma is None and dbeta is None
    np.testing.assert_array_equal(dx, full[0])
    y, mean, inv_std = ops.layer_norm_forward(np.zeros((0, 3)))
    assert y.shape == (0, 3) and mean.shape == (0,)
    y, mean, inv_std = ops.layer_norm_forward(np.zeros((2, 0)))
    assert y.shape == (2, 0) and np.isnan(mean).all()
    dx, dgamma, dbeta = ops.layer_norm_backward(np.zeros((2, 0)), np.zeros((2, 0)), mean, inv_std)
    assert dx.shape == (2, 0) and dgamma.shape == (0,)


def test_layer_norm_matches_keras(rng):
    keras = import_keras()
    x = (3 * rng.standard_normal((4, 7, 24)) + 1).astype(np.float32)
    layer = keras.layers.LayerNormalization(epsilon=1e-3)
    layer.build(x.shape)
    gamma = (1 + 0.2 * rng.standard_normal(24)).astype(np.float32)
    beta = rng.standard_normal(24).astype(np.float32)
    layer.set_weights([gamma, beta])
    y, _, _ = ops.layer_norm_forward(x, gamma, beta, epsilon=1e-3)
    np.testing.assert_allclose(y, np.asarray(layer(x)), rtol=1e-5, atol=2e-5)


# ---------------------------------------------------------------- threads


def _all_outputs(x, dy, gamma, beta):
    y, mean, variance, inv_std = ops.batch_norm_forward(x, gamma, beta)
    bn = (y, mean, variance, inv_std, *ops.batch_norm_backward(dy, x, mean, inv_std, gamma))
    y, mean, inv_std = ops.layer_norm_forward(x, gamma, beta)
    ln = (y, mean, inv_std, *ops.layer_norm_backward(dy, x, mean, inv_std, gamma))
    return bn + ln


@pytest.mark.parametrize("shape", [(64, 33, 40), (9, 37, 35, 3), (40000, 1)])
def test_every_output_has_the_same_bits_at_any_thread_count(rng, shape, threads):
    x = (rng.standard_normal(shape) + 0.5).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma = rng.standard_normal(shape[-1]).astype(np.float32)
    beta = rng.standard_normal(shape[-1]).astype(np.float32)
    ops.set_num_threads(1)
    one = _all_outputs(x, dy, gamma, beta)
    for n in (2, 3, 4):
        ops.set_num_threads(n)
        for i, (a, b) in enumerate(zip(one, _all_outputs(x, dy, gamma, beta))):
            assert np.array_equal(a, b), f"output {i} changed at {n} threads"


# ---------------------------------------------------------------- streamed results
# A pass whose working set (what it reads and writes) is at least
# dlcore.build_info["stream_min_bytes"] bytes (1.5x the last-level cache) writes its result past
# the caches (non-temporal stores from a tile buffer); layer norm only for rows of 1 KiB or
# more. Here every result streams, or none, and the bits must not move; C = 7 starts rows
# off the stores' alignment, 1030 columns make rows longer than a tile.


@pytest.fixture
def stream_all():
    from dlcore import _core

    before = _core._set_stream_min_bytes(0)
    yield _core
    _core._set_stream_min_bytes(before)


def test_the_default_threshold_is_a_size():
    import dlcore

    assert dlcore.build_info["stream_min_bytes"] >= 1 << 16


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(1, 1), (5, 7), (9, 37, 35, 3), (3, 1000), (300, 1030), (70001, 1)]
)
def test_streamed_results_have_the_same_bits(rng, shape, dtype, stream_all, threads):
    x = (rng.standard_normal(shape) + 0.5).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = params(rng, shape[-1], (True, True), dtype)
    _, mean, variance, inv_std = ops.batch_norm_forward(x, gamma, beta)
    _, lmean, linv = ops.layer_norm_forward(x, gamma, beta)

    def outputs():
        return (
            *_all_outputs(x, dy, gamma, beta),
            ops.batch_norm_inference(x, mean, variance, gamma, beta),
            ops.batch_norm_backward(dy, x, mean, inv_std, gamma, training=False)[0],
            ops.batch_norm_backward(
                dy, x, mean, inv_std, gamma, need_dgamma=False, need_dbeta=False
            )[0],
            ops.layer_norm_backward(dy, x, lmean, linv, gamma, need_dgamma=False, need_dbeta=False)[
                0
            ],
        )

    for n in (1, 2):
        ops.set_num_threads(n)
        stream_all._set_stream_min_bytes(np.iinfo(np.uint64).max)
        cached = outputs()
        stream_all._set_stream_min_bytes(0)
        streamed = outputs()
        for i, (a, b) in enumerate(zip(cached, streamed)):
            assert a is not None and np.array_equal(a, b), f"output {i} changed at {n} threads"


# ---------------------------------------------------------------- bad input

X = np.ones((4, 3), np.float32)
C3 = np.ones(3, np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: ops.batch_norm_forward(np.float32(1)),
            ValueError,
            r"batch_norm_forward: argument 'x' is 0-D",
        ),
        (
            lambda: ops.batch_norm_forward(None),
            TypeError,
            r"argument 'x' must be an array, got None",
        ),
        (
            lambda: ops.batch_norm_forward(X.astype(complex)),
            TypeError,
            r"argument 'x' has dtype complex128",
        ),
        (
            lambda: ops.batch_norm_forward(X, np.ones(4)),
            ValueError,
            r"argument 'gamma' has shape \(4,\); expected \(3,\), one value per channel",
        ),
        (
            lambda: ops.batch_norm_forward(X, None, np.ones((3, 1))),
            ValueError,
            r"argument 'beta' has shape \(3, 1\); expected \(3,\)",
        ),
        (
            lambda: ops.batch_norm_forward(X, epsilon=-1.0),
            ValueError,
            r"epsilon is -1; expected a finite number >= 0",
        ),
        (lambda: ops.batch_norm_forward(X, epsilon=float("nan")), ValueError, r"epsilon is nan"),
        (
            lambda: ops.batch_norm_forward(X, epsilon="0.1"),
            TypeError,
            r"incompatible function arguments",
        ),
        (
            lambda: ops.batch_norm_inference(X, None, C3),
            TypeError,
            r"argument 'mean' must be an array, got None",
        ),
        (
            lambda: ops.batch_norm_inference(X, C3, np.ones(2)),
            ValueError,
            r"argument 'variance' has shape \(2,\); expected \(3,\)",
        ),
        (
            lambda: ops.batch_norm_backward(np.ones((4, 2)), X, C3, C3),
            ValueError,
            r"argument 'dy' has shape \(4, 2\); expected \(4, 3\), x's shape",
        ),
        (
            lambda: ops.batch_norm_backward(X, X, np.ones(4), C3),
            ValueError,
            r"argument 'mean' has shape \(4,\); expected \(3,\)",
        ),
        (
            lambda: ops.batch_norm_backward(X, X, C3, None),
            TypeError,
            r"argument 'inv_std' must be an array, got None",
        ),
        (
            lambda: ops.batch_norm_backward(X, X, C3, C3, np.ones(2)),
            ValueError,
            r"argument 'gamma' has shape \(2,\)",
        ),
        (
            lambda: ops.batch_norm_backward(X, None, C3, C3),
            TypeError,
            r"argument 'x' must be an array, got None",
        ),
        (
            lambda: ops.layer_norm_forward(X, np.ones(4)),
            ValueError,
            r"layer_norm_forward: argument 'gamma' has shape \(4,\); expected \(3,\)",
        ),
        (lambda: ops.layer_norm_forward(np.float64(2.0)), ValueError, r"argument 'x' is 0-D"),
        (lambda: ops.layer_norm_forward(X, epsilon=float("inf")), ValueError, r"epsilon is inf"),
        (
            lambda: ops.layer_norm_backward(X, X, C3, np.ones(4)),
            ValueError,
            r"argument 'mean' has shape \(3,\); expected \(4,\), one value per row \(x.shape\[:-1\]\)",
        ),
        (
            lambda: ops.layer_norm_backward(X, X, np.ones(4), np.ones(3)),
            ValueError,
            r"argument 'inv_std' has shape \(3,\); expected \(4,\)",
        ),
        (
            lambda: ops.layer_norm_backward(X.T, X, np.ones(4), np.ones(4)),
            ValueError,
            r"argument 'dy' has shape \(3, 4\)",
        ),
        (
            lambda: ops.layer_norm_backward(
                X, X, np.ones(4), np.ones(4), np.array(["a", "b", "c"])
            ),
            TypeError,
            r"argument 'gamma' has dtype <U1",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_layouts_and_promotion(rng):
    x = rng.standard_normal((5, 6)).astype(np.float32)
    xf = np.asfortranarray(x)
    for a, b in zip(ops.batch_norm_forward(xf), ops.batch_norm_forward(x)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ops.layer_norm_forward(x[:, ::-1]), ops.layer_norm_forward(x[:, ::-1].copy())):
        np.testing.assert_array_equal(a, b)
    # a float64 gamma makes the whole call float64, as NumPy would
    assert ops.batch_norm_forward(x, np.ones(6))[0].dtype == np.float64
    assert ops.layer_norm_forward(x.astype(np.int16))[0].dtype == np.float32
