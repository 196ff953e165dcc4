"""Property-based fuzzing of every function in dlcore.ops and of the main layers.

The contract under test: a call returns the right result (checked against the NumPy
references in tests/reference) or raises ValueError, TypeError or MemoryError with a
message; never a crash, a hang, or a wrong shape. OverflowError is accepted only where
Python itself raises it converting an out-of-range int (pybind11 turns those into
TypeError, so in practice none is seen).

Each generator draws a case and says whether the inputs are valid (the call must succeed
and match the reference), invalid (it must raise) or either (absurd sizes, where running
out of memory is a fair answer). Cases run in this process when their inputs are safe,
and in batches in a child process (tests/_fuzz_worker.py) when they are crash-prone:
unaligned and byte-swapped arrays, absurd sizes and paddings, huge thread counts. A
crash there fails the test naming the case that was running.

Runs reproducibly: derandomized, no example database. `CASES` counts the examples; the
session prints the total at the end (see the fixture at the bottom).
"""

import math
import os
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from _fuzz_worker import ArraySpec, make_array, run_case
from conftest import SANITIZED
from dlcore import functional as F
from reference import activation as ref_activation
from reference import conv as ref_conv
from reference import embedding as ref_embedding
from reference import gemm as ref_gemm
from reference import gru as ref_gru
from reference import lstm as ref_lstm
from reference import norm as ref_norm
from reference import pool as ref_pool
from reference import simple_rnn as ref_simple_rnn
from reference import softmax as ref_softmax

CASES = Counter()

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NATIVE_DTYPES = [
    "float32",
    "float64",
    "float16",
    "int8",
    "int32",
    "int64",
    "uint8",
    "uint32",
    "bool",
]
SWAPPED_DTYPES = [">f4", ">f8", ">i4"]
BAD_DTYPES = ["complex64", "complex128", "O", "U3", "longdouble"]
SAFE_LAYOUTS = ["C", "C", "F", "strided", "reversed", "readonly", "broadcast"]
ALL_LAYOUTS = SAFE_LAYOUTS + ["unaligned", "unaligned"]
ALLOWED_ERRORS = ("ValueError", "TypeError", "MemoryError", "OverflowError")
HUGE = [2**31, 2**32 + 1, 2**62, 2**63 - 1, 2**63, 2**64, -(2**63)]

VALID, INVALID, EITHER = "valid", "invalid", "either"
ABSURD = "absurd"  # either, and a result is checked for its shapes only


# ---------------------------------------------------------------- arrays and checks


@st.composite
def arrays(draw, shape, crash_prone=False, dtypes=None, special=True):
    """An ArraySpec of `shape`: a native numeric dtype (or, when crash_prone, a
    byte-swapped one too), any layout, sometimes NaN / inf / 1e30 values."""
    dtypes = dtypes or NATIVE_DTYPES + (SWAPPED_DTYPES if crash_prone else [])
    layouts = ALL_LAYOUTS if crash_prone else SAFE_LAYOUTS
    specials = ["", "", "", "", "nan", "inf", "big"] if special else [""]
    return ArraySpec(
        tuple(shape),
        draw(st.sampled_from(dtypes)),
        draw(st.sampled_from(layouts)),
        draw(st.integers(0, 2**16)),
        draw(st.sampled_from(specials)),
    )


def compute_dtype(*specs):
    """The dtype the kernels compute in: float64 when NumPy would promote to it."""
    for s in specs:
        if s is None:
            continue
        dt = np.dtype(s.dtype)
        if (dt.kind == "f" and dt.itemsize == 8) or (dt.kind in "iu" and dt.itemsize >= 4):
            return np.dtype(np.float64)
    return np.dtype(np.float32)


def is_finite_case(*specs):
    return all(s is None or not s.special for s in specs)


def value(spec):
    return None if spec is None else make_array(spec)


def assert_close(got, want, dtype, scale=1.0):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == dtype, (got.dtype, dtype)
    tol = (
        dict(rtol=2e-4, atol=2e-4 * scale)
        if dtype == np.float32
        else dict(rtol=1e-9, atol=1e-9 * scale)
    )
    np.testing.assert_allclose(got, want, **tol)


def assert_shapes(got, want, dtype):
    """For NaN / inf inputs: the right shape and dtype, any values."""
    assert got.shape == want.shape and got.dtype == dtype, (got.shape, got.dtype, want.shape)


def check_outcome(case, expect, outcome):
    """The contract: a valid case succeeds with the result its checker expects; an
    invalid one raises an allowed error with a message; an `either` case may do both."""
    CASES[case[0]] += 1
    if outcome[0] == "raised":
        _, kind, message = outcome
        assert kind in ALLOWED_ERRORS, f"{case}: raised {kind}: {message}"
        assert message.strip(), f"{case}: {kind} with an empty message"
        assert expect != VALID, f"{case}: valid input raised {kind}: {message}"
        return
    assert expect != INVALID, f"{case}: invalid input returned {outcome[1]!r:.300}"
    if expect == ABSURD:
        check_absurd(case, outcome[1])
        return
    with np.errstate(all="ignore"):  # the references overflow where the inputs are inf
        checker(case)(outcome[1])


def run_in_child(cases, address_space=4 << 30, timeout=120):
    """Runs cases in a child process; a crash or a hang fails naming the running case.
    Under the sanitizers the address space cannot be capped (see conftest.SANITIZED);
    their allocator refuses single allocations beyond the same size instead."""
    env = None
    if SANITIZED:
        options = os.environ.get("ASAN_OPTIONS", "")
        if address_space:
            options += f":allocator_may_return_null=1:max_allocation_size_mb={address_space >> 20}"
        env = dict(os.environ, ASAN_OPTIONS=options)
        address_space, timeout = 0, 10 * timeout
    worker = os.path.join(os.path.dirname(__file__), "_fuzz_worker.py")
    proc = subprocess.run(
        [sys.executable, worker, str(address_space)],
        env=env,
        input=pickle.dumps(cases),
        capture_output=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").splitlines()
        started = [ln for ln in lines if ln.startswith("case ")]
        running = cases[int(started[-1].split()[1])] if started else None
        pytest.fail(
            f"child process died (exit code {proc.returncode}) running {running!r}:\n"
            + "\n".join(lines[-15:])
        )
    return pickle.loads(proc.stdout)


# ---------------------------------------------------------------- gemm


@st.composite
def gemm_cases(draw, crash_prone=False):
    M, K, N = (draw(st.integers(0, 5)) for _ in range(3))
    if draw(st.integers(0, 9)) == 0:  # a narrow product, split by blocks of its long side
        lo, K = draw(st.integers(8, 40)), draw(st.integers(100, 300))
        hi = max(4 * lo, -(-(1 << 22) // (lo * K))) + draw(st.integers(0, 40))
        M, N = (lo, hi) if draw(st.booleans()) else (hi, lo)
    elif draw(st.integers(0, 8)) == 0:  # a row vector's product, split by vectors of columns
        M, K, N = 1, draw(st.integers(200, 400)), draw(st.integers(330, 600))
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a_shape, b_shape = ((K, M) if ta else (M, K)), ((N, K) if tb else (K, N))
    expect = VALID
    fault = draw(st.sampled_from(["none"] * 5 + ["mismatch", "rank", "dtype", "none_arg"]))
    if fault == "mismatch":
        b_shape = (b_shape[0] + 1, b_shape[1]) if not tb else (b_shape[0], b_shape[1] + 1)
        expect = INVALID
    elif fault == "rank":
        a_shape = (*a_shape, 1)
        expect = INVALID
    a = draw(arrays(a_shape, crash_prone))
    b = draw(arrays(b_shape, crash_prone))
    if fault == "dtype":
        a = a._replace(dtype=draw(st.sampled_from(BAD_DTYPES)))
        expect = INVALID
    if fault == "none_arg":
        a, expect = None, INVALID
    flags = dict(trans_a=ta, trans_b=tb)
    if draw(st.booleans()):
        return ("gemm", (a, b), flags), expect
    dc = draw(arrays((M, N), crash_prone))
    flags.update(need_da=draw(st.booleans()), need_db=draw(st.booleans()))
    return ("gemm_backward", (dc, a, b), flags), expect


def check_gemm(case):
    name, args, kw = case
    a, b = args[-2:]
    dtype = compute_dtype(*args)
    finite = is_finite_case(*args)
    A, B = make_array(a), make_array(b)
    K = A.shape[0] if kw["trans_a"] else A.shape[1]

    def check(result):
        if name == "gemm":
            want = ref_gemm.gemm(A, B, kw["trans_a"], kw["trans_b"])
            (assert_close if finite else assert_shapes)(result, want, dtype, *[K + 1] * finite)
            return
        dC = make_array(args[0]).astype(np.float64)
        opA = A.T if kw["trans_a"] else A
        opB = B.T if kw["trans_b"] else B
        da = dC @ opB.astype(np.float64).T
        db = opA.astype(np.float64).T @ dC
        da, db = (da.T if kw["trans_a"] else da), (db.T if kw["trans_b"] else db)
        for got, want, need in zip(result, (da, db), (kw["need_da"], kw["need_db"])):
            if not need:
                assert got is None
            else:
                (assert_close if finite else assert_shapes)(got, want, dtype, *[10] * finite)

    return check


# ---------------------------------------------------------------- conv2d


@st.composite
def padding_args(draw, low=0, high=2):
    p = st.integers(low, high)
    return draw(st.one_of(p, st.tuples(p, p), st.tuples(st.tuples(p, p), st.tuples(p, p))))


def padding_pairs(padding):
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        return ((padding[0],) * 2, (padding[1],) * 2)
    return tuple(tuple(p) for p in padding)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def window_fits(hw, kernel_hw, padding, dilation):
    return all(
        d * (k - 1) + 1 <= n + lo + hi
        for n, k, (lo, hi), d in zip(hw, kernel_hw, padding_pairs(padding), pair(dilation))
    )


BAD_WINDOW_VALUES = [0, -1, -(2**63), 1.5, "2", None, (1,), (1, 2, 3), ((1, 1), 1)]


@st.composite
def conv_cases(draw, crash_prone=False, depthwise=False):
    """conv2d's cases, or with ``depthwise`` depthwise_conv2d's: the same kernel shape
    (KH, KW, C, M) read as M filters of each input channel, y of C*M channels."""
    N, H, W, C = (
        draw(st.integers(0, 2)),
        draw(st.integers(1, 6)),
        draw(st.integers(1, 6)),
        draw(st.integers(0, 3)),
    )
    KH, KW, M = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 3))
    OC = C * M if depthwise else M
    kw = dict(
        strides=draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))),
        padding=draw(padding_args()),
        dilation=draw(
            st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2)))
        ),
    )
    fits = window_fits((H, W), (KH, KW), kw["padding"], kw["dilation"])
    expect = VALID if fits else INVALID
    k_shape = (KH, KW, C, M)
    fault = draw(
        st.sampled_from(
            ["none"] * 6
            + ["channels", "window", "dtype", "none_arg"]
            + ["huge"] * (3 if crash_prone else 0)
        )
    )
    if fault == "channels":
        k_shape, expect = (KH, KW, C + 1, M), INVALID
    elif fault == "window":
        arg = draw(st.sampled_from(["strides", "padding", "dilation"]))
        bad = draw(st.sampled_from(BAD_WINDOW_VALUES))
        if arg == "padding" and bad == 0:
            bad = -1
        kw[arg], expect = bad, INVALID
    elif fault == "huge":
        arg = draw(st.sampled_from(["strides", "padding", "dilation"]))
        kw[arg] = draw(st.sampled_from(HUGE + [(1, 2**62), ((0, 2**62), (2**62, 0))]))
        expect = EITHER
    x = draw(arrays((N, H, W, C), crash_prone))
    kernel = draw(arrays(k_shape, crash_prone))
    if fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    if fault == "none_arg":
        kernel, expect = None, INVALID
    if depthwise and M == 0:  # a depth multiplier of 0 is refused (Keras' is >= 1)
        expect = INVALID
    op = "depthwise_conv2d" if depthwise else "conv2d"
    which = draw(st.sampled_from(["forward", "backward"] + ([] if depthwise else ["plan"])))
    if which == "plan":  # shapes only: a bad dtype or a None array does not concern it
        plan_expect = (VALID if fits else INVALID) if fault in ("dtype", "none_arg") else expect
        return ("conv2d_plan", ((N, H, W, C), k_shape), kw), plan_expect
    if which == "forward":
        bias = draw(st.one_of(st.none(), arrays((OC,), crash_prone)))
        if not depthwise and draw(st.booleans()):
            kw["activation"] = "relu"  # applied by the kernel
        return (f"{op}_forward", (x, kernel, bias), kw), expect
    OH, OW = (
        max(0, (n + lo + hi - d * (k - 1) - 1) // s + 1)
        for n, k, (lo, hi), d, s in zip(
            (H, W),
            (KH, KW),
            padding_pairs_or_zero(kw),
            pair_or_one(kw["dilation"]),
            pair_or_one(kw["strides"]),
        )
    )
    dy = draw(arrays((N, min(OH, 8), min(OW, 8), OC), crash_prone))
    if expect == VALID and (OH > 8 or OW > 8):  # the capped dy is not y's shape
        expect = INVALID
    need = {k: draw(st.booleans()) for k in ("need_dx", "need_dkernel", "need_dbias")}
    return (f"{op}_backward", (dy, x, kernel), {**kw, **need}), expect


@st.composite
def depthwise_conv_cases(draw, crash_prone=False):
    return draw(conv_cases(crash_prone, depthwise=True))


def padding_pairs_or_zero(kw):
    try:
        pads = padding_pairs(kw["padding"])
    except (TypeError, ValueError, IndexError):
        return ((0, 0), (0, 0))
    # a bad padding such as "2" reads as (("2",),): not two pairs either
    return pads if len(pads) == 2 and all(len(p) == 2 for p in pads) else ((0, 0), (0, 0))


def pair_or_one(v):
    if isinstance(v, int) and v >= 1:
        return (v, v)
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(i, int) and i >= 1 for i in v):
        return v
    return (1, 1)


