import numpy as np
import pytest

from dlcore import ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (64, 26, 26, 32)])  # the last is parallel
def test_relu_matches_numpy(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    y = ops.relu(x)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dy = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(ops.relu_backward(dy, y), np.where(x > 0, dy, 0))


def test_relu_nan_and_layouts():
    x = np.array([np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf])
    np.testing.assert_array_equal(ops.relu(x), np.maximum(x, 0))  # NaN passes through
    m = np.arange(-6.0, 6.0).reshape(3, 4)
    np.testing.assert_array_equal(ops.relu(m.T), np.maximum(m.T, 0))  # non-contiguous
    assert ops.relu(np.arange(-2, 3)).dtype == np.float64  # int64 computes in float64


def test_relu_backward_errors():
    with pytest.raises(ValueError, match=r"'dy' has shape \(3,\) but 'y' has shape \(4,\)"):
        ops.relu_backward(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="argument 'x' must be an array, got None"):
        ops.relu(None)
