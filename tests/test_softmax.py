"""The softmax kernels and the fused softmax cross-entropies: NumPy reference, float64
finite differences, odd shapes, extreme logits, bad input and thread counts."""

import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference import softmax as ref

# rows x classes: batch 1, 1 / 3 / 7 classes, a classifier's 10, rows in leading axes,
# and no rows at all.
SHAPES = [(1, 1), (1, 3), (5, 7), (32, 10), (2, 3, 4), (4, 1, 33), (0, 5), (3, 0)]
IDS = ["x".join(map(str, s)) for s in SHAPES]
INDEX_DTYPES = ["int8", "int32", "int64", "uint8", "uint64", ">i4"]


def tolerances(dtype):
    return dict(rtol=2e-6, atol=2e-7) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_softmax_matches_reference(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    y = ops.softmax_forward(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_allclose(y, ref.softmax(x), **tolerances(dtype))
    if y.size:
        np.testing.assert_allclose(y.sum(axis=-1), 1, **tolerances(dtype))
    dy = rng.standard_normal(shape).astype(dtype)
    dx = ops.softmax_backward(dy, y)
    assert dx.dtype == dtype and dx.shape == shape
    np.testing.assert_allclose(dx, ref.softmax_backward(dy, y), **tolerances(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [s for s in SHAPES if s[-1]], ids=[i for s, i in zip(SHAPES, IDS) if s[-1]]
)
def test_cross_entropies_match_reference(rng, shape, dtype):
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    labels = rng.integers(0, shape[-1], shape[:-1])
    loss, grad = ops.sparse_softmax_cross_entropy(logits, labels)
    want_loss, want_grad = ref.sparse_softmax_cross_entropy(logits, labels)
    assert loss.dtype == dtype and loss.shape == shape[:-1] and grad.shape == shape
    np.testing.assert_allclose(loss, want_loss, **tolerances(dtype))
    np.testing.assert_allclose(grad, want_grad, **tolerances(dtype))
    # soft targets whose rows do not sum to 1: the gradient scales softmax by the sum
    targets = rng.random(shape).astype(dtype)
    loss, grad = ops.softmax_cross_entropy(logits, targets)
    want_loss, want_grad = ref.softmax_cross_entropy(logits, targets)
    np.testing.assert_allclose(loss, want_loss, **tolerances(dtype))
    np.testing.assert_allclose(grad, want_grad, **tolerances(dtype))
    # one-hot targets give the sparse loss
    onehot = np.eye(shape[-1], dtype=dtype)[labels]
    np.testing.assert_allclose(
        ops.softmax_cross_entropy(logits, onehot)[0],
        ops.sparse_softmax_cross_entropy(logits, labels)[0],
        **tolerances(dtype),
    )


@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
def test_sparse_labels_of_any_integer_dtype(rng, index_dtype):
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    labels = np.array([0, 3, 1, 2, 3, 0]).astype(index_dtype)
    loss, grad = ops.sparse_softmax_cross_entropy(logits, labels)
    want = ref.sparse_softmax_cross_entropy(logits, labels.astype(np.int64))
    np.testing.assert_allclose(loss, want[0], rtol=2e-6)
    np.testing.assert_allclose(grad, want[1], rtol=2e-6, atol=1e-7)


def test_without_grad_the_same_losses(rng):
    logits = rng.standard_normal((9, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 9)
    loss, grad = ops.sparse_softmax_cross_entropy(logits, labels, with_grad=False)
    assert grad is None
    # (the sum of the exponentials comes from a loop of its own without the gradient)
    want = ops.sparse_softmax_cross_entropy(logits, labels)[0]
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    targets = np.eye(5, dtype=np.float32)[labels]
    loss, grad = ops.softmax_cross_entropy(logits, targets, with_grad=False)
    assert grad is None
    np.testing.assert_array_equal(loss, ops.softmax_cross_entropy(logits, targets)[0])


def test_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((3, 5))

    def softmax_loss():
        return float((ops.softmax_forward(x) * w).sum())

    y = ops.softmax_forward(x)
    check_gradients(softmax_loss, {"x": x}, {"x": ops.softmax_backward(w, y)})

    labels = np.array([4, 0, 2])
    targets = rng.random((3, 5))
    weights = np.array([0.5, -1.0, 2.0])  # a different upstream gradient per row

    def sparse_loss():
        return float((ops.sparse_softmax_cross_entropy(x, labels)[0] * weights).sum())

    def dense_loss():
        return float((ops.softmax_cross_entropy(x, targets)[0] * weights).sum())

    sparse_grad = ops.sparse_softmax_cross_entropy(x, labels)[1] * weights[:, None]
    dense_grad = ops.softmax_cross_entropy(x, targets)[1] * weights[:, None]
    check_gradients(sparse_loss, {"x": x}, {"x": sparse_grad})
    check_gradients(dense_loss, {"x": x}, {"x": dense_grad})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits(dtype):
    # shifted by the max: exact where the textbook formula would overflow
    big = np.array([[1e4, 0.0, -1e4], [-3e4, -3e4 + 2, -3e4 + 1]], dtype)
    y = ops.softmax_forward(big)
    np.testing.assert_allclose(y, ref.softmax(big), rtol=1e-6, atol=1e-30)
    loss, grad = ops.sparse_softmax_cross_entropy(big, np.array([2, 1]))
    np.testing.assert_allclose(loss, [2e4, ref.sparse_softmax_cross_entropy(big, [2, 1])[0][1]],
                               rtol=1e-6)  # fmt: skip
    assert np.all(np.isfinite(grad))
    # a -inf logit has probability 0; NaN and +inf make their row NaN, others untouched
    odd = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0]], dtype)
    y = ops.softmax_forward(odd)
    np.testing.assert_allclose(y[0], ref.softmax(odd[:1])[0], rtol=1e-6)
    assert y[0, 1] == 0
    assert np.isnan(y[1:]).all()
    loss = ops.sparse_softmax_cross_entropy(odd, np.array([1, 0, 0]))[0]
    assert loss[0] == np.inf and np.isnan(loss[1:]).all()


@pytest.mark.parametrize("shape", [(64, 1000), (4096, 10), (3, 20000)], ids=str)
def test_same_bits_at_any_thread_count(rng, threads, shape):
    logits = (rng.standard_normal(shape) * 3).astype(np.float32)
    labels = rng.integers(0, shape[-1], shape[0])
    targets = rng.random(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)

    def run():
        y = ops.softmax_forward(logits)
        return (y, ops.softmax_backward(dy, y), *ops.sparse_softmax_cross_entropy(logits, labels),
                *ops.softmax_cross_entropy(logits, targets))  # fmt: skip

    ops.set_num_threads(1)
    one = run()
    np.testing.assert_allclose(one[0], ref.softmax(logits), rtol=2e-6, atol=1e-9)
    for n in (2, 3, 5):
        ops.set_num_threads(n)
        for got, want in zip(run(), one):
            assert np.array_equal(got, want), f"{n} threads"


def test_layouts_and_promotion(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    want = ops.softmax_forward(np.ascontiguousarray(x.T))
    np.testing.assert_array_equal(ops.softmax_forward(x.T), want)  # a transposed view
    np.testing.assert_array_equal(ops.softmax_forward(x[::-1])[::-1], ops.softmax_forward(x))
    assert ops.softmax_forward(x.astype(np.float64)).dtype == np.float64
    assert ops.softmax_forward(np.arange(6).reshape(2, 3)).dtype == np.float64  # int64 promotes
    assert ops.softmax_forward([[1.0, 2.0]]).shape == (1, 2)
    loss, grad = ops.softmax_cross_entropy(x, np.eye(4)[[0, 1, 2, 3, 0]])  # float64 targets
    assert loss.dtype == grad.dtype == np.float64


# ---------------------------------------------------------------- bad input

Z = np.zeros((4, 3), np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: ops.softmax_forward(np.float32(1)), ValueError,
         r"softmax_forward: argument 'x' is 0-D; expected an array of shape \(\.\.\., classes\)"),
        (lambda: ops.softmax_forward(None), TypeError, r"softmax_forward: argument 'x'"),
        (lambda: ops.softmax_forward(np.array(["a"])), TypeError, r"argument 'x' has dtype <U1"),
        (lambda: ops.softmax_backward(Z, Z[:, :2]), ValueError,
         r"softmax_backward: argument 'dy' has shape \(4, 3\) but 'y' has shape \(4, 2\)"),
        (lambda: ops.sparse_softmax_cross_entropy(Z, np.array([0, 1, 3, 2])), ValueError,
         r"sparse_softmax_cross_entropy: argument 'labels' holds 3 at row 2; expected class "
         r"indices in \[0, 3\)"),
        (lambda: ops.sparse_softmax_cross_entropy(Z, np.array([0, -1, 0, 0], np.int8)), ValueError,
         r"holds -1 at row 1"),
        (lambda: ops.sparse_softmax_cross_entropy(Z, np.array([0, 1, 2, 2**64 - 1], np.uint64)),
         ValueError, r"holds 18446744073709551615 at row 3"),
        (lambda: ops.sparse_softmax_cross_entropy(Z, np.zeros(4)), TypeError,
         r"argument 'labels' has dtype float64; expected an array of integers \(class indices"),
        (lambda: ops.sparse_softmax_cross_entropy(Z, np.zeros(3, int)), ValueError,
         r"argument 'labels' has shape \(3,\) but 'logits' has shape \(4, 3\); expected labels "
         r"of shape logits.shape\[:-1\]"),
        (lambda: ops.sparse_softmax_cross_entropy(np.zeros((2, 0)), np.zeros(2, int)), ValueError,
         r"argument 'logits' has shape \(2, 0\), no classes; expected at least one class"),
        (lambda: ops.softmax_cross_entropy(Z, Z[:3]), ValueError,
         r"softmax_cross_entropy: argument 'targets' has shape \(3, 3\) but 'logits' has shape"),
        (lambda: ops.softmax_cross_entropy(np.zeros((2, 0)), np.zeros((2, 0))), ValueError,
         r"no classes"),
        (lambda: ops.softmax_cross_entropy(Z, None), TypeError, r"argument 'targets'"),
    ],
)  # fmt: skip
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_one_row_of_logits(rng):
    z = rng.standard_normal(4)
    loss, grad = ops.sparse_softmax_cross_entropy(z, np.array(2))  # a 0-D label
    want = ref.sparse_softmax_cross_entropy(z, np.array(2))
    assert loss.shape == () and grad.shape == (4,)
    np.testing.assert_allclose(loss, want[0], rtol=1e-12)
    np.testing.assert_allclose(grad, want[1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ops.softmax_forward(z), ref.softmax(z), rtol=1e-12)


def test_first_bad_label_of_a_parallel_batch(rng, threads):
    logits = rng.standard_normal((4096, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 4096)
    labels[[3000, 100, 2047]] = [12, 11, -5]  # rows on both threads' shares
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        with pytest.raises(ValueError, match=r"holds 11 at row 100; expected class indices"):
            ops.sparse_softmax_cross_entropy(logits, labels)


def test_dense_targets_with_a_minus_inf_logit():
    # as Keras computes it, -sum(t * log_softmax(z)): 0 * -inf is NaN where the target is 0
    z = np.array([[0.0, -np.inf, 1.0]], np.float32)
    assert np.isnan(ops.softmax_cross_entropy(z, [[1.0, 0.0, 0.0]])[0]).all()
    loss = ops.sparse_softmax_cross_entropy(z, np.array([0]))[0]  # no product with 0 there
    np.testing.assert_allclose(loss, ref.sparse_softmax_cross_entropy(z, [0])[0], rtol=1e-6)


def test_no_rows_no_classes_is_empty():
    loss, grad = ops.sparse_softmax_cross_entropy(np.zeros((0, 0)), np.zeros(0, int))
    assert loss.shape == (0,) and grad.shape == (0, 0)
    assert ops.softmax_forward(np.zeros((3, 0))).shape == (3, 0)