def check_conv(case):
    name, args, kw = case
    plan_names = {"pointwise", "direct", "pixel_tiles", "winograd", "row_views"}
    if name == "conv2d_plan":

        def check_plan(result):
            assert set(result) == {"forward", "input_grad", "weight_grads"}, result
            assert set(result.values()) <= plan_names, result

        return check_plan
    geometry = dict(
        strides=pair(kw["strides"]),
        padding=padding_pairs(kw["padding"]),
        dilation=pair(kw["dilation"]),
    )

    if name.startswith("depthwise"):
        references = ref_conv.depthwise_conv2d, ref_conv.depthwise_conv2d_grads
    elif kw.get("activation") == "relu":

        def conv2d_relu(*a, **k):
            return np.maximum(ref_conv.conv2d(*a, **k), 0)

        references = conv2d_relu, ref_conv.conv2d_grads
    else:
        references = ref_conv.conv2d, ref_conv.conv2d_grads
    return conv_reference_check(name.endswith("_forward"), *references, args, kw, geometry)


def conv_reference_check(is_forward, reference, reference_grads, args, kw, geometry):
    """Checks a convolution's forward (x, kernel, bias) or backward (dy, x, kernel)
    result against the NumPy reference, gradients only where requested."""
    dtype = compute_dtype(*args)
    finite = is_finite_case(*args)

    def check(result):
        compare = assert_close if finite else assert_shapes
        if is_forward:
            x, kernel, bias = (value(a) for a in args)
            compare(result, reference(x, kernel, bias, **geometry), dtype, *[50] * finite)
            return
        dy, x, kernel = (value(a) for a in args)
        wants = reference_grads(dy, x, kernel, **geometry)
        for got, want, need in zip(result, wants, ("need_dx", "need_dkernel", "need_dbias")):
            if not kw[need]:
                assert got is None
            else:
                compare(got, want, dtype, *[100] * finite)

    return check


# ---------------------------------------------------------------- max-pool


@st.composite
def pool_cases(draw, crash_prone=False):
    N, H, W, C = (
        draw(st.integers(0, 2)),
        draw(st.integers(1, 6)),
        draw(st.integers(1, 6)),
        draw(st.integers(0, 3)),
    )
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    strides = draw(
        st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3)))
    )
    padding = (
        (draw(st.integers(0, ph - 1)), draw(st.integers(0, ph - 1))),
        (draw(st.integers(0, pw - 1)), draw(st.integers(0, pw - 1))),
    )
    kw = dict(pool_size=(ph, pw), strides=strides, padding=padding)
    expect = VALID if window_fits((H, W), (ph, pw), padding, 1) else INVALID
    fault = draw(
        st.sampled_from(
            ["none"] * 6 + ["window", "dtype", "big_padding"] + ["huge"] * (3 if crash_prone else 0)
        )
    )
    if fault == "window":
        arg = draw(st.sampled_from(["pool_size", "strides", "padding"]))
        bad = draw(st.sampled_from(BAD_WINDOW_VALUES))
        if (arg == "padding" and bad == 0) or (arg == "strides" and bad is None):
            bad = -1  # padding 0 and strides None are valid for a pool
        kw[arg], expect = bad, INVALID
    elif fault == "big_padding":
        kw["padding"], expect = (ph, 0), INVALID
    elif fault == "huge":
        arg = draw(st.sampled_from(["pool_size", "strides", "padding"]))
        kw[arg], expect = draw(st.sampled_from(HUGE + [(1, 2**62)])), EITHER
    x = draw(arrays((N, H, W, C), crash_prone))
    if fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    return ("maxpool2d_round_trip", (x,), kw), expect


def check_pool(case):
    _, (x_spec,), kw = case
    x = make_array(x_spec)
    ph, pw = kw["pool_size"]
    strides = kw["strides"] or (ph, pw)
    y_ref, argmax_ref = ref_pool.maxpool2d(
        x.astype(compute_dtype(x_spec)), (ph, pw), pair(strides), kw["padding"]
    )

    def check(result):
        y, argmax, dx, y_inference = result
        np.testing.assert_array_equal(y, y_ref)  # a max is exact, NaN included
        np.testing.assert_array_equal(y_inference, y_ref)
        assert y.dtype == y_ref.dtype
        np.testing.assert_array_equal(argmax, argmax_ref)
        np.testing.assert_allclose(
            dx, ref_pool.maxpool2d_backward(y_ref, argmax_ref, x.shape), rtol=1e-6
        )

    return check


@st.composite
def pool_backward_cases(draw, crash_prone=False):
    """maxpool2d_backward on its own, with argmax and x_shape as a caller may get them
    wrong; whether argmax is valid is decided by the check."""
    N, H, W, C = (draw(st.integers(0, 3)) for _ in range(4))
    OH, OW = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    low, high = draw(st.sampled_from([(0, 1), (-3, N * H * W * C + 3)]))
    argmax = ArraySpec((N, OH, OW, C), "int64", "C", draw(st.integers(0, 2**16)), "", low, high)
    x_shape, expect = (N, H, W, C), EITHER
    if crash_prone and draw(st.booleans()):
        x_shape = (N, draw(st.sampled_from(HUGE)), W, C)
    dy = draw(arrays((N, OH, OW, C), crash_prone))
    if draw(st.integers(0, 5)) == 0:
        dy, expect = dy._replace(shape=(N, OH, OW, C + 1)), INVALID
    return ("maxpool2d_backward", (dy, argmax, x_shape), {}), expect


