import numpy as np
import pytest

from dlcore import ops
from gradcheck import check_gradients
from keras_parity import import_keras
from reference.activation import activation as reference
from reference.activation import activation_backward as reference_backward

# Every Keras name with the parameters it takes; relu also with all three of its own.
KINDS = [
    ("relu", {}),
    ("relu", {"negative_slope": 0.1, "max_value": 4.0, "threshold": 0.5}),
    ("relu", {"negative_slope": 0.3}),
    ("relu", {"max_value": 2.5}),
    ("relu", {"threshold": -1.0}),  # keras.activations.relu allows it: (-1, 0) passes through
    ("relu6", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.01}),
    ("elu", {}),
    ("elu", {"alpha": 0.7}),
    ("selu", {}),
    ("gelu", {}),
    ("gelu", {"approximate": True}),
    ("silu", {}),
    ("swish", {}),
    ("softplus", {}),
    ("softsign", {}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("hard_sigmoid", {}),
    ("hard_silu", {}),
    ("hard_swish", {}),
    ("mish", {}),
]
IDS = [k + "".join(f"-{n}={v}" for n, v in p.items()) for k, p in KINDS]
EPS32 = 2.0**-23

# Points where a kind has a kink (its derivative jumps): kept out of the finite differences.
KINKS = [-3.0, -1.0, 0.0, 0.5, 2.5, 3.0, 4.0, 6.0]


def dense_grid():
    """float32 inputs over every region of the functions: both tails to underflow and
    overflow, and many decades around 0."""
    rng = np.random.default_rng(7)
    tiny = np.geomspace(1e-8, 1, 2000)
    return np.concatenate(
        [np.linspace(-20, 20, 40001), 3 * rng.standard_normal(20000), tiny, -tiny]
        + [np.linspace(-90, 90, 2001)]
    ).astype(np.float32)


def float32_tolerance(kind, params, x, ref):
    """What "within float32 rounding" allows: 4 eps relative, an absolute 1e-36 where the
    result underflows, and for gelu's tanh form the rounding of its argument u (inherent
    in evaluating the formula in float32) magnified by |2u| in the far negative tail."""
    tol = 4 * EPS32 * np.abs(ref) + 1e-36
    if kind == "gelu" and params.get("approximate"):
        u = np.sqrt(2 / np.pi) * (x + 0.044715 * x.astype(np.float64) ** 3)
        tol += 2 * EPS32 * np.abs(2 * u) * np.abs(ref)
    return tol


@pytest.mark.parametrize("kind,params", KINDS, ids=IDS)
def test_float32_within_a_few_ulps_of_the_exact_function(kind, params):
    x = dense_grid()
    y = ops.activation_forward(x, kind, **params)
    assert y.dtype == np.float32 and y.shape == x.shape
    ref = reference(x, kind, **params)
    err = np.abs(y - ref)
    bad = err > float32_tolerance(kind, params, x, ref)
    assert not bad.any(), f"x = {x[bad][:5]}: got {y[bad][:5]}, exact {ref[bad][:5]}"
    # The derivative, whether computed from x or from y, within 4 eps of max(|f'|, 1).
    dy = np.ones_like(x)
    dx = ops.activation_backward(dy, kind, x=x, y=y, **params)
    ref_dx = reference_backward(dy, x, kind, **params)
    err = np.abs(dx - ref_dx) / (np.abs(ref_dx) + 1)
    assert err.max() <= 4 * EPS32, f"x = {x[np.argmax(err)]}, {err.max() / EPS32:.1f} eps"


