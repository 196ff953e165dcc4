import math

import numpy as np
import pytest

from dlcore import Tensor, optimizers
from dlcore.optimizers import schedules


def run(opt, grads, w0):
    """Applies the gradient sequence through opt.step(); returns the weights after each."""
    w = Tensor(w0.copy(), requires_grad=True)
    out = []
    for g in grads:
        w.grad = g.copy()
        opt.step([w])
        out.append(w.numpy().copy())
    return out


@pytest.fixture
def grads(rng):
    return [rng.standard_normal(5) for _ in range(6)]


@pytest.fixture
def w0(rng):
    return rng.standard_normal(5)


def test_sgd(grads, w0):
    w, expected = w0.copy(), []
    for g in grads:
        w = w - 0.1 * g
        expected.append(w)
    np.testing.assert_allclose(run(optimizers.SGD(0.1), grads, w0), expected)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(grads, w0, nesterov):
    lr, mu = 0.05, 0.9
    w, v, expected = w0.copy(), np.zeros(5), []
    for g in grads:
        v = mu * v - lr * g
        w = w + (mu * v - lr * g if nesterov else v)
        expected.append(w)
    got = run(optimizers.SGD(lr, momentum=mu, nesterov=nesterov), grads, w0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam(grads, w0, amsgrad):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    w, m, v, vhat, expected = w0.copy(), np.zeros(5), np.zeros(5), np.zeros(5), []
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vhat = np.maximum(vhat, v)
        denom = np.sqrt(vhat if amsgrad else v)
        w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (denom + eps)
        expected.append(w)
    got = run(optimizers.Adam(lr, amsgrad=amsgrad), grads, w0)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("momentum,centered", [(0.0, False), (0.5, False), (0.0, True)])
def test_rmsprop(grads, w0, momentum, centered):
    lr, rho, eps = 0.01, 0.9, 1e-7
    w, v, mg, mom, expected = w0.copy(), np.zeros(5), np.zeros(5), np.zeros(5), []
    for g in grads:
        v = rho * v + (1 - rho) * g * g
        mg = rho * mg + (1 - rho) * g
        denom = v - mg * mg if centered else v
        step = lr * g / np.sqrt(denom + eps)
        if momentum:
            mom = momentum * mom + step
            step = mom
        w = w - step
        expected.append(w)
    got = run(optimizers.RMSprop(lr, momentum=momentum, centered=centered), grads, w0)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_float32_parameters_stay_float32(grads):
    w = Tensor(np.ones(5, np.float32), requires_grad=True)
    w.grad = grads[0]  # float64 gradient
    optimizers.Adam().step([w])
    assert w.dtype == np.float32


# ------------------------------------------------------------ schedules


def test_exponential_decay():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == 0.1 and math.isclose(s(10), 0.05) and math.isclose(s(5), 0.1 * 0.5**0.5)
    st = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert st(9) == 0.1 and math.isclose(st(10), 0.05) and math.isclose(st(25), 0.025)


def test_piecewise_constant_decay():
    s = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(0), s(10), s(11), s(20), s(21), s(1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="one more value than boundaries"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0])


def test_cosine_decay():
    s = schedules.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert s(0) == 1.0
    assert math.isclose(s(50), 0.1 + 0.9 * 0.5)
    assert math.isclose(s(100), 0.1) and math.isclose(s(500), 0.1)
    w = schedules.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=5)
    assert (
        math.isclose(w(0), 0.0)
        and math.isclose(w(5), 1.0)
        and math.isclose(w(15), 0.0, abs_tol=1e-12)
    )


def test_optimizer_follows_its_schedule(w0):
    s = schedules.PiecewiseConstantDecay([1], [1.0, 0.1])
    grads = [np.ones(5)] * 3
    got = run(optimizers.SGD(s), grads, w0)
    # steps 0 and 1 use 1.0, step 2 uses 0.1 (the schedule sees updates done so far)
    np.testing.assert_allclose(got[-1], w0 - 1.0 - 1.0 - 0.1)


# ------------------------------------------------------------ clipping