def check_pool_backward(case):
    _, (dy_spec, argmax_spec, x_shape), _ = case
    dy, argmax = make_array(dy_spec), make_array(argmax_spec)

    def check(result):
        # The forward's argmax indexes x as a whole, each entry inside its own sample.
        per_sample = math.prod(x_shape[1:])
        sample = np.arange(argmax.shape[0]).reshape(-1, 1, 1, 1)
        inside = (argmax >= sample * per_sample) & (argmax < (sample + 1) * per_sample)
        assert inside.all(), f"{case}: argmax outside its sample was accepted"
        want = ref_pool.maxpool2d_backward(dy, argmax, x_shape)
        assert_close(result, want, compute_dtype(dy_spec), 10)

    return check


# ---------------------------------------------------------------- conv2d_transpose


@st.composite
def conv_transpose_cases(draw, crash_prone=False):
    N, H, W, C = (draw(st.integers(0, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 4)),
                  draw(st.integers(0, 3)))  # fmt: skip
    KH, KW, OC = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 3))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(padding_args())
    output_padding = (draw(st.integers(0, strides[0] - 1)), draw(st.integers(0, strides[1] - 1)))
    kw = dict(strides=strides, padding=padding, output_padding=output_padding, dilation=dilation)
    sizes = transposed_sizes((H, W), (KH, KW), kw)
    expect = VALID if min(sizes) >= 1 else INVALID
    k_shape = (KH, KW, OC, C)
    fault = draw(
        st.sampled_from(
            ["none"] * 6
            + ["channels", "window", "output_padding", "dtype", "none_arg"]
            + ["huge"] * (3 if crash_prone else 0)
        )
    )
    if fault == "channels":
        k_shape, expect = (KH, KW, OC, C + 1), INVALID
    elif fault == "window":
        arg = draw(st.sampled_from(["strides", "padding", "dilation"]))
        bad = draw(st.sampled_from(BAD_WINDOW_VALUES))
        kw[arg], expect = (-1 if arg == "padding" and bad == 0 else bad), INVALID
    elif fault == "output_padding":
        kw["output_padding"], expect = draw(st.sampled_from([strides, -1, 1.5, (1, 2, 3)])), INVALID
    elif fault == "huge":
        arg = draw(st.sampled_from(["strides", "padding", "dilation", "output_padding"]))
        kw[arg] = draw(st.sampled_from(HUGE + [(1, 2**62), ((0, 2**62), (2**62, 0))]))
        expect = EITHER
    x = draw(arrays((N, H, W, C), crash_prone))
    kernel = draw(arrays(k_shape, crash_prone))
    if fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    if fault == "none_arg":
        kernel, expect = None, INVALID
    if draw(st.booleans()):
        bias = draw(st.one_of(st.none(), arrays((OC,), crash_prone)))
        return ("conv2d_transpose_forward", (x, kernel, bias), kw), expect
    # well-formed sizes stay below 20; the cap only bounds the faulty cases' dy
    dy_shape = (N, *(min(max(n, 0), 64) for n in sizes), OC)
    if draw(st.integers(0, 5)) == 0:
        dy_shape, expect = (N, dy_shape[1] + 1, dy_shape[2], OC), INVALID
    dy = draw(arrays(dy_shape, crash_prone))
    need = {k: draw(st.booleans()) for k in ("need_dx", "need_dkernel", "need_dbias")}
    return ("conv2d_transpose_backward", (dy, x, kernel), {**kw, **need}), expect


def transposed_sizes(hw, kernel_hw, kw):
    """(OH, OW) of a transposed convolution with well-formed arguments (else (0, 0))."""
    try:
        pads = padding_pairs(kw["padding"])
        return tuple(
            (n - 1) * s + d * (k - 1) + 1 - lo - hi + op
            for n, k, s, d, (lo, hi), op in zip(hw, kernel_hw, kw["strides"], kw["dilation"], pads,
                                                 kw["output_padding"])
        )  # fmt: skip
    except (TypeError, ValueError, IndexError):
        return (0, 0)


def check_conv_transpose(case):
    name, args, kw = case
    geometry = dict(
        strides=kw["strides"],
        padding=padding_pairs(kw["padding"]),
        output_padding=kw["output_padding"],
        dilation=kw["dilation"],
    )

    return conv_reference_check(name == "conv2d_transpose_forward", ref_conv.conv2d_transpose,
                                ref_conv.conv2d_transpose_grads, args, kw, geometry)  # fmt: skip


# ---------------------------------------------------------------- average pools


@st.composite
def avgpool_cases(draw, crash_prone=False):
    """avgpool2d_round_trip (forward, then backward from a dy of y's shape) with the
    windows and faults of the max-pool's cases."""
    (_, (x,), kw), expect = draw(pool_cases(crash_prone))
    OH, OW = pool_sizes(x.shape[1:3], kw)
    dy = draw(arrays((x.shape[0], OH, OW, x.shape[3]), crash_prone))
    return ("avgpool2d_round_trip", (x, dy), kw), expect


def pool_sizes(hw, kw):
    """(OH, OW) of a pooling with well-formed arguments (else (1, 1))."""
    try:
        size = pair(kw["pool_size"])
        strides = pair(kw["strides"] or size)
        pads = padding_pairs(kw["padding"])
        sizes = tuple(min(max((n + lo + hi - p) // s + 1, 0), 8)
                      for n, p, s, (lo, hi) in zip(hw, size, strides, pads))  # fmt: skip
    except (TypeError, ValueError, IndexError, ZeroDivisionError):
        return (1, 1)
    return sizes if len(sizes) == 2 else (1, 1)


def check_avgpool(case):
    _, (x_spec, dy_spec), kw = case
    x, dy = make_array(x_spec), make_array(dy_spec)
    size = pair(kw["pool_size"])
    window = (size, pair(kw["strides"] or size), padding_pairs(kw["padding"]))
    dtype = compute_dtype(x_spec)

    def check(result):
        y, dx = result
        compare = assert_close if is_finite_case(x_spec) else assert_shapes
        compare(y, ref_pool.avgpool2d(x, *window), dtype)
        compare = assert_close if is_finite_case(dy_spec) else assert_shapes
        compare(dx, ref_pool.avgpool2d_backward(dy, x.shape, *window), compute_dtype(dy_spec))

    return check


@st.composite
def avgpool_backward_cases(draw, crash_prone=False):
    """avgpool2d_backward on its own, with x_shape and dy as a caller may get them wrong."""
    N, H, W, C = (draw(st.integers(0, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)),
                  draw(st.integers(0, 3)))  # fmt: skip
    window = dict(pool_size=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                  strides=draw(st.one_of(st.none(), st.integers(1, 3))), padding=0)  # fmt: skip
    x_shape = (N, H, W, C)
    OH, OW = pool_sizes((H, W), window)
    expect = (
        VALID
        if min(OH, OW) >= 1 and all(p <= n for p, n in zip(window["pool_size"], (H, W)))
        else INVALID
    )
    dy_shape = (N, max(OH, 0), max(OW, 0), C)
    fault = draw(st.sampled_from(["none"] * 3 + ["dy", "x_shape", "huge"]))
    if fault == "dy":
        dy_shape, expect = (N, dy_shape[1] + 1, dy_shape[2], C), INVALID
    elif fault == "x_shape":
        x_shape, expect = (
            draw(st.sampled_from([(N, H, W), (N, -H, W, C), (N, H, W, C, 1), 7])),
            INVALID,
        )
    elif fault == "huge" and crash_prone:
        x_shape, expect = (N, draw(st.sampled_from(HUGE)), W, C), EITHER
    dy = draw(arrays(dy_shape, crash_prone))
    return ("avgpool2d_backward", (dy, x_shape), window), expect


def check_avgpool_backward(case):
    _, (dy_spec, x_shape), kw = case
    dy = make_array(dy_spec)
    size = pair(kw["pool_size"])

    def check(result):
        want = ref_pool.avgpool2d_backward(dy, x_shape, size, pair(kw["strides"] or size))
        (assert_close if is_finite_case(dy_spec) else assert_shapes)(
            result, want, compute_dtype(dy_spec)
        )

    return check


@st.composite
def global_avgpool_cases(draw, crash_prone=False):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=3, max_size=4)))
    expect = VALID
    mask = None
    if draw(st.booleans()):
        layouts = ALL_LAYOUTS if crash_prone else SAFE_LAYOUTS
        mask = ArraySpec(shape[:-1], "bool", draw(st.sampled_from(layouts)), draw(st.integers(0, 2**16)),
                         "", -1.0, 1.0)  # fmt: skip
    fault = draw(st.sampled_from(["none"] * 5 + ["rank", "mask_shape", "mask_dtype", "dtype"]))
    x = draw(arrays(shape, crash_prone))
    dy = draw(arrays((shape[0], shape[-1]), crash_prone))
    if fault == "rank":
        x, expect = x._replace(shape=shape[:2] if len(shape) == 3 else (*shape, 1)), INVALID
    elif fault == "mask_shape":
        mask, expect = ArraySpec((*shape[:-1], 2), "bool"), INVALID
    elif fault == "mask_dtype":
        mask, expect = (
            ArraySpec(shape[:-1], draw(st.sampled_from(["int8", "float32", "uint8"]))),
            INVALID,
        )
    elif fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    return ("global_avgpool_round_trip", (x, dy), {"mask": mask}), expect


def check_global_avgpool(case):
    _, (x_spec, dy_spec), kw = case
    x, dy = make_array(x_spec), make_array(dy_spec)
    mask = value(kw["mask"])

    def check(result):
        y, dx = result
        with np.errstate(invalid="ignore", divide="ignore"):
            want = ref_pool.global_avgpool(x, mask)
        # a sample that keeps no position is NaN on both sides; compare the others
        assert y.shape == want.shape and y.dtype == compute_dtype(x_spec)
        if is_finite_case(x_spec):
            np.testing.assert_allclose(y, want, **TOLERANCES[y.dtype.type])
        want_dx = ref_pool.global_avgpool_backward(dy, x.shape, mask)
        (assert_close if is_finite_case(dy_spec) else assert_shapes)(
            dx, want_dx, compute_dtype(dy_spec)
        )

    return check


