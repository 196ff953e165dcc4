import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from reference.gemm import gemm as reference

SIZES = [
    (1, 1, 1),
    (3, 3, 3),
    (7, 7, 7),
    (17, 17, 17),
    (129, 129, 129),
    (1, 7, 3),
    (3, 1, 17),
    (17, 129, 1),
    (129, 3, 7),
    (7, 17, 129),
    (64, 33, 5),
]
TRANS = [(False, False), (True, False), (False, True), (True, True)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def operands(rng, M, K, N, trans_a, trans_b, dtype):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("M,K,N", SIZES)
def test_gemm_matches_numpy(rng, M, K, N, trans_a, trans_b, dtype):
    a, b = operands(rng, M, K, N, trans_a, trans_b, dtype)
    c = ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    assert c.dtype == dtype and c.shape == (M, N) and c.flags.c_contiguous
    np.testing.assert_allclose(c, reference(a, b, trans_a, trans_b), **TOL[dtype])


def _layouts(x):
    """The same matrix in several memory layouts."""
    padded = np.zeros((x.shape[0] * 2, x.shape[1] + 3), x.dtype)
    padded[::2, 1:-2] = x
    reversed_rows = x[::-1].copy()[::-1]
    return {
        "fortran": np.asfortranarray(x),
        "row_slice": padded[::2, 1:-2],  # a leading dimension larger than the row
        "col_step": np.repeat(x, 2, axis=1)[:, ::2],  # no unit stride at all
        "negative": reversed_rows,
        "transposed_view": np.ascontiguousarray(x.T).T,
        "readonly": np.frombuffer(x.tobytes(), x.dtype).reshape(x.shape),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize(
    "layout", ["fortran", "row_slice", "col_step", "negative", "transposed_view", "readonly"]
)
def test_gemm_any_memory_layout(rng, layout, trans_a, trans_b, dtype):
    a, b = operands(rng, 17, 7, 9, trans_a, trans_b, dtype)
    a_l, b_l = _layouts(a)[layout], _layouts(b)[layout]
    np.testing.assert_array_equal(a_l, a)
    c = ops.gemm(a_l, b_l, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(c, reference(a, b, trans_a, trans_b), **TOL[dtype])
    # dc / gradients through odd layouts too
    dc = rng.standard_normal(c.shape).astype(dtype)
    da, db = ops.gemm_backward(_layouts(dc)[layout], a_l, b_l, trans_a=trans_a, trans_b=trans_b)
    da_ref, db_ref = ops.gemm_backward(dc, a, b, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(da, da_ref, **TOL[dtype])
    np.testing.assert_allclose(db, db_ref, **TOL[dtype])


@pytest.mark.parametrize("M,K,N", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)])
def test_gemm_zero_size(M, K, N):
    a, b = np.ones((M, K), np.float32), np.ones((K, N), np.float32)
    c = ops.gemm(a, b)
    assert c.shape == (M, N) and c.dtype == np.float32
    np.testing.assert_array_equal(c, np.zeros((M, N)))
    da, db = ops.gemm_backward(np.ones((M, N), np.float32), a, b)
    assert da.shape == a.shape and db.shape == b.shape
    assert not da.any() and not db.any()


@pytest.mark.parametrize(
    "a_dtype,b_dtype,expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float32, np.float64),
        (np.float16, np.float16, np.float32),
        (np.uint8, np.float32, np.float32),
        (np.bool_, np.float32, np.float32),
        (np.int32, np.float32, np.float64),  # as NumPy promotes: no precision lost
        (np.int64, np.int64, np.float64),
    ],
)
def test_gemm_dtype_promotion(rng, a_dtype, b_dtype, expected):
    a = (rng.random((4, 5)) * 3).astype(a_dtype)
    b = (rng.random((5, 6)) * 3).astype(b_dtype)
    c = ops.gemm(a, b)
    assert c.dtype == expected
    np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-3)


def test_gemm_float64_keeps_precision():
    big = np.array([[2.0**40 + 1.0]])
    assert ops.gemm(big, np.ones((1, 1), np.float32))[0, 0] == 2.0**40 + 1.0


