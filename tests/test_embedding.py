import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from keras_parity import import_keras
from reference.embedding import embedding as reference
from reference.embedding import embedding_backward as reference_backward

INDEX_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", ">i4"]
# (idx shape, input_dim, output_dim): a 0-D index, no positions, batch 1, D = 1 / 3 / 7.
SHAPES = [
    ((), 5, 3),
    ((0,), 4, 2),
    ((1,), 1, 1),
    ((3, 5), 10, 7),
    ((2, 3, 4), 50, 3),
    ((1, 9), 7, 16),
]
IDS = [f"idx{s[0]}-V{s[1]}-D{s[2]}" for s in SHAPES]


@pytest.mark.parametrize("index_dtype", INDEX_DTYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_embedding_matches_reference(rng, shape, dtype, index_dtype):
    idx_shape, V, D = shape
    idx = rng.integers(0, V, idx_shape).astype(index_dtype)
    table = rng.standard_normal((V, D)).astype(dtype)
    y = ops.embedding_forward(idx, table)
    assert y.dtype == dtype and y.shape == (*idx_shape, D)
    np.testing.assert_array_equal(y, reference(idx, table))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dtable = ops.embedding_backward(dy, idx, V)
    assert dtable.dtype == dtype and dtable.shape == (V, D)
    # both add the rows of dy in position order: the same bits
    np.testing.assert_array_equal(dtable, reference_backward(dy, idx, V))


def test_embedding_backward_finite_differences(rng):
    idx = np.array([[0, 3, 3], [2, 0, 3]])  # repeats: their gradients add up
    table = rng.standard_normal((5, 4))
    w = rng.standard_normal((2, 3, 4))

    def loss():
        return float((ops.embedding_forward(idx, table) * w).sum())

    check_gradients(loss, {"table": table}, {"table": ops.embedding_backward(w, idx, 5)})
    assert not ops.embedding_backward(w, idx, 5)[[1, 4]].any()  # rows never looked up


@pytest.mark.parametrize("V", [1, 7, 64, 5000])
def test_embedding_backward_writes_every_row_over_reused_memory(rng, V, threads):
    """The table gradient is allocated uninitialised and each thread zeroes its rows: rows
    no index hits must be exactly 0 even where the allocator hands back dirty memory
    (arrays of the same size, filled with NaN and freed just before, at any thread count)."""
    D = 16
    idx = rng.integers(0, max(V // 3, 1), (4, 9))  # the upper rows are never hit
    dy = rng.standard_normal((4, 9, D)).astype(np.float32)
    expected = reference_backward(dy, idx, V)
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        for _ in range(3):
            dirty = [np.full((V, D), np.nan, np.float32) for _ in range(4)]
            del dirty
            got = ops.embedding_backward(dy, idx, V)
            np.testing.assert_array_equal(got, expected)


def zipf_indices(rng, shape, V):
    """Token ids as text has them: a few very frequent, a long tail."""
    return np.minimum(rng.zipf(1.3, shape) - 1, V - 1)


@pytest.mark.parametrize("indices", ["uniform", "zipf", "one_row"])
def test_embedding_backward_same_bits_at_any_thread_count(rng, indices, threads):
    V, D = 3000, 24
    idx = {
        "uniform": rng.integers(0, V, (32, 50)),
        "zipf": zipf_indices(rng, (32, 50), V),
        "one_row": np.full((32, 50), 17),
    }[indices]
    dy = rng.standard_normal((32, 50, D)).astype(np.float32)
    table = rng.standard_normal((V, D)).astype(np.float32)
    ops.set_num_threads(1)
    one = ops.embedding_backward(dy, idx, V)
    np.testing.assert_array_equal(one, reference_backward(dy, idx, V))
    for n in (2, 3, 4, 7):
        ops.set_num_threads(n)
        assert np.array_equal(ops.embedding_backward(dy, idx, V), one), f"{n} threads"
        assert np.array_equal(ops.embedding_forward(idx, table), table[idx])


def test_embedding_table_layouts_and_promotion(rng):
    table = rng.standard_normal((6, 4)).astype(np.float32)
    idx = np.array([[5, 0], [1, 1]])
    np.testing.assert_array_equal(ops.embedding_forward(idx, np.asfortranarray(table)), table[idx])
    np.testing.assert_array_equal(ops.embedding_forward(idx.T, table), table[idx.T])
    np.testing.assert_array_equal(
        ops.embedding_forward(idx[:, ::-1], table[::-1]), table[::-1][idx[:, ::-1]]
    )
    assert ops.embedding_forward(idx, table.astype(np.int64)).dtype == np.float64
    assert ops.embedding_forward([1, 2], table).shape == (2, 4)  # a list of ints
    dtable = ops.embedding_backward(np.ones((2, 2, 4), np.int32), idx, 6)
    assert dtable.dtype == np.float64 and dtable[1, 0] == 2


def test_embedding_matches_keras(rng):
    keras = import_keras()
    layer = keras.layers.Embedding(40, 6)
    idx = rng.integers(0, 40, (3, 11)).astype(np.int32)
    want = np.asarray(layer(idx))
    table = np.asarray(layer.embeddings.value)
    np.testing.assert_array_equal(ops.embedding_forward(idx, table), want)


# ---------------------------------------------------------------- bad input

T = np.ones((10, 3), np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: ops.embedding_forward(np.array([[1, 2], [10, 3]]), T),
            ValueError,
            r"embedding_forward: argument 'idx' holds 10 at position \(1, 0\); expected indices in \[0, 10\), the table's rows \(input_dim 10\)",
        ),
        (
            lambda: ops.embedding_forward(np.array([4, -1, 99], np.int8), T),
            ValueError,
            r"holds -1 at position \(1,\); expected indices in \[0, 10\)",
        ),
        (
            lambda: ops.embedding_forward(np.array([2**64 - 1], np.uint64), T),
            ValueError,
            r"holds 18446744073709551615 at position \(0,\)",
        ),
        (
            lambda: ops.embedding_forward(np.array(12), T),
            ValueError,
            r"holds 12 at position \(\)",
        ),
        (
            lambda: ops.embedding_backward(np.ones((2, 3)), np.array([0, 10]), 10),
            ValueError,
            r"embedding_backward: argument 'idx' holds 10 at position \(1,\); expected indices in \[0, 10\)",
        ),
        (
            lambda: ops.embedding_forward(np.array([0.0, 1.0]), T),
            TypeError,
            r"argument 'idx' has dtype float64; expected an array of integers",
        ),
        (lambda: ops.embedding_forward(np.array([True]), T), TypeError, r"'idx' has dtype bool"),
        (
            lambda: ops.embedding_forward(None, T),
            TypeError,
            r"argument 'idx' must be an integer array, got None",
        ),
        (
            lambda: ops.embedding_forward([0], np.ones(3)),
            ValueError,
            r"argument 'table' must be 2-D \(input_dim, output_dim\), got a 1-D array",
        ),
        (
            lambda: ops.embedding_forward([0], None),
            TypeError,
            r"argument 'table' must be an array, got None",
        ),
        (
            lambda: ops.embedding_forward([0], T.astype(complex)),
            TypeError,
            r"argument 'table' has dtype complex128",
        ),
        (
            lambda: ops.embedding_backward(np.ones((2, 3)), np.array([[0, 1]]), 10),
            ValueError,
            r"argument 'dy' has shape \(2, 3\) but idx has shape \(1, 2\); expected dy of shape idx.shape \+ \(output_dim,\)",
        ),
        (
            lambda: ops.embedding_backward(np.ones((1, 3)), [0], -1),
            ValueError,
            r"input_dim is -1; expected the table's rows, >= 0",
        ),
        (
            lambda: ops.embedding_backward(np.ones((1, 3)), [0], "10"),
            TypeError,
            r"incompatible function arguments",
        ),
        (lambda: ops.embedding_backward(np.ones((1, 3)), [0], 2**62), ValueError, r"overflows"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_out_of_range_in_a_parallel_call_names_the_first(rng, threads):
    ops.set_num_threads(2)
    idx = rng.integers(0, 1000, 100000)
    idx[[70000, 90000, 60001]] = [1000, -5, 2000]
    table = np.ones((1000, 8), np.float32)
    with pytest.raises(ValueError, match=r"holds 2000 at position \(60001,\)"):
        ops.embedding_forward(idx, table)
    with pytest.raises(ValueError, match=r"holds 2000 at position \(60001,\)"):
        ops.embedding_backward(np.ones((100000, 8), np.float32), idx, 1000)