TOLERANCES = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-9, atol=1e-9)}


# ---------------------------------------------------------------- LSTM


@st.composite
def lstm_cases(draw, crash_prone=False):
    cell = draw(st.booleans())
    N, T, I, U = (
        draw(st.integers(0, 3)),
        draw(st.integers(1, 3)),
        draw(st.integers(0, 3)),
        draw(st.integers(0, 3)),
    )
    x_shape = (N, I) if cell else (N, T, I)
    shapes = dict(kernel=(I, 4 * U), recurrent_kernel=(U, 4 * U), bias=(4 * U,))
    expect = VALID
    fault = draw(
        st.sampled_from(
            ["none"] * 6
            + ["T0", "kernel", "recurrent_kernel", "bias", "state", "dtype", "grad", "mask"]
        )
    )
    if fault == "mask" and cell:
        fault = "none"
    if fault == "T0" and not cell:
        x_shape, expect = (N, 0, I), INVALID
    elif fault in shapes:
        shapes[fault] = (*shapes[fault][:-1], shapes[fault][-1] + 1)
        expect = INVALID
    h0 = draw(st.one_of(st.none(), arrays((N, U), crash_prone)))
    c0 = draw(st.one_of(st.none(), arrays((N, U), crash_prone)))
    if fault == "state":
        h0, expect = draw(arrays((N + 1, U), crash_prone)), INVALID
    x = draw(arrays(x_shape, crash_prone))
    if fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    weights = [draw(arrays(shapes[k], crash_prone)) for k in shapes]
    grad_shapes = [(N, U)] * 2 if cell else [(N, T, U), (N, U), (N, U)]
    grads = tuple(draw(st.one_of(st.none(), arrays(g, crash_prone))) for g in grad_shapes)
    if fault == "grad":
        grads, expect = (draw(arrays((N + 1, U + 1), crash_prone)),) + grads[1:], INVALID
    if cell:
        return ("lstm_cell_round_trip", (x, h0, c0, *weights), dict(grads=grads)), expect
    mask = draw(masks((N, T), crash_prone))
    if fault == "mask":
        mask = draw(masks((N + 1, T), crash_prone))
        expect = VALID if mask is None else INVALID
    return ("lstm_round_trip", (x, h0, c0, *weights), dict(grads=grads, mask=mask)), expect


def split_inference(result):
    """(forward, backward) of a recurrent round trip, after checking that its inference
    forward (keep_cache=False), where the round trip ran one, gave the forward's bits."""
    forward, backward, *inference = result
    for got, want in zip(inference[0] if inference else (), forward):
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    return forward, backward


def check_lstm(case):
    name, args, kw = case
    cell = name == "lstm_cell_round_trip"
    dtype = compute_dtype(*args)
    finite = is_finite_case(*args, *kw["grads"])
    x, h0, c0, kernel, rec, bias = (value(a) for a in args)
    grads = [value(g) for g in kw["grads"]]
    if cell:
        x, grads = x[:, None, :], [None, *grads]

    def check(result):
        forward, backward = split_inference(result)  # a sequence's inference forward too
        y, h_n, c_n, saved = ref_lstm.lstm_forward(x, h0, c0, kernel, rec, bias, mask_of(kw))
        want_forward = (h_n, c_n) if cell else (y, h_n, c_n)
        compare = assert_close if finite else assert_shapes
        for got, want in zip(forward, want_forward):
            compare(got, want, dtype, *[10] * finite)
        want_backward = list(ref_lstm.lstm_backward(*grads, saved))
        if cell:
            want_backward[0] = want_backward[0][:, 0]
        for got, want in zip(backward, want_backward):
            compare(got, want, dtype, *[10] * finite)

    return check


@st.composite
def masks(draw, shape, crash_prone=False):
    """None, or a mask of `shape`: the integer dtypes round uniform values in [-2, 2), so
    that many are 0; a float mask's values are all nonzero."""
    dtypes = ["uint8", "int8", "int64", "float32"]
    return draw(st.one_of(st.none(), arrays(shape, crash_prone, dtypes=dtypes, special=False)))


def mask_of(kw):
    """The boolean mask a case's kernel sees (None: every step runs)."""
    return None if kw.get("mask") is None else value(kw["mask"]) != 0


# ---------------------------------------------------------------- GRU and SimpleRNN


RECURRENT_FAULTS = ("T0", "kernel", "recurrent_kernel", "bias", "state", "dtype", "grad", "mask",
                    "option")  # fmt: skip


@st.composite
def recurrent_cases(draw, crash_prone=False):
    """The GRU (both formulations) and the SimpleRNN (both activations), masked or not."""
    family = draw(st.sampled_from(["gru", "simple_rnn"]))
    N, T, I, U = (
        draw(st.integers(0, 3)),
        draw(st.integers(1, 4)),
        draw(st.integers(0, 3)),
        draw(st.integers(0, 3)),
    )
    gates = 3 if family == "gru" else 1
    if family == "gru":
        options = dict(reset_after=draw(st.booleans()))
        bias_shape = (2, 3 * U) if options["reset_after"] else (3 * U,)
    else:
        options, bias_shape = dict(activation=draw(st.sampled_from(["tanh", "relu"]))), (U,)
    shapes = dict(kernel=(I, gates * U), recurrent_kernel=(U, gates * U), bias=bias_shape)
    fault = draw(st.sampled_from(["none"] * 6 + list(RECURRENT_FAULTS)))
    x_shape = (N, 0, I) if fault == "T0" else (N, T, I)
    if fault in shapes:
        shapes[fault] = (*shapes[fault][:-1], shapes[fault][-1] + 1)
    h0 = draw(st.one_of(st.none(), arrays((N + (fault == "state"), U), crash_prone)))
    x = draw(arrays(x_shape, crash_prone))
    if fault == "dtype":
        x = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES)))
    weights = [draw(arrays(shapes[k], crash_prone)) for k in shapes]
    grads = (
        draw(st.one_of(st.none(), arrays((N, T, U), crash_prone))),
        draw(st.one_of(st.none(), arrays((N, U + (fault == "grad")), crash_prone))),
    )
    mask = draw(masks((N, T + (fault == "mask")), crash_prone))
    if fault == "option":  # an activation the kernel lacks, a bias of the other formulation
        options = (
            {"activation": "sigmoid"}
            if family == "simple_rnn"
            else {"reset_after": not options["reset_after"]}
        )
    # A fault in an optional argument that was left out (None) is no fault.
    absent = (fault == "state" and h0 is None) or (fault == "grad" and grads[1] is None)
    expect = VALID if fault == "none" or absent or (fault == "mask" and mask is None) else INVALID
    kwargs = dict(options, mask=mask, grads=grads)
    return (f"{family}_round_trip", (x, h0, *weights), kwargs), expect


def check_recurrent(case):
    name, args, kw = case
    dtype = compute_dtype(*args)
    finite = is_finite_case(*args, *kw["grads"])
    x, h0, kernel, rec, bias = (value(a) for a in args)
    grads = [value(g) for g in kw["grads"]]
    if name == "gru_round_trip":
        forward_ref, backward_ref = ref_gru.gru_forward, ref_gru.gru_backward
        option = kw["reset_after"]
    else:
        forward_ref, backward_ref = (
            ref_simple_rnn.simple_rnn_forward,
            ref_simple_rnn.simple_rnn_backward,
        )
        option = kw["activation"]

    def check(result):
        forward, backward = split_inference(result)  # the GRU's inference forward too
        y, h_n, saved = forward_ref(x, h0, kernel, rec, bias, option, mask_of(kw))
        compare = assert_close if finite else assert_shapes
        for got, want in zip((*forward, *backward), (y, h_n, *backward_ref(*grads, saved))):
            compare(got, want, dtype, *[10] * finite)

    return check


# ---------------------------------------------------------------- relu


@st.composite
def relu_cases(draw, crash_prone=False):
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    x = draw(arrays(shape, crash_prone))
    fault = draw(st.sampled_from(["none"] * 4 + ["dtype", "none_arg", "mismatch"]))
    expect = VALID
    if fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    elif fault == "none_arg":
        x, expect = None, INVALID
    if draw(st.booleans()):
        return ("relu", (x,), {}), expect
    dy = draw(arrays(shape, crash_prone))
    if fault == "mismatch":
        dy, expect = dy._replace(shape=(*shape, 2)), INVALID
    return ("relu_backward", (dy, x), {}), expect


def check_relu(case):
    name, args, _ = case
    dtype = compute_dtype(*args)

    def check(result):
        if name == "relu":
            x = make_array(args[0]).astype(dtype)
            want = np.maximum(x, 0)
        else:
            dy, y = (make_array(a).astype(dtype) for a in args)
            want = np.where(y > 0, dy, 0).astype(dtype)
        assert result.shape == want.shape and result.dtype == dtype
        np.testing.assert_array_equal(result, want)  # NaN in x passes through

    return check


# ---------------------------------------------------------------- normalisation


@st.composite
def norm_cases(draw, crash_prone=False):
    kind = draw(st.sampled_from(["batch_norm", "layer_norm"]))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=4)))
    C = shape[-1]
    x, dy = draw(arrays(shape, crash_prone)), draw(arrays(shape, crash_prone))
    gamma = draw(st.one_of(st.none(), arrays((C,), crash_prone)))
    beta = draw(st.one_of(st.none(), arrays((C,), crash_prone)))
    kw = dict(epsilon=draw(st.sampled_from([1e-3, 0.1, 1.0])))
    if kind == "batch_norm":
        kw["training"] = draw(st.booleans())
    expect = VALID
    fault = draw(
        st.sampled_from(
            ["none"] * 6 + ["gamma_shape", "dy_shape", "rank0", "epsilon", "dtype", "none_arg"]
        )
    )
    if fault == "gamma_shape":
        gamma, expect = draw(arrays((C + 1,), crash_prone)), INVALID
    elif fault == "dy_shape":
        dy, expect = dy._replace(shape=(*shape[:-1], C + 1)), INVALID
    elif fault == "rank0":
        x, expect = 1.5, INVALID  # (make_array would give a 0-D spec one axis)
    elif fault == "epsilon":
        kw["epsilon"], expect = draw(st.sampled_from([-1e-3, float("nan"), float("inf")])), INVALID
    elif fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    elif fault == "none_arg":
        x, expect = None, INVALID
    return (f"{kind}_round_trip", (x, gamma, beta, dy), kw), expect