def test_gemm_accepts_nested_lists():
    np.testing.assert_array_equal(ops.gemm([[1, 2]], [[3], [4]]), [[11.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_one_and_two_threads_agree(rng, threads, dtype):
    a, b = operands(rng, 300, 257, 301, False, False, dtype)
    ops.set_num_threads(1)
    c1 = ops.gemm(a, b)
    ops.set_num_threads(2)
    c2 = ops.gemm(a, b)
    ref = reference(a, b, False, False)
    np.testing.assert_allclose(c1, ref, **TOL[dtype])
    np.testing.assert_allclose(c2, ref, **TOL[dtype])
    # Eigen sizes its K blocks by the thread count, so the order of the partial sums,
    # and with it the last bits, may change with it; nothing more than rounding may.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(c1, c2, rtol=0, atol=8 * eps * np.abs(ref).max())


# Products with one side at least 4 times the other and 2**22 multiply-adds, which each
# thread multiplies a block of the long side of on its own (a Dense layer's shapes):
# long sides that do not end on a register block, and (16, 4096, 64), whose 64 columns
# make 3 of Eigen's 24-row blocks in float32: 7 threads leave some idle.
NARROW = [
    (32, 1600, 130),
    (1601, 32, 128),
    (33, 700, 200),
    (17, 128, 3000),
    (2000, 40, 64),
    (16, 4096, 64),
]
# A row vector times a matrix (a Dense layer at batch 1): the threads take blocks of
# whole vectors of columns, and every output is one chain of multiply-adds in k order.
# Columns that end in a partial vector, one vector, one column; 247 and 112 columns
# leave 4, 2 and 1 whole vectors after the blocks of 8 at every vector width (a thread's
# 64 columns of 128 are 4 vectors of 16 floats).
ROW_VECTOR = [
    (1, 1600, 128),
    (1, 128, 10),
    (1, 700, 257),
    (1, 3, 4097),
    (1, 2000, 33),
    (1, 513, 247),
    (1, 300, 112),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("M,K,N", NARROW + ROW_VECTOR)
def test_gemm_narrow_products_keep_one_threads_bits(rng, M, K, N, trans_a, trans_b, dtype):
    a, b = operands(rng, M, K, N, trans_a, trans_b, dtype)
    wide = np.zeros((b.shape[0], b.shape[1] + 5), dtype)
    wide[:, 2:-3] = b  # the same b with its rows apart
    ref = reference(a, b, trans_a, trans_b)
    tol = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: TOL[np.float64]}[dtype]
    before = ops.get_num_threads()
    try:
        ops.set_num_threads(1)
        one = ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        np.testing.assert_allclose(one, ref, **tol)
        for threads in (2, 3, 7):
            ops.set_num_threads(threads)
            for operand in (b, wide[:, 2:-3]):
                c = ops.gemm(a, operand, trans_a=trans_a, trans_b=trans_b)
                assert c.shape == (M, N) and c.dtype == dtype
                np.testing.assert_array_equal(c, one)  # each block: one thread's arithmetic
    finally:
        ops.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,K,N", NARROW[:3])
def test_gemm_backward_of_narrow_products_matches_numpy(rng, M, K, N, dtype):
    a, b = operands(rng, M, K, N, False, False, dtype)
    dc = rng.standard_normal((M, N)).astype(dtype)
    tol = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: TOL[np.float64]}[dtype]
    before = ops.get_num_threads()
    try:
        grads = {}
        for threads in (1, 2, 3):
            ops.set_num_threads(threads)
            grads[threads] = ops.gemm_backward(dc, a, b)
    finally:
        ops.set_num_threads(before)
    da, db = grads[1]
    np.testing.assert_allclose(da, dc.astype(np.float64) @ b.T, **tol)
    np.testing.assert_allclose(db, a.T.astype(np.float64) @ dc, **tol)
    for threads in (2, 3):
        np.testing.assert_array_equal(grads[threads][0], da)
        np.testing.assert_array_equal(grads[threads][1], db)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "M,K,N", [(7, 3, 4), (3, 7, 9), (5, 5, 5), (1, 3, 4), (4, 9, 1), (9, 8, 7), (1, 40, 37)]
)
def test_gemm_bits_do_not_follow_the_results_address(rng, M, K, N, dtype):
    """The same operands give the same bits wherever the allocator puts the result
    (tiny products once rounded the elements before the result's first aligned vector
    apart from the rest). Allocations of random sizes in between move it."""
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    held, seen, offsets = [], set(), set()
    for _ in range(200):
        held.append(np.empty(int(rng.integers(1, 40)), np.uint8))
        if len(held) > 50:
            held.pop(int(rng.integers(0, 50)))
        c = ops.gemm(a, b)
        held.append(c)  # kept a while, so that the next result lies elsewhere
        seen.add(c.tobytes())
        offsets.add(c.ctypes.data % 64)
    if len(offsets) == 1:  # a sanitizer's allocator puts a size class at one offset
        pytest.skip(f"every result lay {offsets.pop()} bytes into a cache line: nothing moved")
    assert len(seen) == 1
    np.testing.assert_allclose(c, reference(a, b, False, False), **TOL[dtype])


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_gemm_backward_finite_differences(rng, trans_a, trans_b):
    a, b = operands(rng, 4, 3, 5, trans_a, trans_b, np.float64)
    w = rng.standard_normal((4, 5))

    def loss():
        return float((ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b) * w).sum())

    da, db = ops.gemm_backward(w, a, b, trans_a=trans_a, trans_b=trans_b)
    check_gradients(loss, {"a": a, "b": b}, {"a": da, "b": db})


