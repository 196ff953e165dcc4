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


def check_tensor_op(fn, *arrays, seed=0, rtol=1e-5, atol=1e-7, eps=1e-6):
    """Checks the autograd gradients of ``fn(*tensors)`` against finite differences.

    fn maps dlcore Tensors to a Tensor (or a tuple of Tensors) of any shape; the loss
    differentiated is sum(out * w) with fixed random weights w, so every output element
    and every input element is checked. arrays: float64 inputs.
    """
    from dlcore import Tensor

    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    rng = np.random.default_rng(seed)
    outs = fn(*[Tensor(a) for a in arrays])
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    weights = [rng.standard_normal(np.shape(o.data)) for o in outs]

    def loss_of(tensors):
        res = fn(*tensors)
        res = res if isinstance(res, (tuple, list)) else (res,)
        total = None
        for o, w in zip(res, weights):
            term = (o * w).sum()
            total = term if total is None else total + term
        return total

    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    loss_of(tensors).backward()
    for i, (a, t) in enumerate(zip(arrays, tensors)):
        numeric = numerical_grad(lambda: float(loss_of([Tensor(x) for x in arrays]).data), a, eps)
        assert t.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(
            t.grad, numeric, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}"
        )


def check_layer(layer, x, training=False, seed=0, rtol=1e-5, atol=1e-7, eps=1e-6, wrt_input=True):
    """Checks a float64 layer's gradients with respect to its input (unless not
    ``wrt_input``: indices, say) and each trainable weight against finite differences of
    sum(layer(x) * w), w fixed random weights. The weights' own arrays are perturbed in
    place (and restored)."""
    from dlcore import Tensor

    x = np.array(x, dtype=np.float64 if wrt_input else None)
    w_out = np.random.default_rng(seed).standard_normal(np.shape(layer(Tensor(x)).data))

    def loss():
        return float((layer(Tensor(x), training=training).data * w_out).sum())

    xt = Tensor(x, requires_grad=wrt_input)
    weights = layer.trainable_weights
    for w in weights:
        w.grad = None
    (layer(xt, training=training) * w_out).sum().backward()
    checked = [("input", x, xt.grad)] if wrt_input else []
    for name, array, analytic in checked + [(w.name, w.data, w.grad) for w in weights]:
        assert analytic is not None, f"{name} got no gradient"
        np.testing.assert_allclose(analytic, numerical_grad(loss, array, eps), rtol=rtol,
                                   atol=atol, err_msg=f"gradient of {name}")  # fmt: skip