@pytest.mark.parametrize("kind,params", KINDS, ids=IDS)
@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (2, 3, 1, 5)])
def test_float64_matches_reference(rng, kind, params, shape):
    x = 3 * rng.standard_normal(shape)
    y = ops.activation_forward(x, kind, **params)
    assert y.dtype == np.float64 and y.shape == shape
    np.testing.assert_allclose(y, reference(x, kind, **params), rtol=1e-13, atol=1e-300)
    dy = rng.standard_normal(shape)
    dx = ops.activation_backward(dy, kind, x=x, y=y, **params)
    assert dx.dtype == np.float64 and dx.shape == shape
    np.testing.assert_allclose(
        dx, reference_backward(dy, x, kind, **params), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("kind,params", KINDS, ids=IDS)
def test_backward_finite_differences(rng, kind, params):
    x = 2.5 * rng.standard_normal((4, 7))
    for k in KINKS:  # keep each point 1e-3 away from every kink
        near = np.abs(x - k) < 1e-3
        x[near] = k + 1e-2
    w = rng.standard_normal(x.shape)

    def loss():
        return float((ops.activation_forward(x, kind, **params) * w).sum())

    y = ops.activation_forward(x, kind, **params)
    dx = ops.activation_backward(w, kind, x=x, y=y, **params)
    check_gradients(loss, {"x": x}, {"x": dx}, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_run_parallel_and_match_small_calls(rng, dtype, threads):
    # 2**17 elements take the parallel path; an element's result does not depend on it.
    x = (4 * rng.standard_normal(1 << 17)).astype(dtype)
    for kind in ("gelu", "mish", "relu", "tanh"):
        ops.set_num_threads(2)
        y = ops.activation_forward(x, kind)
        dx = ops.activation_backward(x, kind, x=x, y=y)
        head = slice(0, 1000)
        np.testing.assert_array_equal(y[head], ops.activation_forward(x[head], kind))
        np.testing.assert_array_equal(
            dx[head], ops.activation_backward(x[head], kind, x=x[head], y=y[head])
        )
        ops.set_num_threads(1)
        np.testing.assert_array_equal(y, ops.activation_forward(x, kind))


def test_kink_conventions():
    x = np.array([-3.0, 0.0, 0.5, 3.0, 6.0])
    one = np.ones_like(x)
    # relu: the slope at and below the threshold, 0 at max_value
    np.testing.assert_array_equal(
        ops.activation_backward(one, "relu", x=x, negative_slope=0.1, max_value=6.0),
        [0.1, 0.1, 1, 1, 0],
    )
    np.testing.assert_array_equal(ops.activation_backward(one, "relu", x=x), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(ops.activation_backward(one, "relu6", x=x), [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(
        ops.activation_backward(one, "hard_sigmoid", x=x), [0, 1 / 6, 1 / 6, 0, 0]
    )
    np.testing.assert_allclose(
        ops.activation_backward(one, "hard_silu", x=x), [0, 0.5, 4 / 6, 1, 1], rtol=1e-15
    )


def test_relu_with_parameters_is_keras_relu_layer_semantics():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 0.5, 1.0, 5.0, 7.0])
    y = ops.activation_forward(x, "relu", negative_slope=0.1, max_value=5.0, threshold=0.5)
    # above the threshold x, capped at 5; at and below it 0.1 * (x - 0.5)
    np.testing.assert_allclose(y, [-0.25, -0.1, -0.05, -0.02, 0.0, 1.0, 5.0, 5.0])
    np.testing.assert_array_equal(ops.activation_forward(x, "relu6"), np.clip(x, 0, 6))
    np.testing.assert_allclose(
        ops.activation_forward(x, "leaky_relu"), np.where(x >= 0, x, 0.2 * x)
    )


def test_nan_propagates_and_infinities_saturate():
    x = np.array([np.nan, -np.inf, np.inf], np.float32)
    for kind, _ in KINDS:
        y = ops.activation_forward(x, kind)
        assert np.isnan(y[0]), kind
        dx = ops.activation_backward(np.ones_like(x), kind, x=x, y=y)
        assert np.isnan(dx[0]), kind
    sat = {"sigmoid": (0, 1), "tanh": (-1, 1), "softsign": (-1, 1), "hard_sigmoid": (0, 1)}
    for kind, (lo, hi) in sat.items():
        np.testing.assert_array_equal(ops.activation_forward(x[1:], kind), [lo, hi])
    np.testing.assert_array_equal(ops.activation_forward(x[1:], "elu"), [-1, np.inf])
    np.testing.assert_array_equal(ops.activation_forward(x[1:], "softplus"), [0, np.inf])
    np.testing.assert_array_equal(ops.activation_forward(x[1:], "gelu")[1:], [np.inf])


def test_dtypes_and_layouts(rng):
    m = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(
        ops.activation_forward(m.T, "tanh"), ops.activation_forward(m.T.copy(), "tanh")
    )
    assert ops.activation_forward(np.arange(-2, 3), "sigmoid").dtype == np.float64  # int64
    assert ops.activation_forward(np.arange(-2, 3, dtype=np.int8), "sigmoid").dtype == np.float32
    assert ops.activation_forward(np.float32(2.0), "elu").shape == ()
    assert ops.activation_forward([1.0, -1.0], "relu").dtype == np.float64  # a list of floats
    dx = ops.activation_backward(np.ones(3, np.float32), "tanh", y=np.zeros(3))
    assert dx.dtype == np.float64  # promoted as NumPy would


def test_backward_reads_x_or_y_as_documented():
    assert ops.activation_backward_needs("sigmoid") == "y"
    assert ops.activation_backward_needs("tanh") == "y"
    for kind in ("relu", "gelu", "mish", "elu", "swish", "hard_swish"):
        assert ops.activation_backward_needs(kind) == "x"
    x = np.linspace(-3, 3, 7)
    y = ops.activation_forward(x, "sigmoid")
    np.testing.assert_array_equal(ops.activation_backward(np.ones(7), "sigmoid", y=y), y * (1 - y))
    # the unused one may be anything of the right shape, or absent
    np.testing.assert_array_equal(
        ops.activation_backward(np.ones(7), "sigmoid", x=np.zeros(7), y=y), y * (1 - y)
    )


KERAS_FUNCTIONS = [
    ("relu", {}, "relu", {}),
    ("relu", {"negative_slope": 0.1, "max_value": 4.0, "threshold": 0.5}, "relu", None),
    ("relu6", {}, "relu6", {}),
    ("leaky_relu", {}, "leaky_relu", {}),
    ("elu", {"alpha": 0.7}, "elu", {"alpha": 0.7}),
    ("selu", {}, "selu", {}),
    ("gelu", {}, "gelu", {}),
    ("gelu", {"approximate": True}, "gelu", {"approximate": True}),
    ("silu", {}, "silu", {}),
    ("softplus", {}, "softplus", {}),
    ("softsign", {}, "softsign", {}),
    ("sigmoid", {}, "sigmoid", {}),
    ("tanh", {}, "tanh", {}),
    ("hard_sigmoid", {}, "hard_sigmoid", {}),
    ("hard_silu", {}, "hard_silu", {}),
    ("mish", {}, "mish", {}),
]


@pytest.mark.parametrize(
    "kind,params,keras_name,keras_params", KERAS_FUNCTIONS, ids=[k[0] for k in KERAS_FUNCTIONS]
)
def test_matches_keras_activations(kind, params, keras_name, keras_params):
    keras = import_keras()
    import jax

    x = np.linspace(-8, 8, 1601).astype(np.float32)
    fn = getattr(keras.activations, keras_name)
    kp = params if keras_params is None else keras_params
    want = np.asarray(fn(x, **kp))
    got = ops.activation_forward(x, kind, **params)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Keras' gradient (JAX's autodiff of the same function) away from the kinks
    xs = x[np.all(np.abs(x[:, None] - np.array(KINKS)) > 1e-3, axis=1)]
    want_dx = np.asarray(jax.vmap(jax.grad(lambda v: fn(v, **kp)))(xs))
    y = ops.activation_forward(xs, kind, **params)
    got_dx = ops.activation_backward(np.ones_like(xs), kind, x=xs, y=y, **params)
    # JAX differentiates gelu's 0.5 x (1 + tanh(u)) in float32, whose 1 + tanh(u) is 0
    # from x = -5 on; ours (exact to float32 there, as the float64 tests check) is not.
    atol = 5e-6 if params.get("approximate") else 1e-6
    np.testing.assert_allclose(got_dx, want_dx, rtol=1e-5, atol=atol)


def test_matches_keras_relu_layer():
    keras = import_keras()
    x = np.linspace(-4, 8, 121).astype(np.float32)
    for config in ({"max_value": 6.0}, {"negative_slope": 0.2, "threshold": 1.0}, {}):
        want = np.asarray(keras.layers.ReLU(**config)(x))
        np.testing.assert_allclose(ops.activation_forward(x, "relu", **config), want, rtol=1e-6)


def test_threads_agree(rng, threads):
    x = (4 * rng.standard_normal(70001)).astype(np.float32)
    out = []
    for n in (1, 2, 3):
        ops.set_num_threads(n)
        y = ops.activation_forward(x, "gelu")
        out.append((y, ops.activation_backward(x, "gelu", x=x)))
    for got in out[1:]:
        for a, b in zip(out[0], got):
            np.testing.assert_array_equal(a, b)


X = np.ones(4, np.float32)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: ops.activation_forward(X, "relu7"),
            ValueError,
            r"unknown activation 'relu7'; expected one of relu, relu6",
        ),
        (
            lambda: ops.activation_forward(X, None),
            TypeError,
            r"argument 'kind' must be an activation's name \(str\), got None",
        ),
        (
            lambda: ops.activation_forward(None, "relu"),
            TypeError,
            r"argument 'x' must be an array, got None",
        ),
        (
            lambda: ops.activation_forward(X.astype(complex), "relu"),
            TypeError,
            r"argument 'x' has dtype complex128",
        ),
        (
            lambda: ops.activation_forward(X, "tanh", alpha=2.0),
            ValueError,
            r"argument 'alpha' does not apply to activation 'tanh'",
        ),
        (
            lambda: ops.activation_forward(X, "relu6", max_value=3.0),
            ValueError,
            r"'max_value' does not apply to activation 'relu6'",
        ),
        (
            lambda: ops.activation_forward(X, "leaky_relu", threshold=1.0),
            ValueError,
            r"'threshold' does not apply",
        ),
        (
            lambda: ops.activation_forward(X, "relu", approximate=True),
            ValueError,
            r"'approximate' does not apply",
        ),
        (
            lambda: ops.activation_forward(X, "elu", alpha=float("nan")),
            ValueError,
            r"alpha is nan; expected a finite number",
        ),
        (
            lambda: ops.activation_forward(X, "relu", negative_slope=float("inf")),
            ValueError,
            r"negative_slope is inf",
        ),
        (
            lambda: ops.activation_forward(X, "relu", max_value=-1.0),
            ValueError,
            r"max_value is -1; expected a number >= 0",
        ),
        (
            lambda: ops.activation_forward(X, "relu", threshold="1"),
            TypeError,
            r"argument 'threshold' must be a number, got '1'",
        ),
        (
            lambda: ops.activation_forward(X, "gelu", approximate="yes"),
            TypeError,
            r"'approximate' must be True, False, 'tanh' or 'none'",
        ),
        (
            lambda: ops.activation_backward(X, "gelu"),
            ValueError,
            r"activation 'gelu' computes its gradient from x, the forward's input; pass x=",
        ),
        (
            lambda: ops.activation_backward(X, "tanh", x=X),
            ValueError,
            r"from y, the forward's output; pass y=",
        ),
        (
            lambda: ops.activation_backward(X, "elu", x=np.ones(5)),
            ValueError,
            r"'dy' has shape \(4,\) but 'x' has shape \(5,\)",
        ),
        (
            lambda: ops.activation_backward(None, "elu", x=X),
            TypeError,
            r"argument 'dy' must be an array",
        ),
        (
            lambda: ops.activation_backward_needs("nope"),
            ValueError,
            r"activation_backward_needs: unknown activation 'nope'",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_gelu_approximate_accepts_torch_spelling(rng):
    x = rng.standard_normal(9)
    np.testing.assert_array_equal(
        ops.activation_forward(x, "gelu", approximate="tanh"),
        ops.activation_forward(x, "gelu", approximate=True),
    )
    np.testing.assert_array_equal(
        ops.activation_forward(x, "gelu", approximate="none"), ops.activation_forward(x, "gelu")
    )