def test_gemm_backward_skips_unneeded(rng):
    a, b = operands(rng, 3, 4, 5, False, False, np.float32)
    dc = np.ones((3, 5), np.float32)
    da, db = ops.gemm_backward(dc, a, b, need_da=False)
    assert da is None and db.shape == b.shape
    da, db = ops.gemm_backward(dc, a, b, need_db=False)
    assert db is None and da.shape == a.shape


# ------------------------------------------------------------------ bad input


def test_gemm_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"argument 'a' must be 2-D .*1-D array of shape \(5,\)"):
        ops.gemm(np.ones(5), np.ones((5, 2)))
    with pytest.raises(
        ValueError, match=r"argument 'b' must be 2-D .*3-D array of shape \(2, 2, 2\)"
    ):
        ops.gemm(np.ones((2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"argument 'a' must be 2-D .*0-D"):
        ops.gemm(np.float32(3), np.ones((1, 1)))


def test_gemm_rejects_mismatched_inner_dimension():
    msg = r"a has shape \(3, 4\) \(trans_a=False, so K=4\) and b has shape \(5, 6\) \(trans_b=False, so K=5\)"
    with pytest.raises(ValueError, match=msg):
        ops.gemm(np.ones((3, 4)), np.ones((5, 6)))
    with pytest.raises(ValueError, match=r"trans_a=True, so K=3"):
        ops.gemm(np.ones((3, 4)), np.ones((4, 6)), trans_a=True)


@pytest.mark.parametrize(
    "bad,what",
    [
        (np.ones((2, 2), np.complex64), "complex64"),
        (np.array([["a", "b"], ["c", "d"]]), "<U1"),
        (np.empty((2, 2), object), "object"),
        (np.ones((2, 2), np.longdouble), "float128"),
    ],
)
def test_gemm_rejects_non_numeric_dtype(bad, what):
    with pytest.raises(TypeError, match=rf"argument 'b' has dtype {what}"):
        ops.gemm(np.ones((2, 2)), bad)


def test_gemm_rejects_none():
    with pytest.raises(TypeError, match=r"argument 'a' must be an array, got None"):
        ops.gemm(None, np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"argument 'dc' must be an array, got None"):
        ops.gemm_backward(None, np.ones((2, 2)), np.ones((2, 2)))


def test_gemm_rejects_unconvertible():
    with pytest.raises(TypeError, match=r"argument 'b' of type list could not be converted"):
        ops.gemm(np.ones((2, 2)), [[1.0], [1.0, 2.0]])  # ragged
    with pytest.raises(TypeError, match=r"argument 'b' has dtype object"):
        ops.gemm(np.ones((2, 2)), {"x": 1})


def test_gemm_backward_rejects_wrong_dc_shape():
    with pytest.raises(
        ValueError, match=r"'dc' has shape \(2, 5\) but the product .* has shape \(2, 6\)"
    ):
        ops.gemm_backward(np.ones((2, 5)), np.ones((2, 3)), np.ones((3, 6)))