def check_norm(case):
    name, args, kw = case
    x_spec, gamma_spec, beta_spec, dy_spec = args
    fwd_dtype = compute_dtype(x_spec, gamma_spec, beta_spec)
    bwd_dtype = compute_dtype(*args)  # dy joins the forward's outputs
    x, gamma, beta = (None if a is None else make_array(a).astype(fwd_dtype) for a in args[:3])
    dy = make_array(dy_spec).astype(bwd_dtype)
    eps, C = kw["epsilon"], x.shape[-1]
    M = x.size // max(C, 1)

    def references():
        if name == "batch_norm_round_trip":
            y, mean, var, inv_std = ref_norm.batch_norm(x, gamma, beta, eps)
            grads = ref_norm.batch_norm_backward(dy, x, mean, inv_std, gamma, kw["training"])
            return (y, mean, var, inv_std, y), grads, inv_std  # inference with the batch's own
        y, mean, inv_std = ref_norm.layer_norm(x, gamma, beta, eps)
        return (
            (y, mean, inv_std),
            ref_norm.layer_norm_backward(dy, x, mean, inv_std, gamma),
            inv_std,
        )

    def check(result):
        fwd, bwd = result
        dtypes = [fwd_dtype] * len(fwd) + [bwd_dtype] * len(bwd)
        assert [r.dtype for r in (*fwd, *bwd)] == dtypes
        assert fwd[0].shape == x.shape and bwd[0].shape == x.shape
        if not (is_finite_case(*args) and M and C):  # empty: NaN statistics; specials: shapes
            return
        wants, grads, inv_std = references()
        # float32 errors in dx grow with inv_std <= 1 / sqrt(epsilon)
        scale = max(1.0, float(inv_std.max()))
        # float32 statistics make float64 gradients only float32-accurate
        rtol = 2e-4 if fwd_dtype == np.float32 else 1e-9
        for got, want in zip((*fwd, *bwd), (*wants, *grads)):
            atol = rtol * scale * max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)

    return check


# ---------------------------------------------------------------- embedding

INDEX_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


@st.composite
def embedding_cases(draw, crash_prone=False):
    V, D = draw(st.integers(0, 5)), draw(st.integers(0, 4))
    # (make_array gives a 0-D spec one axis: test_embedding.py covers 0-D indices)
    idx_shape = tuple(draw(st.lists(st.integers(0, 3), min_size=1, max_size=3)))
    positions = int(np.prod(idx_shape))
    idx_dtypes = INDEX_DTYPES + ([">i4", ">u2", ">i8"] if crash_prone else [])
    layouts = ALL_LAYOUTS if crash_prone else SAFE_LAYOUTS
    idx = ArraySpec(
        idx_shape,
        draw(st.sampled_from(idx_dtypes)),
        draw(st.sampled_from(layouts)),
        draw(st.integers(0, 2**16)),
        "",
        0.0,
        max(V - 0.51, 0.0),
    )
    expect = VALID if V > 0 or positions == 0 else INVALID
    table = draw(arrays((V, D), crash_prone))
    dy = draw(arrays((*idx_shape, D), crash_prone))
    fault = draw(
        st.sampled_from(
            ["none"] * 5 + ["out_of_range", "negative", "float_idx", "table_rank", "dy_shape"]
        )
    )
    if fault == "out_of_range" and positions:
        idx, expect = idx._replace(low=V, high=V + 3), INVALID
    elif fault == "negative" and positions and np.dtype(idx.dtype).kind == "i":
        idx, expect = idx._replace(low=-3, high=-0.6), INVALID
    elif fault == "float_idx":
        idx, expect = (
            idx._replace(dtype=draw(st.sampled_from(["float32", "float64", "bool"]))),
            INVALID,
        )
    elif fault == "table_rank":
        table, expect = table._replace(shape=(V,)), INVALID
    elif fault == "dy_shape":
        dy, expect = dy._replace(shape=(*idx_shape, D + 1, 1)), INVALID
    return ("embedding_round_trip", (idx, table, dy), {}), expect


def check_embedding(case):
    _, (idx_spec, table_spec, dy_spec), _ = case
    idx = make_array(idx_spec)
    table = make_array(table_spec).astype(compute_dtype(table_spec))
    dy = make_array(dy_spec).astype(compute_dtype(dy_spec))

    def check(result):
        y, dtable = result
        want_y = ref_embedding.embedding(idx, table)
        assert y.dtype == want_y.dtype and y.shape == want_y.shape
        np.testing.assert_array_equal(y, want_y)  # a copy, NaN included
        want = ref_embedding.embedding_backward(dy, idx, table.shape[0])
        assert dtable.dtype == want.dtype and dtable.shape == want.shape
        np.testing.assert_array_equal(dtable, want)  # added in position order, as np.add.at

    return check


# ---------------------------------------------------------------- softmax


@st.composite
def softmax_cases(draw, crash_prone=False):
    """softmax forward and backward and both cross-entropies on one (..., C) x."""
    # (make_array gives a 0-D spec one axis: test_softmax.py covers 1-D logits)
    lead = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=2)))
    C = draw(st.integers(0, 6))
    shape, rows = (*lead, C), int(np.prod(lead))
    x, dy = draw(arrays(shape, crash_prone)), draw(arrays(shape, crash_prone))
    targets = draw(arrays(shape, crash_prone, special=False))
    labels = ArraySpec(
        lead,
        draw(st.sampled_from(INDEX_DTYPES + ([">i4", ">u2"] if crash_prone else []))),
        draw(st.sampled_from(ALL_LAYOUTS if crash_prone else SAFE_LAYOUTS)),
        draw(st.integers(0, 2**16)),
        "",
        0.0,
        max(C - 0.51, 0.0),
    )
    expect = VALID if C > 0 or rows == 0 else INVALID  # a row needs a class
    fault = draw(
        st.sampled_from(
            ["none"] * 6 + ["out_of_range", "negative", "float_labels", "labels_shape",
                            "dy_shape", "targets_shape", "scalar", "dtype"]
        )
    )  # fmt: skip
    if fault == "out_of_range" and rows:
        labels, expect = labels._replace(low=C, high=C + 3), INVALID
    elif fault == "negative" and rows and np.dtype(labels.dtype).kind == "i":
        labels, expect = labels._replace(low=-3, high=-0.6), INVALID
    elif fault == "float_labels":
        labels = labels._replace(dtype=draw(st.sampled_from(["float32", "float64", "bool"])))
        expect = INVALID
    elif fault == "labels_shape":
        labels, expect = labels._replace(shape=(*lead, 1)), INVALID
    elif fault == "dy_shape":
        dy, expect = dy._replace(shape=(*lead, C + 1)), INVALID
    elif fault == "targets_shape":
        targets, expect = targets._replace(shape=(*lead, 1, C)), INVALID
    elif fault == "scalar":
        x, dy, expect = x._replace(shape=()), dy._replace(shape=()), INVALID
    elif fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    return ("softmax_round_trip", (x, dy, labels, targets), {}), expect


def check_softmax(case):
    _, (x_spec, dy_spec, labels_spec, t_spec), _ = case
    dtype = compute_dtype(x_spec)
    x = make_array(x_spec).astype(dtype)
    dy = make_array(dy_spec).astype(compute_dtype(x_spec, dy_spec))
    labels = make_array(labels_spec)
    targets = make_array(t_spec).astype(compute_dtype(x_spec, t_spec))

    def check(result):
        y, dx, (loss, grad), (t_loss, t_grad) = result
        want_y = ref_softmax.softmax(x)
        wants = (
            (y, want_y, dtype),
            # from the y it is given
            (dx, ref_softmax.softmax_backward(dy, y), compute_dtype(x_spec, dy_spec)),
            *zip((loss, grad), ref_softmax.sparse_softmax_cross_entropy(x, labels), [dtype] * 2),
            *zip(
                (t_loss, t_grad),
                ref_softmax.softmax_cross_entropy(x, targets),
                [compute_dtype(x_spec, t_spec)] * 2,
            ),
        )
        finite = is_finite_case(x_spec, dy_spec)
        for got, want, dt in wants:
            scale = max(1.0, float(np.abs(want).max(initial=0))) if finite else 1.0
            (assert_close(got, want.astype(dt), dt, scale) if finite else
             assert_shapes(got, want, dt))  # fmt: skip

    return check


# ---------------------------------------------------------------- activations

ACTIVATION_PARAMS = {
    "relu": {
        "negative_slope": st.floats(0, 1),
        "max_value": st.one_of(st.none(), st.floats(0, 8)),
        "threshold": st.floats(-1, 2),
    },
    "leaky_relu": {"negative_slope": st.floats(0, 1)},
    "elu": {"alpha": st.floats(0.1, 2)},
    "gelu": {"approximate": st.sampled_from([True, False, "tanh", "none"])},
}
ACTIVATION_KINDS = [
    *ACTIVATION_PARAMS,
    "relu6",
    "selu",
    "silu",
    "swish",
    "softplus",
    "softsign",
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "mish",
]


