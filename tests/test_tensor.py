import numpy as np
import pytest

import dlcore
from dlcore import Tensor, no_grad
from gradcheck import check_tensor_op


@pytest.fixture
def r(rng):
    return lambda *shape: rng.standard_normal(shape)


# ------------------------------------------------------------ gradients of every op


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [
        ((3, 4), (3, 4)),
        ((3, 4), (4,)),
        ((3, 1), (1, 4)),
        ((2, 3, 4), (3, 1)),
        ((), (2, 3)),
        ((5,), ()),
    ],
)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_ops_broadcast_gradients(r, op, shape_a, shape_b):
    a, b = r(*shape_a), r(*shape_b)
    if op == "div":
        b = np.abs(b) + 0.5
    fn = {
        "add": lambda x, y: x + y,
        "sub": lambda x, y: x - y,
        "mul": lambda x, y: x * y,
        "div": lambda x, y: x / y,
    }[op]
    check_tensor_op(fn, a, b)
    # the forward matches NumPy's broadcasting
    np.testing.assert_allclose(fn(Tensor(a), Tensor(b)).numpy(), fn(a, b))


@pytest.mark.parametrize(
    "name,fn,positive",
    [
        ("exp", lambda x: x.exp(), False),
        ("log", lambda x: x.log(), True),
        ("sqrt", lambda x: x.sqrt(), True),
        ("abs", lambda x: x.abs(), False),
        ("relu", lambda x: x.relu(), False),
        ("sigmoid", lambda x: x.sigmoid(), False),
        ("tanh", lambda x: x.tanh(), False),
        ("softmax", lambda x: x.softmax(), False),
        ("log_softmax", lambda x: x.log_softmax(), False),
        ("softmax0", lambda x: x.softmax(axis=0), False),
        ("neg", lambda x: -x, False),
        ("pow2", lambda x: x**2, False),
        ("pow_half", lambda x: x**0.5, True),
        ("rpow", lambda x: 2.0**x, False),
        ("scalar_ops", lambda x: 3 - 2 * x / 4 + 1, False),
        ("rdiv", lambda x: 1.0 / x, True),
        ("clip", lambda x: x.clip(-0.5, 0.5), False),
    ],
)
def test_unary_op_gradients(r, name, fn, positive):
    x = r(3, 5)
    x = np.abs(x) + 0.3 if positive else x + 0.05  # away from relu/abs/clip kinks at 0
    if name == "clip":
        x = np.where(np.abs(np.abs(x) - 0.5) < 0.05, x + 0.2, x)
    check_tensor_op(fn, x)


def test_unary_forward_values(r):
    x = r(4, 6)
    t = Tensor(x)
    np.testing.assert_allclose(t.sigmoid().numpy(), 1 / (1 + np.exp(-x)))
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(t.softmax().numpy(), e / e.sum(-1, keepdims=True))
    np.testing.assert_allclose(t.log_softmax().numpy(), np.log(e / e.sum(-1, keepdims=True)))
    np.testing.assert_allclose(t.relu().numpy(), np.maximum(x, 0))


def test_sigmoid_and_softmax_are_stable_for_huge_inputs():
    x = Tensor(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(x.sigmoid().numpy(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(x.softmax().numpy(), [0, 0, 1])
    assert np.isfinite(x.log_softmax().numpy()).all()


@pytest.mark.parametrize(
    "axis,keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, False)]
)
@pytest.mark.parametrize("op", ["sum", "mean", "max"])
def test_reduction_gradients(r, op, axis, keepdims):
    x = r(3, 4, 5)
    check_tensor_op(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), x)
    np.testing.assert_allclose(
        getattr(Tensor(x), op)(axis=axis, keepdims=keepdims).numpy(),
        getattr(x, op)(axis=axis, keepdims=keepdims),
    )


def test_max_splits_gradient_between_ties():
    x = Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0.5])


