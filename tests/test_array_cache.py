"""The cache behind the kernels' large results (ops.array_cache_info and friends).

A result of at least min_bytes takes a block that an earlier result gave back when it
was freed. So every kernel must write every element of its results over memory that
holds anything: the poisoned-memory test runs each kernel case twice, sets every byte of
the first results' blocks to 0xFF before they are freed, and wants the same bits the
second time.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kernel_cases
from conftest import SANITIZED
from dlcore import Tensor, _core, layers, ops

MIN_BYTES = 1 << 17


@pytest.fixture
def cache():
    """The cache turned on (a sanitizer build or DLCORE_ARRAY_CACHE_MB=0 starts it off),
    and left as it was found, holding nothing."""
    before = ops.array_cache_info()
    if before["limit_bytes"] == 0:
        ops.configure_array_cache(limit=256 << 20)
    yield
    ops.configure_array_cache(limit=before["limit_bytes"], min_bytes=before["min_bytes"])
    ops.array_cache_release()


def from_cache(a):
    return isinstance(a, np.ndarray) and isinstance(a.base, _core._ArrayBlock)


def big_input():
    return np.random.default_rng(0).standard_normal((8, 32, 32, 16)).astype(np.float32)


def test_info_reports_the_defaults():
    info = ops.array_cache_info()
    assert set(info) == {"cached_bytes", "cached_blocks", "in_use_bytes", "limit_bytes",
                         "min_bytes", "hits", "misses"}  # fmt: skip
    assert info["min_bytes"] == MIN_BYTES
    if SANITIZED:  # off, so that a use after free is still reported
        assert info["limit_bytes"] == 0
    elif "DLCORE_ARRAY_CACHE_MB" not in os.environ:
        assert 64 << 20 <= info["limit_bytes"] <= 1 << 30


def test_a_freed_result_is_reused_by_the_next_call(cache):
    ops.array_cache_release()
    x = big_input()
    y = ops.activation_forward(x, "elu")
    assert from_cache(y) and y.flags.writeable and y.flags.c_contiguous
    address, hits = y.ctypes.data, ops.array_cache_info()["hits"]
    assert ops.array_cache_info()["in_use_bytes"] >= y.nbytes
    del y
    assert ops.array_cache_info()["cached_bytes"] >= x.nbytes
    y = ops.activation_forward(x, "elu")
    assert y.ctypes.data == address
    assert ops.array_cache_info()["hits"] == hits + 1
    np.testing.assert_allclose(
        y, np.where(x > 0, x, np.expm1(np.minimum(x, 0))), rtol=1e-6, atol=1e-7
    )


def test_small_results_are_numpys_own(cache):
    y = ops.activation_forward(np.ones(1000, np.float32), "elu")
    assert y.base is None and y.flags.owndata


def test_a_shorter_batch_reuses_a_longer_ones_block_at_most_twice_its_size(cache):
    ops.array_cache_release()
    x = big_input()
    y = ops.activation_forward(x, "elu")
    address = y.ctypes.data
    del y
    y = ops.activation_forward(x[:5], "elu")  # 5/8 of the block: reused
    assert y.ctypes.data == address
    np.testing.assert_array_equal(y, ops.activation_forward(x, "elu")[:5])
    del y
    y = ops.activation_forward(x[:3], "elu")  # 3/8: a block of its own
    assert y.ctypes.data != address


def test_the_limit_drops_the_least_recently_freed_blocks(cache):
    ops.array_cache_release()
    x = big_input()
    nbytes = x.nbytes
    ops.configure_array_cache(limit=2 * nbytes)
    first, second, third = (ops.activation_forward(x, "elu") for _ in range(3))
    addresses = [y.ctypes.data for y in (first, second, third)]
    del first, second, third  # freed in this order
    info = ops.array_cache_info()
    assert info["cached_blocks"] == 2 and info["cached_bytes"] == 2 * nbytes
    # the first freed was dropped; the next two requests get the two kept blocks
    again = [ops.activation_forward(x, "elu") for _ in range(2)]
    assert {y.ctypes.data for y in again} == set(addresses[1:])
    del again
    assert ops.array_cache_release() == 2 * nbytes
    assert ops.array_cache_info()["cached_bytes"] == 0


def test_limit_zero_turns_the_cache_off(cache):
    ops.configure_array_cache(limit=0)
    y = ops.activation_forward(big_input(), "elu")
    assert y.base is None and y.flags.owndata
    assert ops.array_cache_info()["cached_bytes"] == 0


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(limit=-1), ValueError, "limit is -1"),
        (dict(min_bytes=-5), ValueError, "min_bytes is -5"),
        (dict(limit="1GB"), TypeError, "incompatible function arguments"),
        (dict(min_bytes=1.5), TypeError, "incompatible function arguments"),
    ],
)
def test_bad_settings_are_refused(cache, kwargs, error, words):
    before = ops.array_cache_info()
    with pytest.raises(error, match=words):
        ops.configure_array_cache(**kwargs)
    after = ops.array_cache_info()
    assert (after["limit_bytes"], after["min_bytes"]) == (
        before["limit_bytes"],
        before["min_bytes"],
    )


def poison(results):
    """Every byte of the results' cached blocks set to 0xFF: NaN in a float, -1 in an
    integer (views, such as a recurrent kernel's gradient blocks, reach theirs too)."""
    blocks = {id(a.base): a.base for a in results if isinstance(a, np.ndarray)
              for a in (a, a.base) if from_cache(a)}  # fmt: skip
    for block in blocks.values():
        np.frombuffer(block, np.uint8).fill(0xFF)
    return len(blocks)


@pytest.mark.parametrize("name", kernel_cases.CASES)
def test_every_kernel_writes_its_whole_result_over_poisoned_memory(cache, name, threads):
    ops.set_num_threads(2)
    ops.configure_array_cache(min_bytes=1)  # every result from the cache
    ops.array_cache_release()
    inputs = kernel_cases.make_inputs(name, np.random.default_rng(0))
    first = kernel_cases.run(name, inputs)
    want = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in first]
    poisoned = poison(first)
    del first
    hits = ops.array_cache_info()["hits"]
    got = kernel_cases.run(name, inputs)
    if poisoned:
        assert ops.array_cache_info()["hits"] > hits, "the second call took no freed block"
    for i, (g, w) in enumerate(zip(got, want)):
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and np.array_equal(g, w, equal_nan=True), (
                f"{name}: output {i} differs over reused memory"
            )