@st.composite
def activation_cases(draw, crash_prone=False):
    kind = draw(st.sampled_from(ACTIVATION_KINDS))
    params = {
        name: draw(values)
        for name, values in ACTIVATION_PARAMS.get(kind, {}).items()
        if draw(st.booleans())
    }
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    x, dy = draw(arrays(shape, crash_prone)), draw(arrays(shape, crash_prone))
    expect = VALID
    fault = draw(
        st.sampled_from(["none"] * 6 + ["kind", "param", "param_value", "dtype", "mismatch"])
    )
    if fault == "kind":
        kind, expect = draw(st.sampled_from(["relu7", "", "GELU", "softmax"])), INVALID
    elif fault == "param":
        other = draw(st.sampled_from(["alpha", "negative_slope", "max_value", "threshold"]))
        if other not in ACTIVATION_PARAMS.get(kind, {}):
            params[other], expect = 0.5, INVALID
    elif fault == "param_value" and kind in ("relu", "elu"):
        name = "threshold" if kind == "relu" else "alpha"
        params[name], expect = draw(st.sampled_from([float("nan"), float("inf"), "1"])), INVALID
    elif fault == "dtype":
        x, expect = x._replace(dtype=draw(st.sampled_from(BAD_DTYPES))), INVALID
    elif fault == "mismatch":
        dy, expect = dy._replace(shape=(*shape, 2)), INVALID
    return ("activation_round_trip", (x, dy, kind, params), {}), expect


def check_activation(case):
    _, (x_spec, dy_spec, kind, params), _ = case
    dtype = compute_dtype(x_spec)
    x = make_array(x_spec).astype(dtype)
    dy = make_array(dy_spec).astype(compute_dtype(x_spec, dy_spec))

    def check(result):
        y, dx = result
        want_y = ref_activation.activation(x, kind, **params).astype(dtype)
        want_dx = ref_activation.activation_backward(dy, x, kind, **params)
        if is_finite_case(x_spec, dy_spec):
            assert_close(y, want_y, dtype)
            # sigmoid's and tanh's dx come from the forward's y: as precise as x's dtype
            assert dx.dtype == compute_dtype(x_spec, dy_spec)
            assert_close(dx.astype(dtype), want_dx.astype(dtype), dtype)
        else:
            assert_shapes(y, want_y, dtype)
            assert_shapes(dx, want_dx.astype(dx.dtype), dx.dtype)

    return check


# ---------------------------------------------------------------- optimizer updates


@st.composite
def update_cases(draw, crash_prone=False):
    kind = draw(st.sampled_from(["adam", "sgd", "rmsprop"]))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    state = st.builds(
        ArraySpec,
        st.just(shape),
        st.just(dtype),
        st.just("C"),
        st.integers(0, 2**16),
        st.just(""),
        st.just(0.0),
        st.just(1.0),
    )
    param = draw(state)
    grad = draw(arrays(shape, crash_prone))
    expect = VALID
    fault = draw(
        st.sampled_from(
            ["none"] * 5
            + ["param_layout", "state_dtype", "grad_shape", "none_state", "param_dtype"]
        )
    )
    if fault == "param_layout":
        # Updated in place or refused; the check catches an update lost in a copy.
        layouts = [lo for lo in (ALL_LAYOUTS if crash_prone else SAFE_LAYOUTS) if lo != "C"]
        param, expect = param._replace(layout=draw(st.sampled_from(layouts))), EITHER
    elif fault == "param_dtype":
        param = param._replace(dtype=draw(st.sampled_from(["float16", "int32", ">f4", "bool"])))
        expect = INVALID
    elif fault == "grad_shape":
        grad, expect = grad._replace(shape=(*shape, 1)), INVALID
    moment = draw(state)
    if fault == "state_dtype":
        moment = moment._replace(dtype="float64" if dtype == "float32" else "float32")
        expect = INVALID
    if kind == "adam":
        v = draw(state)
        kw = dict(
            lr=draw(st.floats(0, 1)),
            beta_1=draw(st.floats(0, 0.99)),
            beta_2=draw(st.floats(0, 0.999)),
            epsilon=1e-7,
            step=draw(st.integers(1, 10)),
        )
        if draw(st.booleans()):
            kw["vhat"] = draw(state)
        if fault == "none_state":
            v, expect = None, INVALID
        return ("adam_update", (param, grad, moment, v), kw), expect
    if kind == "sgd":
        kw = dict(
            lr=draw(st.floats(0, 1)),
            momentum=draw(st.sampled_from([0.0, 0.5, 0.9])),
            nesterov=draw(st.booleans()),
            velocity=moment,
        )
        if fault == "none_state" and kw["momentum"]:
            kw["velocity"], expect = None, INVALID
        return ("sgd_update", (param, grad), kw), expect
    # v in [1, 2), mg in [0, 0.5) and rho >= 0.5 keep the centered denominator
    # v - mg**2 >= 0.375, away from the cancellation float32 cannot follow.
    moment = moment._replace(low=1.0, high=2.0)
    kw = dict(
        lr=draw(st.floats(0, 1)),
        rho=draw(st.floats(0.5, 0.99)),
        momentum=draw(st.sampled_from([0.0, 0.5])),
        epsilon=1e-7,
    )
    if draw(st.booleans()):
        kw["mg"] = draw(state)._replace(high=0.5)
    if kw["momentum"]:
        kw["mom"] = draw(state)
    if fault == "none_state":
        moment, expect = None, INVALID
    return ("rmsprop_update", (param, grad, moment), kw), expect


def reference_update(name, args, kw):
    """The updated arrays (in the order the worker returns them), in float64, and how far
    the parameter may be off beyond a rounding of it: Adam's step is alpha m / (sqrt(v) +
    epsilon), which carries a rounding of m (float32 keeps 1 - beta_1 = 1 - 1e-8 as 1.0)
    multiplied by alpha / epsilon when v is 0."""
    arrays_ = [make_array(a).astype(np.float64) for a in args]
    state = {k: make_array(v).astype(np.float64) for k, v in kw.items() if isinstance(v, ArraySpec)}
    p, g = arrays_[0], np.nan_to_num(arrays_[1], nan=0.0)  # NaN grads checked for shape only
    if name == "adam_update":
        m, v = arrays_[2:]
        b1, b2, t = kw["beta_1"], kw["beta_2"], kw["step"]
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        denom_v = v
        if "vhat" in state:
            state["vhat"] = denom_v = np.maximum(state["vhat"], v)
        alpha = kw["lr"] * np.sqrt(1 - b2**t) / (1 - b1**t)
        p = p - alpha * m / (np.sqrt(denom_v) + kw["epsilon"])
        rounding = 4 * np.finfo(np.dtype(args[0].dtype)).eps * (np.abs(arrays_[2]) + np.abs(g))
        slack = alpha * rounding / (np.sqrt(denom_v) + kw["epsilon"])
        return [p, arrays_[1], m, v, *state.values()], slack
    if name == "sgd_update":
        lr, mu = kw["lr"], kw["momentum"]
        if mu:
            vel = mu * state["velocity"] - lr * g
            p = p + (mu * vel - lr * g if kw["nesterov"] else vel)
            state["velocity"] = vel
        else:
            p = p - lr * g
        return [p, arrays_[1], *state.values()], 0.0
    v = arrays_[2]
    rho, mu = kw["rho"], kw["momentum"]
    v = rho * v + (1 - rho) * g * g
    denom = v
    if "mg" in state:
        state["mg"] = rho * state["mg"] + (1 - rho) * g
        denom = v - state["mg"] ** 2
    step = kw["lr"] * g / np.sqrt(denom + kw["epsilon"])
    if mu:
        step = step + mu * state["mom"]
        state["mom"] = step
    return [p - step, arrays_[1], v, *state.values()], 0.0


def check_update(case):
    name, args, kw = case
    finite = is_finite_case(args[1])

    def check(result):
        param_dtype = np.dtype(args[0].dtype)
        want, slack = reference_update(name, args, kw)
        assert len(result) == len(want)
        p = result[0]
        assert p.shape == want[0].shape and p.dtype == param_dtype
        if not finite:
            return
        with np.errstate(invalid="ignore"):
            for got, ref in zip(result[2:], want[2:]):
                np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4, equal_nan=True)
            off = np.abs(p - want[0]) - (1e-4 + 1e-3 * np.abs(want[0]) + slack)
            agree = (off <= 0) | (np.isnan(p) & np.isnan(want[0])) | (p == want[0])
            assert agree.all(), f"param {p[~agree]}, expected {want[0][~agree]} (+- {slack})"

    return check


# ---------------------------------------------------------------- layers


