"""The autograd engine against PyTorch on random graphs (hypothesis).

Each example draws a program: leaves of random dtypes (float32/float64 leaves that
require grad; int, uint8 and bool constants), then a few operations on earlier nodes
(element-wise maths with broadcasting, Python numbers on either side, reductions,
slices), with nodes reused so that gradients fan out and meet. The program runs on
dlcore, on PyTorch and on NumPy:

- values match PyTorch's;
- dtypes match the rules of ``dlcore.functional.elementwise``: NumPy's between
  arrays, PyTorch's for a Python number meeting a Tensor (the NumPy run applies that
  rule to its Python numbers, see :class:`Ref`);
- ``backward(g)`` called twice with the same array ``g`` accumulates exactly what
  PyTorch accumulates, and leaves ``g`` untouched and unshared.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlcore import Tensor

torch = pytest.importorskip("torch")

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

FLOATS = ("float32", "float64")
CONSTANT_DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")


# ---------------------------------------------------------------- three backends


class Ref:
    """A NumPy array whose arithmetic with a Python number follows dlcore's documented
    rule (the number takes a floating array's dtype; a float meeting an integer or bool
    array makes both float32; an int meeting a bool array is int64); array with array
    is plain NumPy."""

    __array_priority__ = 1000

    def __init__(self, a):
        self.a = np.asarray(a)

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)

    def _pair(self, other):
        if isinstance(other, Ref):
            return self.a, other.a
        a, kind = self.a, self.a.dtype.kind
        if kind == "f":
            return a, np.asarray(other, a.dtype)
        if isinstance(other, float):
            return a.astype(np.float32), np.asarray(other, np.float32)
        if kind == "b" and not isinstance(other, bool):
            return a, np.asarray(other, np.int64)
        return a, np.asarray(other, a.dtype)

    def _binary(op, reflected=False):
        def method(self, other):
            a, b = self._pair(other)
            return Ref(op(b, a) if reflected else op(a, b))

        return method

    __add__, __radd__ = _binary(np.add), _binary(np.add, True)
    __sub__, __rsub__ = _binary(np.subtract), _binary(np.subtract, True)
    __mul__, __rmul__ = _binary(np.multiply), _binary(np.multiply, True)
    __truediv__, __rtruediv__ = _binary(np.true_divide), _binary(np.true_divide, True)
    __pow__ = _binary(np.power)

    def __neg__(self):
        return Ref(-self.a)

    def __getitem__(self, index):
        return Ref(self.a[index])


class NumpyBackend:
    leaf = staticmethod(lambda array, grad: Ref(array.copy()))
    tanh = staticmethod(lambda x: Ref(np.tanh(x.a)))
    sigmoid = staticmethod(lambda x: Ref(np.exp(-np.logaddexp(0, -x.a))))
    relu = staticmethod(lambda x: Ref(np.maximum(x.a, 0)))
    exp = staticmethod(lambda x: Ref(np.exp(x.a)))
    log = staticmethod(lambda x: Ref(np.log(x.a)))
    sqrt = staticmethod(lambda x: Ref(np.sqrt(x.a)))
    abs = staticmethod(lambda x: Ref(np.abs(x.a)))
    sum = staticmethod(lambda x, axis=None: Ref(x.a.sum(axis=axis, keepdims=axis is not None)))
    mean = staticmethod(lambda x, axis: Ref(x.a.mean(axis=axis, keepdims=True)))
    amax = staticmethod(lambda x, axis: Ref(x.a.max(axis=axis, keepdims=True)))
    matmul = staticmethod(lambda a, b: Ref(a.a @ b.a))

    @staticmethod
    def softmax(x):
        e = np.exp(x.a - x.a.max(axis=-1, keepdims=True))
        return Ref(e / e.sum(axis=-1, keepdims=True))


class DlcoreBackend:  # the Tensor's methods (API.md)
    leaf = staticmethod(lambda array, grad: Tensor(array.copy(), requires_grad=grad))
    tanh = staticmethod(lambda x: x.tanh())
    sigmoid = staticmethod(lambda x: x.sigmoid())
    relu = staticmethod(lambda x: x.relu())
    exp = staticmethod(lambda x: x.exp())
    log = staticmethod(lambda x: x.log())
    sqrt = staticmethod(lambda x: x.sqrt())
    abs = staticmethod(lambda x: x.abs())
    sum = staticmethod(lambda x, axis=None: x.sum(axis=axis, keepdims=axis is not None))
    mean = staticmethod(lambda x, axis: x.mean(axis=axis, keepdims=True))
    amax = staticmethod(lambda x, axis: x.max(axis=axis, keepdims=True))
    softmax = staticmethod(lambda x: x.softmax(axis=-1))
    matmul = staticmethod(lambda a, b: a @ b)


class TorchBackend:
    leaf = staticmethod(lambda array, grad: torch.tensor(array.copy(), requires_grad=grad))
    tanh = staticmethod(lambda x: torch.tanh(x))
    sigmoid = staticmethod(lambda x: torch.sigmoid(x))
    relu = staticmethod(lambda x: torch.relu(x))
    exp, log, sqrt, abs = (
        staticmethod(lambda x, f=f: f(x)) for f in (torch.exp, torch.log, torch.sqrt, torch.abs)
    )
    mean = staticmethod(lambda x, axis: x.mean(dim=axis, keepdim=True))
    amax = staticmethod(lambda x, axis: torch.amax(x, dim=axis, keepdim=True))
    softmax = staticmethod(lambda x: torch.softmax(x, dim=-1))
    matmul = staticmethod(lambda a, b: a @ b)

    @staticmethod
    def sum(x, axis=None):
        return x.sum() if axis is None else x.sum(dim=axis, keepdim=True)


# ---------------------------------------------------------------- the operations
# Each is written once, over a backend B; the compound ones keep values in a range
# where float32 stays accurate (exp of a tanh, log of |x| + 1, a divisor >= 1).

UNARY_FLOAT = {
    "tanh": lambda B, x: B.tanh(x),
    "sigmoid": lambda B, x: B.sigmoid(x),
    "relu": lambda B, x: B.relu(x),
    "exp_tanh": lambda B, x: B.exp(B.tanh(x)),
    "log1p_abs": lambda B, x: B.log(B.abs(x) + 1.0),
    "sqrt_sq1": lambda B, x: B.sqrt(x * x + 1.0),
    "neg": lambda B, x: -x,
}
BINARY = {
    "add": lambda B, a, b: a + b,
    "sub": lambda B, a, b: a - b,
    "mul": lambda B, a, b: a * b,
    "div": lambda B, a, b: a / (b * b + 1.0),
}
BINARY_FLOAT = {"pow": lambda B, a, b: (B.abs(a) + 0.5) ** B.tanh(b)}
WITH_NUMBER = {
    "add": lambda B, x, s: x + s,
    "radd": lambda B, x, s: s + x,
    "sub": lambda B, x, s: x - s,
    "rsub": lambda B, x, s: s - x,
    "mul": lambda B, x, s: x * s,
    "rmul": lambda B, x, s: s * x,
    "div": lambda B, x, s: x / s,
}
FLOAT_WITH_NUMBER = {
    "rdiv": lambda B, x, s: s / (x * x + 1.0),
    "pow": lambda B, x, s: (B.abs(x) + 0.5) ** s,
}


def apply(B, step, nodes):
    kind, name, args, extra = step
    xs = [nodes[i] for i in args]
    if kind == "unary":
        return UNARY_FLOAT[name](B, *xs)
    if kind == "binary":
        return {**BINARY, **BINARY_FLOAT}[name](B, *xs)
    if kind == "number":
        return {**WITH_NUMBER, **FLOAT_WITH_NUMBER}[name](B, xs[0], extra)
    if kind == "reduce":
        return getattr(B, name)(xs[0], extra) if name != "sum_all" else B.sum(xs[0])
    if kind == "softmax":
        return B.softmax(xs[0])
    if kind == "slice":
        axis, start = extra
        return xs[0][(slice(None),) * axis + (slice(start, start + 1),)]
    raise AssertionError(kind)


def run(B, program):
    leaves = [B.leaf(array, grad) for array, grad in program["leaves"]]
    nodes = list(leaves)
    for step in program["steps"]:
        nodes.append(apply(B, step, nodes))
    return leaves, nodes


# ---------------------------------------------------------------- drawing programs

LIMIT = 1e3  # a step whose values leave [-LIMIT, LIMIT] is not taken: no overflow anywhere


@st.composite
def programs(draw):
    """Leaves and steps; every node's shape broadcasts to one base shape. The steps
    run on NumPy as they are drawn, which gives each node's dtype and range."""
    base = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))

    def sub_shape(min_rank):
        rank = draw(st.integers(min_rank, len(base)))
        dims = base[len(base) - rank :]
        return tuple(d if draw(st.booleans()) else 1 for d in dims)

    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    leaves = []
    for i in range(draw(st.integers(1, 4))):
        grad = i == 0 or draw(st.booleans())
        dtype = np.dtype(draw(st.sampled_from(FLOATS if grad else CONSTANT_DTYPES)))
        # integer leaves have an axis: 0-d integer arithmetic is NumPy scalar arithmetic
        shape = sub_shape(0 if dtype.kind == "f" else 1)
        if dtype.kind == "f":  # float32-exact values: both frameworks start alike
            array = rng.uniform(-2, 2, shape).astype(np.float32).astype(dtype)
        else:
            array = rng.integers(0, 2 if dtype.kind == "b" else 4, shape).astype(dtype)
        leaves.append((array, grad))

    values = [Ref(a) for a, _ in leaves]
    steps = []
    for _ in range(draw(st.integers(1, 9))):
        step = draw_step(draw, values)
        with np.errstate(all="ignore"):
            out = apply(NumpyBackend, step, values)
        if out.dtype.kind != "b" and not np.all(np.abs(out.a) <= LIMIT):
            continue
        steps.append(step)
        values.append(out)
    return {"leaves": leaves, "steps": steps}