def test_a_result_can_be_made_read_only_and_writeable_again(cache):
    y = ops.activation_forward(big_input(), "elu")
    assert from_cache(y)
    y.flags.writeable = False
    with pytest.raises(ValueError):
        y[0, 0, 0, 0] = 1
    y.flags.writeable = True
    y[0, 0, 0, 0] = 1
    assert y[0, 0, 0, 0] == 1


def test_a_view_keeps_the_block_lent(cache):
    ops.array_cache_release()
    y = ops.activation_forward(big_input(), "elu")
    view, want = y[1:3], y[1:3].copy()
    del y
    assert ops.array_cache_info()["cached_bytes"] == 0
    ops.activation_forward(big_input(), "elu")  # would take the block were it free
    np.testing.assert_array_equal(view, want)


def test_large_zeroed_results_are_zero_over_poisoned_memory(cache, threads):
    """gemm_backward accumulates into zeroed gradients; 8 MiB ones are zeroed by both
    threads over blocks left full of NaN."""
    ops.set_num_threads(2)
    ops.array_cache_release()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1024, 1024)), rng.standard_normal((1024, 64))
    dc = rng.standard_normal((1024, 64))
    for _ in range(2):
        junk = [ops.gemm(a, a) for _ in range(3)]  # 8 MiB float64 blocks, as da's
        poison(junk)
        del junk
        da, db = ops.gemm_backward(dc, a, b)
        np.testing.assert_allclose(da, dc @ b.T, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(db, a.T @ dc, rtol=1e-10, atol=1e-10)
    assert ops.array_cache_info()["hits"] > 0


def test_a_leaf_takes_a_cached_gradient_without_copying(cache):
    x = Tensor(big_input(), requires_grad=True)
    layer = layers.BatchNormalization()
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    layer(x, training=True).backward(dy)
    assert from_cache(x.grad)


def test_environment_sets_the_limit_and_arrays_outlive_the_interpreter():
    code = textwrap.dedent(
        """
        import numpy as np
        from dlcore import ops
        print(ops.array_cache_info()["limit_bytes"])
        ops.configure_array_cache(limit=64 << 20)  # on even where it starts off
        kept = ops.activation_forward(np.ones((256, 1024), np.float32), "elu")
        keep = [ops.activation_forward(np.ones((256, 1024), np.float32), "elu"), kept[1:]]
        del kept
        """
    )

    def limit_with(value):
        env = dict(os.environ)
        env.pop("DLCORE_ARRAY_CACHE_MB", None)
        if value is not None:
            env["DLCORE_ARRAY_CACHE_MB"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    default = limit_with(None)
    for value, want in (("0", 0), ("3", 3 << 20), ("-1", default), ("1GB", default)):
        got = limit_with(value)
        if not SANITIZED:
            assert got == want, f"DLCORE_ARRAY_CACHE_MB={value}"