def test_shape_op_gradients(r):
    x = r(2, 3, 4)
    check_tensor_op(lambda t: t.reshape(6, 4), x)
    check_tensor_op(lambda t: t.reshape((4, -1)), x)
    check_tensor_op(lambda t: t.transpose(2, 0, 1), x)
    check_tensor_op(lambda t: t.T, x)
    check_tensor_op(lambda t: t.flatten(), x)


@pytest.mark.parametrize(
    "index",
    [
        (0,),
        (slice(1, 3),),
        (Ellipsis, 1),
        (slice(None), [0, 2, 2]),
        ([1, 1, 0],),
        (np.array([[True, False, True, False]] * 3).reshape(3, 4),),
    ],
)
def test_getitem_gradients(r, index):
    x = r(3, 4)
    idx = index[0] if len(index) == 1 else index
    check_tensor_op(lambda t: t[idx], x)
    np.testing.assert_array_equal(Tensor(x)[idx].numpy(), x[idx])


@pytest.mark.parametrize(
    "shape_a,shape_b",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 5)),
        ((4,), (4, 5)),
        ((3, 4), (4,)),
        ((2, 3, 4), (2, 4, 5)),
        ((1, 7), (7, 1)),
    ],
)
def test_matmul_gradients(r, shape_a, shape_b):
    a, b = r(*shape_a), r(*shape_b)
    check_tensor_op(lambda x, y: x @ y, a, b)
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).numpy(), a @ b, rtol=1e-12)


def test_matmul_float32_runs_on_the_gemm_kernel(r):
    a, b = r(8, 16).astype(np.float32), r(16, 4).astype(np.float32)
    out = Tensor(a) @ Tensor(b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), dlcore.ops.gemm(a, b))


def test_concatenate_gradients(r):
    from dlcore.functional import concatenate

    check_tensor_op(lambda a, b: concatenate([a, b], axis=1), r(2, 3), r(2, 4))


def test_a_tensor_used_twice_gets_both_contributions():
    x = Tensor(np.array([2.0]), requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0])  # d(x^2 + x) = 2x + 1


def test_gradients_accumulate_until_cleared():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_backward_through_a_deep_graph_has_no_recursion_limit():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(20000):
        y = y + 1e-4
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y.is_leaf
    assert (x * 2).requires_grad


def test_backward_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(np.ones(2)).backward()
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="only for a single-element tensor"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"grad has shape \(2,\), expected \(3,\)"):
        (x * 2).backward(np.ones(2))
    with pytest.raises(TypeError, match="requires_grad needs a floating-point dtype"):
        Tensor(np.arange(3), requires_grad=True)


def test_detach_and_comparisons():
    x = Tensor(np.array([1.0, -1.0]), requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad
    mask = x > 0
    assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal(mask.numpy(), [True, False])
    np.testing.assert_array_equal((x == 1.0).numpy(), [True, False])


def test_default_dtypes_and_numpy_interop():
    assert Tensor([1.0, 2.0]).dtype == np.float32  # Python floats: the default dtype
    assert Tensor(np.zeros(2)).dtype == np.float64  # arrays keep theirs
    assert Tensor([1, 2]).dtype == np.int64
    assert Tensor(np.float64(2.0)).dtype == np.float64  # NumPy scalars keep theirs
    assert Tensor([1.0], dtype="float64").dtype == np.float64
    t = Tensor(np.arange(4.0))
    np.testing.assert_array_equal(np.asarray(t), np.arange(4.0))
    out = np.ones(4) + t  # ndarray on the left defers to the Tensor
    assert isinstance(out, Tensor)
    assert (Tensor(np.float32(1)) * 2.5).dtype == np.float32  # Python scalars stay weak


def test_numpy_reads_a_reduction_as_a_zero_d_array():
    t = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    for scalar, value in ((t.sum(), 3.0), (t.mean(), 1.5), ((t * t).sum(), 5.0), (t[0], 1.0)):
        a = np.asarray(scalar)
        assert type(a) is np.ndarray and a.shape == () and a.dtype == np.float32
        assert a == value
        assert np.asarray(scalar, dtype=np.float64).dtype == np.float64