def draw_step(draw, values):
    i = draw(st.integers(0, len(values) - 1))
    dtype, shape = values[i].dtype, values[i].shape
    is_float = dtype.kind == "f"
    kinds = ["binary", "number", "reduce"] + (["unary", "unary"] if is_float else [])
    if is_float and shape:
        kinds.append("softmax")
    if any(d > 1 for d in shape):
        kinds.append("slice")
    kind = draw(st.sampled_from(kinds))
    if kind == "unary":
        return ("unary", draw(st.sampled_from(sorted(UNARY_FLOAT))), (i,), None)
    if kind == "binary":
        j = draw(st.integers(0, len(values) - 1))
        other = values[j].dtype
        names = sorted(BINARY) + (sorted(BINARY_FLOAT) if is_float and other.kind == "f" else [])
        # bool - x is refused by both; an unsigned difference would wrap
        if "b" in (dtype.kind, other.kind) or np.result_type(dtype, other).kind == "u":
            names.remove("sub")
        return ("binary", draw(st.sampled_from(names)), (i, j), None)
    if kind == "number":
        return number_step(draw, i, dtype)
    if kind == "reduce":
        names = ["sum_all", "sum"] + (["mean", "amax"] if is_float else [])
        name = draw(st.sampled_from(names if shape else ["sum_all"]))
        axis = draw(st.integers(0, len(shape) - 1)) if name != "sum_all" else None
        return ("reduce", name, (i,), axis)
    if kind == "softmax":
        return ("softmax", "softmax", (i,), None)
    axis = draw(st.sampled_from([a for a, d in enumerate(shape) if d > 1]))
    return ("slice", "slice", (i,), (axis, draw(st.integers(0, shape[axis] - 1))))