def test_clipnorm_clipvalue_global_clipnorm():
    g = np.array([3.0, 4.0])  # norm 5
    w0 = np.zeros(2)
    np.testing.assert_allclose(run(optimizers.SGD(1.0, clipnorm=1.0), [g], w0)[0], -g / 5)
    np.testing.assert_allclose(run(optimizers.SGD(1.0, clipnorm=10.0), [g], w0)[0], -g)
    np.testing.assert_allclose(run(optimizers.SGD(1.0, clipvalue=3.5), [g], w0)[0], [-3.0, -3.5])
    a, b = Tensor(np.zeros(2), requires_grad=True), Tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    optimizers.SGD(1.0, global_clipnorm=1.0).step([a, b])
    np.testing.assert_allclose(np.concatenate([a.numpy(), b.numpy()]), [-0.6, 0.0, -0.8])
    with pytest.raises(ValueError, match="only one of clipnorm"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


# ------------------------------------------------------------ custom-loop face


def test_custom_loop_zero_grad_step_minimises_a_quadratic():
    w = Tensor(np.array([5.0, -3.0]), requires_grad=True)
    opt = optimizers.Adam(0.1, params=[w])
    for _ in range(300):
        opt.zero_grad()
        loss = ((w - np.array([1.0, 2.0])) ** 2).sum()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), [1.0, 2.0], atol=1e-3)
    assert opt.iterations == 300
    opt.zero_grad()
    assert w.grad is None


def test_apply_gradients_keras_style(w0):
    w = Tensor(w0.copy(), requires_grad=True)
    opt = optimizers.SGD(0.5)
    opt.apply_gradients(zip([np.ones(5)], [w]))
    np.testing.assert_allclose(w.numpy(), w0 - 0.5)


def test_step_skips_parameters_without_gradients(w0):
    a, b = Tensor(w0.copy(), requires_grad=True), Tensor(w0.copy(), requires_grad=True)
    a.grad = np.ones(5)
    optimizers.SGD(1.0, params=[a, b]).step()
    np.testing.assert_allclose(a.numpy(), w0 - 1)
    np.testing.assert_array_equal(b.numpy(), w0)


@pytest.mark.parametrize("make", ["fortran", "readonly", "strided"])
@pytest.mark.parametrize(
    "opt",
    [
        lambda: optimizers.SGD(0.1, momentum=0.9),
        lambda: optimizers.Adam(0.01),
        lambda: optimizers.RMSprop(0.01),
    ],
)
def test_parameters_not_c_ordered_or_read_only_are_updated(rng, make, opt):
    base = rng.standard_normal((6, 4))
    if make == "fortran":
        data = np.asfortranarray(base)
    elif make == "readonly":
        data = base.copy()
        data.flags.writeable = False
    else:
        data = np.repeat(base, 2, axis=1)[:, ::2]
    g = rng.standard_normal((6, 4))
    w, ref = Tensor(data, requires_grad=True), Tensor(base.copy(), requires_grad=True)
    o, o_ref = opt(), opt()
    for _ in range(3):
        w.grad, ref.grad = g.copy(), g.copy()
        o.step([w])
        o_ref.step([ref])
    np.testing.assert_array_equal(w.numpy(), ref.numpy())
    assert not np.array_equal(w.numpy(), base)


def test_state_round_trip(grads, w0):
    a = optimizers.Adam(0.01)
    w = Tensor(w0.copy(), requires_grad=True)
    for g in grads[:3]:
        w.grad = g
        a.step([w])
    iterations, state = a.get_state([w])
    b = optimizers.Adam.from_config(a.get_config())
    w2 = Tensor(w.numpy().copy(), requires_grad=True)
    b.set_state([w2], iterations, state)
    for g in grads[3:]:
        w.grad, w2.grad = g, g
        a.step([w])
        b.step([w2])
    np.testing.assert_array_equal(w.numpy(), w2.numpy())


