"""Float64 central-difference gradients, to check every backward kernel against."""

import numpy as np


def numerical_grad(f, x, eps=1e-6):
    """d f(x) / d x for a scalar function f of the float64 array x, by central differences.

    x is perturbed in place, one element at a time, and restored.
    """
    assert x.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_gradients(loss, inputs, analytic, rtol=1e-5, atol=1e-7):
    """Compares analytic gradients with finite differences of ``loss()``.

    inputs: dict name -> float64 array that loss() reads; analytic: dict name -> gradient.
    """
    for name, x in inputs.items():
        numeric = numerical_grad(loss, x)
        np.testing.assert_allclose(
            analytic[name], numeric, rtol=rtol, atol=atol, err_msg=f"gradient of {name}"
        )