def number_step(draw, i, dtype):
    """A Python int, float or bool on either side of node i."""
    names = sorted(WITH_NUMBER) + (sorted(FLOAT_WITH_NUMBER) if dtype.kind == "f" else [])
    if dtype.kind in "bu":  # bool - x is refused by both, unsigned - x would wrap
        names = [n for n in names if "sub" not in n]
    name = draw(st.sampled_from(names))
    low = 0 if dtype.kind in "bu" else -3  # NumPy 2 refuses -3 as a uint8
    number = draw(
        st.one_of(st.integers(low, 3), st.sampled_from([2.5, -0.75, 1 / 255, 3.0]), st.booleans())
    )
    if name in ("div", "rdiv") and not number:
        number = 2
    if name == "pow":
        number = draw(st.sampled_from([0.5, 2, 2.5, 3.0]))
    if isinstance(number, bool) and dtype.kind != "b" and name not in ("add", "mul"):
        number = int(number) + 1
    return ("number", name, (i,), number)


# ---------------------------------------------------------------- the test


def assert_close(got, expected, float32, scale, what):
    """Exact for integers; for floats within float32's (or float64's) precision of the
    program's largest magnitude, which cancellations carry into small results."""
    expected = np.asarray(expected)
    if expected.dtype.kind in "biu" and np.asarray(got).dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected, err_msg=what)
        return
    rtol = 1e-4 if float32 else 1e-9
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * max(1.0, scale), err_msg=what)


def magnitude(arrays):
    return max(
        (float(np.max(np.abs(np.asarray(a, np.float64)), initial=0)) for a in arrays), default=0
    )