def test_optimizer_errors():
    with pytest.raises(ValueError, match=r"learning_rate must be a finite number in \(0, inf\)"):
        optimizers.SGD(-0.1)
    with pytest.raises(ValueError, match="no parameters"):
        optimizers.SGD().step()
    with pytest.raises(TypeError, match="pass the parameters as params"):
        optimizers.Adam([Tensor(np.ones(2))])
    with pytest.raises(ValueError, match="unknown optimizer 'adamw2'"):
        optimizers.get("adamw2")
    w = Tensor(np.ones(3), requires_grad=True)
    w.grad = np.ones(2)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\)"):
        optimizers.SGD().step([w])


# ------------------------------------------------------------ settings that break training


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: optimizers.SGD(v), "learning_rate"),
        (lambda v: optimizers.SGD(clipnorm=v), "clipnorm"),
        (lambda v: optimizers.SGD(clipvalue=v), "clipvalue"),
        (lambda v: optimizers.Adam(global_clipnorm=v), "global_clipnorm"),
        (lambda v: optimizers.Adam(epsilon=v), "epsilon"),
        (lambda v: optimizers.RMSprop(epsilon=v), "epsilon"),
    ],
)
@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), float("inf")])
def test_positive_settings_refuse_zero_negative_and_non_finite(make, name, value):
    with pytest.raises(ValueError, match=rf"{name} must be a finite number in \(0, inf\)"):
        make(value)


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda v: optimizers.SGD(momentum=v), "momentum"),
        (lambda v: optimizers.Adam(beta_1=v), "beta_1"),
        (lambda v: optimizers.Adam(beta_2=v), "beta_2"),
        (lambda v: optimizers.RMSprop(rho=v), "rho"),
        (lambda v: optimizers.RMSprop(momentum=v), "momentum"),
    ],
)
@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan")])
def test_decay_factors_must_be_in_zero_one(make, name, value):
    # beta_1 = 1 divides by 1 - beta_1^t = 0; rho = 1 never updates the average
    with pytest.raises(ValueError, match=rf"{name} must be a finite number in \[0, 1\)"):
        make(value)


@pytest.mark.parametrize("value", ["0.1", None, True, np.ones(2), 1j])
def test_settings_that_are_not_numbers_are_type_errors(value):
    with pytest.raises(TypeError, match="learning_rate must be a number"):
        optimizers.Adam(learning_rate=value)
    with pytest.raises(TypeError, match="beta_1 must be a number"):
        optimizers.Adam(beta_1=value if value is not None else "x")


def test_settings_are_checked_when_changed_later():
    opt = optimizers.Adam(1e-3)
    for attr, value in [("learning_rate", -1e-3), ("beta_1", 1.0), ("clipnorm", -1.0)]:
        with pytest.raises(ValueError, match=attr):
            setattr(opt, attr, value)
    assert opt.learning_rate == 1e-3 and opt.beta_1 == 0.9 and opt.clipnorm is None
    opt.learning_rate = 2e-3  # a valid change is taken
    assert opt.current_learning_rate == 2e-3


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: schedules.ExponentialDecay(-0.1, 10, 0.9), "initial_learning_rate"),
        (lambda: schedules.ExponentialDecay(0.1, 10, -0.5), "decay_rate"),  # complex rates
        (lambda: schedules.ExponentialDecay(0.1, 0, 0.9), "decay_steps"),
        (lambda: schedules.PiecewiseConstantDecay([10], [0.1, -0.1]), "values"),
        (lambda: schedules.PiecewiseConstantDecay([10, 5], [0.1, 0.1, 0.1]), "increase"),
        (lambda: schedules.CosineDecay(0.1, 10, alpha=2.0), "alpha"),  # the rate would grow
        (lambda: schedules.CosineDecay(0.1, 10, warmup_target=-1.0, warmup_steps=5), "warmup"),
        (lambda: schedules.CosineDecay(float("nan"), 10), "initial_learning_rate"),
    ],
)
def test_schedules_refuse_arguments_that_yield_bad_rates(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), 1j, "0.1", None])
def test_a_rate_a_schedule_yields_is_checked_when_used(bad):
    w = Tensor(np.ones(2), requires_grad=True)
    opt = optimizers.SGD(lambda step: 0.1 if step < 2 else bad, params=[w])
    for _ in range(2):
        w.grad = np.ones(2)
        opt.step()
    before = w.numpy().copy()
    w.grad = np.ones(2)
    with pytest.raises(
        ValueError, match=r"schedule <lambda> at step 2 must be a finite number >= 0"
    ):
        opt.step()
    np.testing.assert_array_equal(w.numpy(), before)  # nothing was applied