@st.composite
def layer_cases(draw, crash_prone=False):
    kind = draw(
        st.sampled_from(
            ["Dense", "Conv2D", "MaxPooling2D", "Flatten", "LSTM", "Conv1D", "Conv2DTranspose",
             "AveragePooling2D", "GlobalAveragePooling1D", "GlobalMaxPooling2D",
             "DepthwiseConv2D", "SeparableConv2D"]
        )
    )  # fmt: skip
    N = draw(st.integers(1, 3))
    expect = VALID
    if kind == "Dense":
        shape = (N, *draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
        config = dict(
            units=draw(st.integers(1, 4)), activation=draw(st.sampled_from([None, "relu", "tanh"]))
        )
    elif kind in ("Conv2D", "MaxPooling2D", "DepthwiseConv2D", "SeparableConv2D"):
        H, W, C = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
        shape = (N, H, W, C)
        size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = draw(st.sampled_from(["valid", "same"]))
        if kind == "MaxPooling2D":
            config = dict(pool_size=size, strides=strides, padding=padding)
        else:
            config = dict(kernel_size=size, strides=strides, padding=padding)
            if kind != "DepthwiseConv2D":
                config["filters"] = draw(st.integers(1, 3))
            if kind != "Conv2D":
                config["depth_multiplier"] = draw(st.integers(1, 3))
        if padding == "valid" and (size[0] > H or size[1] > W):
            expect = INVALID
    elif kind == "AveragePooling2D":
        H, W, C = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
        shape = (N, H, W, C)
        size = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = draw(st.sampled_from(["valid", "same"]))
        config = dict(pool_size=size, strides=draw(st.integers(1, 3)), padding=padding)
        if padding == "valid" and (size[0] > H or size[1] > W):
            expect = INVALID
    elif kind == "Conv1D":
        T, C = draw(st.integers(1, 7)), draw(st.integers(1, 3))
        shape = (N, T, C)
        config = dict(
            filters=draw(st.integers(1, 3)), kernel_size=draw(st.integers(1, 3)),
            strides=draw(st.integers(1, 3)), dilation_rate=draw(st.integers(1, 2)),
            padding=draw(st.sampled_from(["valid", "same", "causal"])),
        )  # fmt: skip
        span = config["dilation_rate"] * (config["kernel_size"] - 1) + 1
        if config["padding"] == "valid" and span > T:
            expect = INVALID
    elif kind == "Conv2DTranspose":
        shape = (N, draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3)))
        strides = draw(st.integers(1, 3))
        config = dict(
            filters=draw(st.integers(1, 3)), kernel_size=draw(st.integers(1, 4)), strides=strides,
            padding=draw(st.sampled_from(["valid", "same"])),
            output_padding=draw(st.one_of(st.none(), st.integers(0, strides - 1))),
        )  # fmt: skip
        op, k = config["output_padding"], config["kernel_size"]
        if config["padding"] == "same" and op is not None:
            # Keras' length (n - 1) * stride + kernel - 2 * (kernel // 2) + output_padding:
            # one input row, an even kernel and no output padding leave no output row
            if min(shape[1:3]) == 1 and k % 2 == 0 and op == 0:
                expect = INVALID
    elif kind in ("GlobalAveragePooling1D", "GlobalMaxPooling2D"):
        axes = 1 if kind.endswith("1D") else 2
        shape = (N, *(draw(st.integers(1, 5)) for _ in range(axes)), draw(st.integers(1, 3)))
        config = dict(keepdims=draw(st.booleans()))
    elif kind == "Flatten":
        shape, config = (N, *draw(st.lists(st.integers(0, 3), max_size=3))), {}
    else:
        shape = (N, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        config = dict(units=draw(st.integers(1, 3)), return_sequences=draw(st.booleans()))
    if draw(st.integers(0, 6)) == 0 and kind != "Flatten":
        shape, expect = (shape[:1] if kind == "Dense" else shape[:-1]), INVALID  # too few axes
    x = draw(
        arrays(
            shape, crash_prone, dtypes=["float32", "float64", "int32", "uint8", "bool", "float16"]
        )
    )
    return (kind, (x, config), {}), expect


def check_layer(case):
    kind, (x_spec, config), _ = case
    x = make_array(x_spec).astype(np.float32).astype(np.float64)
    finite = is_finite_case(x_spec)

    def check(result):
        (y, *_), weights, declared = result
        assert y.dtype == np.float32
        assert (None, *y.shape[1:]) == tuple(declared), (y.shape, declared)
        assert y.shape[0] == x.shape[0]
        if kind == "Dense":
            want = x @ weights[0] + weights[1]
            want = {None: want, "relu": np.maximum(want, 0), "tanh": np.tanh(want)}[
                config["activation"]
            ]
        elif kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            pad = F.conv_padding(
                config["padding"], x.shape[1:3], config["kernel_size"], config["strides"]
            )
            if kind == "Conv2D":
                want = ref_conv.conv2d(x, weights[0], weights[1], config["strides"], pad)
            elif kind == "DepthwiseConv2D":
                want = ref_conv.depthwise_conv2d(x, weights[0], weights[1], config["strides"], pad)
            else:  # the depthwise kernel, then the pointwise one
                depthwise = ref_conv.depthwise_conv2d(x, weights[0], None, config["strides"], pad)
                want = ref_conv.conv2d(depthwise, weights[1], weights[2])
        elif kind == "MaxPooling2D":
            pad = F.conv_padding(
                config["padding"], x.shape[1:3], config["pool_size"], config["strides"]
            )
            want, _ = ref_pool.maxpool2d(x, config["pool_size"], config["strides"], pad)
        elif kind == "AveragePooling2D":
            size, strides = config["pool_size"], (config["strides"],) * 2
            pad = F.conv_padding(config["padding"], x.shape[1:3], size, strides)
            want = ref_pool.avgpool2d(x, size, strides, pad)
        elif kind == "Conv1D":
            k, s, d = config["kernel_size"], config["strides"], config["dilation_rate"]
            ((lo, hi),) = F.conv_padding(config["padding"], x.shape[1:2], k, s, d)
            want = ref_conv.conv2d(x[:, None], weights[0][None], weights[1], (1, s),
                                   ((0, 0), (lo, hi)), (1, d))[:, 0]  # fmt: skip
        elif kind == "Conv2DTranspose":
            s = (config["strides"],) * 2
            k = (config["kernel_size"],) * 2
            op = config["output_padding"]
            crops, extra = F.conv_transpose_padding(config["padding"], k, s, 1,
                                                    None if op is None else (op, op))  # fmt: skip
            want = ref_conv.conv2d_transpose(x, weights[0], weights[1], s, crops, extra)
        elif kind == "GlobalAveragePooling1D":
            want = x.mean(axis=1, keepdims=config["keepdims"])
        elif kind == "GlobalMaxPooling2D":
            want = x.max(axis=(1, 2), keepdims=config["keepdims"])
        elif kind == "Flatten":
            want = x.reshape(x.shape[0], -1)
        else:
            seq, last, _, _ = ref_lstm.lstm_forward(x, None, None, *weights)
            want = seq if config["return_sequences"] else last
        if config.get("padding") == "same" and kind != "Conv2DTranspose":
            axes = x.ndim - 2
            strides = np.broadcast_to(config["strides"], axes)
            sizes = y.shape[1 : 1 + axes]
            assert sizes == tuple(-(-n // s) for n, s in zip(x.shape[1 : 1 + axes], strides))
        (assert_close if finite else assert_shapes)(y, want, np.float32, *[10] * finite)

    return check


# ---------------------------------------------------------------- threads and probe


@st.composite
def thread_cases(draw):
    """Thread counts, valid and not, and kernels run with the valid ones (child only)."""
    n = draw(st.sampled_from([1, 2, 3, 7, 64, 1024, 0, -1, 1025] + HUGE + [1.5, "2", None]))
    valid = isinstance(n, int) and 1 <= n <= 1024
    if not valid or draw(st.booleans()):
        return ("set_num_threads", (n,), {}), VALID if valid else INVALID
    inner, expect = draw(any_kernel_case())
    return ("with_threads", (n, inner), {}), expect


def any_kernel_case():
    return st.one_of(
        gemm_cases(),
        conv_cases(),
        conv_transpose_cases(),
        depthwise_conv_cases(),
        pool_cases(),
        avgpool_cases(),
        global_avgpool_cases(),
        lstm_cases(),
        recurrent_cases(),
        relu_cases(),
        update_cases(),
        norm_cases(),
        embedding_cases(),
        activation_cases(),
        softmax_cases(),
    )


CACHE_SETTINGS = [None, 0, 1, 4096, 1 << 17, 1 << 20, 2**40, 2**63 - 1, 2**63, 2**64, -1,
                  -(2**63), 1.5, "1", float("nan")]  # fmt: skip


@st.composite
def array_cache_cases(draw):
    """Array-cache settings, valid and not, and a kernel run under the valid ones (child
    only: the settings outlive the case)."""
    settings = dict(limit=draw(st.sampled_from(CACHE_SETTINGS)),
                    min_bytes=draw(st.sampled_from(CACHE_SETTINGS)))  # fmt: skip
    valid = all(v is None or (type(v) is int and 0 <= v < 2**63) for v in settings.values())
    inner, expect = draw(any_kernel_case())
    return ("with_array_cache", (settings, inner), {}), expect if valid else INVALID


@st.composite
def probe_cases(draw):
    threads = draw(st.sampled_from([1, 2, 0, -1, 1025, 2**40, 1.5, None]))
    seconds = draw(
        st.sampled_from(
            [0.001, 0.01, 0.0, -1.0, float("nan"), float("inf"), 61.0, 1e300, "fast", None]
        )
    )
    valid = threads in (1, 2) and isinstance(seconds, float) and 0 < seconds <= 60
    return ("peak_gflops", (), dict(threads=threads, seconds=seconds)), VALID if valid else INVALID


def check_any(case):
    name, args, _ = case
    if name in ("with_threads", "with_array_cache"):
        return checker(args[1])
    if name == "peak_gflops":

        def check_gflops(result):
            assert result > 0, f"{case}: {result} GFLOP/s"

        return check_gflops

    def check_none(result):
        assert result is None, f"{case}: returned {result!r}"

    return check_none


CHECKERS = {
    "gemm": check_gemm,
    "gemm_backward": check_gemm,
    "conv2d_forward": check_conv,
    "conv2d_backward": check_conv,
    "conv2d_plan": check_conv,
    "maxpool2d_round_trip": check_pool,
    "maxpool2d_backward": check_pool_backward,
    "conv2d_transpose_forward": check_conv_transpose,
    "conv2d_transpose_backward": check_conv_transpose,
    "depthwise_conv2d_forward": check_conv,
    "depthwise_conv2d_backward": check_conv,
    "avgpool2d_round_trip": check_avgpool,
    "avgpool2d_backward": check_avgpool_backward,
    "global_avgpool_round_trip": check_global_avgpool,
    "lstm_round_trip": check_lstm,
    "lstm_cell_round_trip": check_lstm,
    "gru_round_trip": check_recurrent,
    "simple_rnn_round_trip": check_recurrent,
    "relu": check_relu,
    "relu_backward": check_relu,
    "batch_norm_round_trip": check_norm,
    "layer_norm_round_trip": check_norm,
    "embedding_round_trip": check_embedding,
    "activation_round_trip": check_activation,
    "softmax_round_trip": check_softmax,
    "adam_update": check_update,
    "sgd_update": check_update,
    "rmsprop_update": check_update,
    "Dense": check_layer,
    "Conv2D": check_layer,
    "MaxPooling2D": check_layer,
    "Flatten": check_layer,
    "LSTM": check_layer,
    "Conv1D": check_layer,
    "Conv2DTranspose": check_layer,
    "DepthwiseConv2D": check_layer,
    "SeparableConv2D": check_layer,
    "AveragePooling2D": check_layer,
    "GlobalAveragePooling1D": check_layer,
    "GlobalMaxPooling2D": check_layer,
    "set_num_threads": check_any,
    "with_threads": check_any,
    "with_array_cache": check_any,
    "peak_gflops": check_any,
}


def checker(case):
    return CHECKERS[case[0]](case)


# ---------------------------------------------------------------- in-process fuzzing

FAMILIES = {
    "gemm": gemm_cases,
    "conv2d": conv_cases,
    "maxpool2d": pool_cases,
    "maxpool2d_backward": pool_backward_cases,
    "conv2d_transpose": conv_transpose_cases,
    "depthwise_conv2d": depthwise_conv_cases,
    "avgpool2d": avgpool_cases,
    "avgpool2d_backward": avgpool_backward_cases,
    "global_avgpool": global_avgpool_cases,
    "lstm": lstm_cases,
    "recurrent": recurrent_cases,
    "relu": relu_cases,
    "norm": norm_cases,
    "embedding": embedding_cases,
    "activation": activation_cases,
    "softmax": softmax_cases,
    "updates": update_cases,
    "layers": layer_cases,
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fuzz_in_process(family):
    @settings(FUZZ, max_examples=150)
    @given(st.data())
    def run(data):
        case, expect = data.draw(FAMILIES[family]())
        check_outcome(case, expect, run_case(case))

    run()


# ---------------------------------------------------------------- crash-prone, in a child

BATCH = 40
# A failing batch already names its case; shrinking would rerun a child per step.
IN_A_CHILD = settings(FUZZ, phases=[Phase.explicit, Phase.generate])


def run_batch(cases_and_expects, **child):
    cases = [c for c, _ in cases_and_expects]
    for (case, expect), outcome in zip(cases_and_expects, run_in_child(cases, **child)):
        check_outcome(case, expect, outcome)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fuzz_crash_prone_in_a_child(family):
    """Unaligned and byte-swapped arrays, absurd window sizes and paddings."""

    @settings(IN_A_CHILD, max_examples=6)
    @given(st.lists(FAMILIES[family](crash_prone=True), min_size=BATCH, max_size=BATCH))
    def run(batch):
        run_batch(batch)

    run()


def test_fuzz_thread_counts_in_a_child():
    # No address-space cap: 1024 threads reserve 8 MB of stack each.
    @settings(IN_A_CHILD, max_examples=6)
    @given(st.lists(thread_cases(), min_size=BATCH, max_size=BATCH))
    def run(batch):
        run_batch(batch, address_space=0)

    run()


def test_fuzz_array_cache_settings_in_a_child():
    @settings(IN_A_CHILD, max_examples=4)
    @given(st.lists(array_cache_cases(), min_size=BATCH, max_size=BATCH))
    def run(batch):
        run_batch(batch)

    run()


def test_fuzz_peak_gflops_in_a_child():
    @settings(IN_A_CHILD, max_examples=2)
    @given(st.lists(probe_cases(), min_size=BATCH, max_size=BATCH))
    def run(batch):
        run_batch(batch)

    run()


@st.composite
def absurd_shape_cases(draw):
    """Zero-size arrays with huge dimensions, and shapes described to conv2d_plan."""
    huge = st.sampled_from([2**31, 2**40, 2**62, 2**63 - 1])
    which = draw(
        st.sampled_from(
            ["plan", "conv", "pool", "pool_backward", "lstm", "relu", "conv_transpose", "avgpool",
             "global_avgpool", "depthwise"]
        )
    )  # fmt: skip
    if which == "conv_transpose":
        x = ArraySpec((0, draw(huge) // 2**8, 5, 16), "float32")
        k = ArraySpec((3, 3, draw(st.integers(0, 4)), 16), "float32")
        return (
            "conv2d_transpose_forward",
            (x, k, None),
            dict(padding=draw(st.sampled_from([0, 1]))),
        ), ABSURD
    if which == "avgpool":
        x = ArraySpec((0, draw(huge) // 2**8, 4, 2), "float64")
        dy = ArraySpec((0, x.shape[1] // 2, 2, 2), "float64")
        return ("avgpool2d_round_trip", (x, dy), dict(pool_size=2)), ABSURD
    if which == "global_avgpool":
        x = ArraySpec((0, draw(huge) // 2**8, 3), "float32")
        return ("global_avgpool_round_trip", (x, ArraySpec((0, 3), "float32")), {}), ABSURD
    if which == "plan":
        dims = st.one_of(st.integers(0, 4), huge, st.sampled_from([-1, 2**63, 2**64]))
        x = tuple(draw(dims) for _ in range(4))
        k = (draw(dims), draw(dims), draw(st.sampled_from([x[3], draw(dims)])), draw(dims))
        return ("conv2d_plan", (x, k), dict(padding=draw(st.sampled_from([0, 1, 2**62])))), ABSURD
    if which in ("conv", "depthwise"):  # kernel (3, 3, 16, OC) or (3, 3, 16, M)
        x = ArraySpec((0, draw(huge) // 2**8, 5, 16), "float32")
        k = ArraySpec((3, 3, 16, draw(st.integers(0, 4))), "float32")
        name = "conv2d_forward" if which == "conv" else "depthwise_conv2d_forward"
        return (name, (x, k, None), dict(padding=draw(st.sampled_from([0, 1])))), ABSURD
    if which == "pool":
        x = ArraySpec((0, draw(huge) // 2**8, 4, 2), "float64")
        return ("maxpool2d_round_trip", (x,), dict(pool_size=2, strides=None, padding=0)), ABSURD
    if which == "pool_backward":
        dy = ArraySpec((1, 1, 1, 1), "float32")
        argmax = ArraySpec((1, 1, 1, 1), "int64", low=0, high=1)
        x_shape = (1, draw(huge), draw(st.sampled_from([1, 2**31, 2**40])), 1)
        return ("maxpool2d_backward", (dy, argmax, x_shape), {}), ABSURD
    if which == "lstm":
        I = draw(huge) // 2**8
        x = ArraySpec((0, 2, I), "float32")
        return (
            "lstm_round_trip",
            (
                x,
                None,
                None,
                ArraySpec((I, 0), "float32"),
                ArraySpec((0, 0), "float32"),
                ArraySpec((0,), "float32"),
            ),
            dict(grads=(None, None, None)),
        ), ABSURD
    return ("relu", (ArraySpec((0, draw(huge) // 2**8), "float32"),), {}), ABSURD


def check_absurd(case, result):
    """The shapes a zero-size input with huge dimensions gives (no reference runs)."""
    name, args, kw = case
    shapes = None
    if name in (
        "conv2d_forward",
        "depthwise_conv2d_forward",
        "maxpool2d_round_trip",
        "maxpool2d_backward",
        "relu",
        "conv2d_transpose_forward",
        "avgpool2d_round_trip",
        "global_avgpool_round_trip",
    ):
        shapes = [r.shape for r in result] if isinstance(result, tuple) else result.shape
    if name == "conv2d_plan":
        assert set(result) == {"forward", "input_grad", "weight_grads"}, result
    elif name in ("conv2d_forward", "depthwise_conv2d_forward"):
        (N, H, W, C), M, p = args[0].shape, args[1].shape[3], kw["padding"]
        OC = C * M if name.startswith("depthwise") else M
        assert shapes == (N, H + 2 * p - 2, W + 2 * p - 2, OC), (case, shapes)
    elif name == "conv2d_transpose_forward":
        (N, H, W, _), OC, p = args[0].shape, args[1].shape[2], kw["padding"]
        assert shapes == (N, H + 2 - 2 * p, W + 2 - 2 * p, OC), (case, shapes)
    elif name == "avgpool2d_round_trip":
        N, H, W, C = args[0].shape
        assert shapes == [(N, H // 2, W // 2, C), (N, H, W, C)], (case, shapes)
    elif name == "global_avgpool_round_trip":
        assert shapes == [(0, 3), args[0].shape], (case, shapes)
    elif name == "maxpool2d_round_trip":
        N, H, W, C = args[0].shape
        assert shapes == [(N, H // 2, W // 2, C)] * 2 + [(N, H, W, C), (N, H // 2, W // 2, C)], (
            case,
            shapes,
        )
    elif name == "maxpool2d_backward":
        assert shapes == tuple(args[2]), (case, shapes)
    elif name == "lstm_round_trip":
        (N, T, I), U = args[0].shape, 0
        assert [np.shape(r) for r in result[0]] == [(N, T, U), (N, U), (N, U)], (case, result)
        assert [np.shape(r) for r in result[1]] == [
            (N, T, I),
            (N, U),
            (N, U),
            (I, 4 * U),
            (U, 4 * U),
            (4 * U,),
        ], (case, result)
    else:
        assert shapes == args[0].shape, (case, shapes)


def test_fuzz_absurd_sizes_in_a_child():
    @settings(IN_A_CHILD, max_examples=6)
    @given(st.lists(absurd_shape_cases(), min_size=BATCH, max_size=BATCH))
    def run(batch):
        run_batch(batch)

    run()


@pytest.fixture(scope="module", autouse=True)
def report_case_count():
    yield
    print(f"\ntest_fuzz: {sum(CASES.values())} cases fuzzed: {dict(sorted(CASES.items()))}")