@SETTINGS
@given(program=programs(), g_dtype=st.sampled_from(["same", "float32", "float64"]))
def test_random_graphs_match_pytorch(program, g_dtype):
    _, ref_nodes = run(NumpyBackend, program)
    leaves, nodes = run(DlcoreBackend, program)
    t_leaves, t_nodes = run(TorchBackend, program)
    any_float32 = any(a.dtype == np.float32 for a, _ in program["leaves"])
    scale = magnitude(n.a for n in ref_nodes)
    for k, (node, ref, t_node) in enumerate(zip(nodes, ref_nodes, t_nodes)):
        assert node.dtype == ref.dtype, f"node {k}: dtype {node.dtype}, the rules say {ref.dtype}"
        assert node.shape == tuple(t_node.shape), f"node {k}"
        float32 = any_float32 or t_node.dtype == torch.float32
        assert_close(node.numpy(), t_node.detach().numpy(), float32, scale, f"node {k} value")

    root, t_root = nodes[-1], t_nodes[-1]
    if not root.requires_grad:
        return
    assert t_root.requires_grad
    rng = np.random.default_rng(len(program["steps"]))
    g = rng.uniform(-1, 1, root.shape).astype(np.float32)
    g = g.astype(root.dtype if g_dtype == "same" else g_dtype)
    kept = g.copy()
    t_g = torch.tensor(g, dtype=t_root.dtype)
    for _ in range(2):  # the same array twice: gradients accumulate, g stays the caller's
        root.backward(g)
        t_root.backward(t_g, retain_graph=True)
        np.testing.assert_array_equal(g, kept, err_msg="backward changed the caller's grad")
    grads = [leaf.grad for leaf in leaves if leaf.grad is not None]
    scale = magnitude(t.grad.numpy() for t in t_leaves if t.grad is not None)
    for k, (leaf, t_leaf) in enumerate(zip(leaves, t_leaves)):
        if t_leaf.grad is None:
            assert leaf.grad is None, f"leaf {k} got a gradient PyTorch does not give"
            continue
        assert leaf.grad is not None, f"leaf {k} got no gradient"
        assert leaf.grad.dtype == leaf.dtype and leaf.grad.shape == leaf.shape
        assert not np.shares_memory(leaf.grad, g), f"leaf {k}.grad is the caller's array"
        assert sum(np.shares_memory(leaf.grad, other) for other in grads) == 1
        assert_close(leaf.grad, t_leaf.grad.numpy(), any_float32, scale, f"leaf {k} grad")


@settings(SETTINGS, max_examples=40)
@given(
    batch=st.lists(st.integers(1, 3), max_size=2),
    m=st.integers(1, 5),
    k=st.integers(1, 5),
    n=st.integers(1, 5),
    dtypes=st.tuples(st.sampled_from(FLOATS), st.sampled_from(FLOATS)),
    b_batched=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_matmul_with_broadcast_batches_matches_pytorch(batch, m, k, n, dtypes, b_batched, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (*batch, m, k)).astype(np.float32).astype(dtypes[0])
    b = rng.uniform(-1, 1, ((*batch, k, n) if b_batched else (k, n))).astype(np.float32)
    b = b.astype(dtypes[1])
    x, y = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    tx, ty = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    dtype = torch.float64 if "float64" in dtypes else torch.float32  # torch needs one dtype
    out, t_out = x @ y, tx.to(dtype) @ ty.to(dtype)
    float32 = "float32" in dtypes
    assert out.dtype == np.result_type(a, b)
    assert_close(out.numpy(), t_out.detach().numpy(), float32, k, "matmul value")
    g = rng.uniform(-1, 1, out.shape).astype(out.dtype)
    kept = g.copy()
    for _ in range(2):
        out.backward(g)
        t_out.backward(torch.tensor(g), retain_graph=True)
    np.testing.assert_array_equal(g, kept)
    assert_close(x.grad, tx.grad.numpy(), float32, 2 * n, "d a")
    assert_close(y.grad, ty.grad.numpy(), float32, 2 * m, "d b")


# ---------------------------------------------------------------- the rules, by example


@pytest.mark.parametrize(
    "array,number,expected",
    [
        (np.arange(4), 2.5, np.float32),  # an integer Tensor times a Python float
        (np.arange(4, dtype=np.uint8), 1 / 255, np.float32),  # an image scaled to [0, 1]
        (np.array([True, False]), 0.5, np.float32),
        (np.array([True, False]), 2, np.int64),
        (np.arange(4, dtype=np.int32), 2, np.int32),
        (np.arange(4, dtype=np.uint8), True, np.uint8),
        (np.ones(2, np.float32), 2.5, np.float32),
        (np.ones(2, np.float64), 2, np.float64),
    ],
)
def test_python_numbers_promote_as_pytorch_does(array, number, expected):
    for out, t_out in (
        (Tensor(array) * number, torch.tensor(array) * number),
        (number * Tensor(array), number * torch.tensor(array)),
    ):
        assert out.dtype == expected
        assert str(t_out.dtype) == f"torch.{np.dtype(expected).name}"
        np.testing.assert_allclose(out.numpy(), t_out.numpy(), rtol=1e-6)


def test_backward_of_a_leaf_copies_the_callers_array():
    x = Tensor(np.zeros(3, np.float32), requires_grad=True)
    g = np.ones(3, np.float32)
    x.backward(g)
    x.backward(g)
    assert x.grad is not g
    np.testing.assert_array_equal(g, 1)
    np.testing.assert_array_equal(x.grad, 2)