def test_a_schedule_may_decay_to_zero():
    w = Tensor(np.ones(2), requires_grad=True)
    opt = optimizers.SGD(schedules.CosineDecay(0.1, 2), params=[w])
    for _ in range(4):
        w.grad = np.ones(2)
        opt.step()
    assert opt.current_learning_rate == 0.0


def test_a_parameter_listed_twice_is_refused_naming_it():
    w = Tensor(np.ones(2, np.float32), requires_grad=True)
    w.name = "dense/kernel"
    with pytest.raises(ValueError, match=r"'dense/kernel' twice \(positions 0 and 2\)"):
        optimizers.SGD(0.1, params=[w, Tensor(np.ones(1), requires_grad=True), w])
    opt = optimizers.SGD(0.1)
    with pytest.raises(ValueError, match="twice"):
        opt.params = [w, w]
    w.grad = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="twice"):
        opt.step([w, w])
    with pytest.raises(ValueError, match="twice"):
        opt.apply_gradients([(np.ones(2), w), (np.ones(2), w)])
    np.testing.assert_array_equal(w.numpy(), 1)  # never stepped
    with pytest.raises(TypeError, match="params must be Tensors, got ndarray at position 0"):
        optimizers.SGD(0.1, params=[np.ones(2)])


def test_set_state_refuses_bad_arrays_and_counts():
    w = Tensor(np.ones(3), requires_grad=True)
    opt = optimizers.Adam()
    with pytest.raises(TypeError, match="expected a floating-point array"):
        opt.set_state([w], 1, [np.ones(3, bool), np.ones(3)])
    with pytest.raises(ValueError, match=r"has shape \(\), expected \(3,\)"):
        opt.set_state([w], 1, [np.float64(0.5), np.ones(3)])  # never broadcast
    with pytest.raises(ValueError, match="iterations must be >= 0"):
        opt.set_state([w], -1, [np.ones(3), np.ones(3)])


def test_adamw_decays_the_weights_before_each_adam_update(grads, w0):
    lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-7
    w, m, v, expected = w0.copy(), np.zeros(5), np.zeros(5), []
    for t, g in enumerate(grads, start=1):
        w = w - w * wd * lr
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        expected.append(w)
    np.testing.assert_allclose(run(optimizers.AdamW(lr, weight_decay=wd), grads, w0), expected,
                               rtol=1e-10)  # fmt: skip
    assert optimizers.AdamW().weight_decay == 0.004
    assert optimizers.get("adamw").get_config()["weight_decay"] == 0.004
    # weight_decay on any optimizer, as Keras 3's base class takes it
    sgd = run(optimizers.SGD(lr, weight_decay=wd), grads, w0)
    w = w0.copy()
    for g in grads:
        w = (w - w * wd * lr) - lr * g
    np.testing.assert_allclose(sgd[-1], w, rtol=1e-12)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.Adam(weight_decay=-1.0)


def test_adamw_matches_keras(rng):
    keras = pytest.importorskip("keras")
    import dlcore
    from dlcore import layers

    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    km = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    km.compile(optimizer=keras.optimizers.AdamW(0.05, weight_decay=0.1), loss="mse")
    dm = dlcore.Sequential([layers.Input((3,)), layers.Dense(2)])
    dm.compile(optimizer=optimizers.AdamW(0.05, weight_decay=0.1), loss="mse")
    dm.set_weights(km.get_weights())
    for _ in range(4):
        np.testing.assert_allclose(dm.train_on_batch(x, y), km.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(dm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32 over 4 steps
