"""The fused update kernels; their maths is checked against NumPy formulas through the
optimizers in test_optimizers.py, here directly and at the boundary."""

import numpy as np
import pytest

from dlcore import ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 100_003])  # the last one runs in parallel
def test_adam_update_matches_numpy(rng, dtype, n):
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m, v = rng.standard_normal(n).astype(dtype), rng.random(n).astype(dtype)
    exp_m = m + (g - m) * 0.1
    exp_v = v + (g * g - v) * 0.001
    alpha = 0.01 * np.sqrt(1 - 0.999**3) / (1 - 0.9**3)
    exp_p = p - alpha * exp_m / (np.sqrt(exp_v) + 1e-7)
    ops.adam_update(p, g, m, v, lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m, exp_m, **tol)
    np.testing.assert_allclose(v, exp_v, **tol)
    np.testing.assert_allclose(p, exp_p, **tol)


def test_sgd_update_converts_the_gradient_once(rng):
    p = np.ones(5, np.float32)
    ops.sgd_update(p, np.arange(5), lr=0.5)  # int64 gradient, float32 parameter
    np.testing.assert_allclose(p, 1 - 0.5 * np.arange(5))
    assert p.dtype == np.float32


def test_update_kernels_reject_bad_state():
    p = np.ones(4, np.float32)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    kw = dict(lr=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    with pytest.raises(
        TypeError,
        match=r"argument 'm' has dtype float64; expected float32 in "
        r"native byte order",
    ):
        ops.adam_update(p, np.ones(4), np.zeros(4), v, **kw)
    with pytest.raises(
        ValueError,
        match=r"argument 'v' has shape \(3,\); expected the "
        r"parameter's \(4,\)",
    ):
        ops.adam_update(p, np.ones(4), m, np.zeros(3, np.float32), **kw)
    with pytest.raises(ValueError, match=r"argument 'grad' has shape \(5,\)"):
        ops.adam_update(p, np.ones(5), m, v, **kw)
    with pytest.raises(ValueError, match="step must be >= 1"):
        ops.adam_update(p, np.ones(4), m, v, **{**kw, "step": 0})
    frozen = np.ones(4, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(
        ValueError, match="argument 'param' must be a writeable, aligned, C-contiguous"
    ):
        ops.sgd_update(frozen, np.ones(4), lr=0.1)
    with pytest.raises(
        ValueError, match="argument 'param' must be a writeable, aligned, C-contiguous"
    ):
        ops.sgd_update(np.ones((4, 4), np.float32)[:, 0], np.ones(4), lr=0.1)
    with pytest.raises(TypeError, match="argument 'param' has dtype int64"):
        ops.sgd_update(np.ones(4, np.int64), np.ones(4), lr=0.1)
    with pytest.raises(TypeError, match="argument 'param' must be a numpy array"):
        ops.sgd_update([1.0, 2.0], np.ones(2), lr=0.1)
    with pytest.raises(ValueError, match="momentum needs a velocity array"):
        ops.sgd_update(p, np.ones(4), lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="argument 'grad' must be an array, got None"):
        ops.rmsprop_update(p, None, v, lr=0.1, rho=0.9)


def test_updates_of_lists_match_one_update_per_parameter():
    rng = np.random.default_rng(5)
    shapes = [(3, 4), (4,), (1,), (2, 3, 5)]

    def state():
        return [rng.standard_normal(s).astype(np.float32) for s in shapes]

    params, grads, ms, vs = state(), state(), state(), [np.abs(a) for a in state()]
    one = [[a.copy() for a in group] for group in (params, ms, vs)]
    ops.adam_update(params, grads, ms, vs, lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3)
    for p, g, m, v in zip(*one[:1], grads, *one[1:]):
        ops.adam_update(p, g, m, v, lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3)
    for a, b in zip(params + ms + vs, one[0] + one[1] + one[2]):
        np.testing.assert_array_equal(a, b)

    params, grads, vel = state(), state(), state()
    one = [p.copy() for p in params], [v.copy() for v in vel]
    ops.sgd_update(params, grads, lr=0.1, momentum=0.9, velocity=vel)
    for p, g, v in zip(*one[:1], grads, one[1]):
        ops.sgd_update(p, g, lr=0.1, momentum=0.9, velocity=v)
    for a, b in zip(params + vel, one[0] + one[1]):
        np.testing.assert_array_equal(a, b)

    params, grads, v2 = state(), state(), [np.abs(a) for a in state()]
    one = [p.copy() for p in params], [v.copy() for v in v2]
    ops.rmsprop_update(params, grads, v2, lr=0.01, rho=0.9)
    for p, g, v in zip(*one[:1], grads, one[1]):
        ops.rmsprop_update(p, g, v, lr=0.01, rho=0.9)
    for a, b in zip(params + v2, one[0] + one[1]):
        np.testing.assert_array_equal(a, b)


def test_updates_of_lists_check_everything_before_updating():
    p = [np.ones(3, np.float32), np.ones(2, np.float32)]
    with pytest.raises(ValueError, match="argument 'grad' has 1 arrays for 2 parameters"):
        ops.sgd_update(p, [np.ones(3)], lr=0.1)
    with pytest.raises(TypeError, match="argument 'v' must be a list too"):
        ops.rmsprop_update(p, [np.ones(3), np.ones(2)], np.ones(3, np.float32), lr=0.1, rho=0.9)
    with pytest.raises(ValueError, match=r"argument 'grad' has shape \(3,\); expected the "
                                         r"parameter's \(2,\)"):  # fmt: skip
        ops.sgd_update(p, [np.ones(3), np.ones(3)], lr=0.1)
    np.testing.assert_array_equal(p[0], 1)  # the first was not updated before the second failed
