"""Matrix products: ``matmul`` and ``linear`` (a Dense layer's product and bias), both
on the GEMM kernel."""

from __future__ import annotations

import numpy as np

from dlcore import ops
from dlcore.tensor import as_tensor, record

from .elementwise import unbroadcast

__all__ = ["linear", "matmul"]


def linear_data(x, kernel, bias=None):
    """Arrays x (..., K) @ kernel (K, N) (+ bias (N,)) as one GEMM over the flattened
    leading axes: the values of :func:`linear`, without a graph."""
    y = ops.gemm(x.reshape(-1, x.shape[-1]), kernel)
    if bias is not None:
        y += bias  # the bias joins in place: no second output array
    return y.reshape(*x.shape[:-1], kernel.shape[1])


def linear_backward_data(g, x, kernel, need_dx, need_dkernel, need_dbias):
    """The gradients (dx, dkernel, dbias) of :func:`linear_data` for the output
    gradient g, each None where it is not needed: one GEMM backward over the flattened
    leading axes, and the bias's as g's sum over them."""
    dy = g.reshape(-1, kernel.shape[1])
    dx, dk = ops.gemm_backward(
        dy, x.reshape(-1, x.shape[-1]), kernel, need_da=need_dx, need_db=need_dkernel
    )
    return (
        None if dx is None else dx.reshape(x.shape),
        dk,
        dy.sum(axis=0) if need_dbias else None,
    )


def _gemm_last_axis(x, kernel, bias):
    """x (..., K) @ kernel (K, N) (+ bias (N,)) as one GEMM over the flattened leading
    axes. Returns the output array and its backward."""
    xd = x.data
    y = linear_data(xd, kernel.data, None if bias is None else bias.data)

    def backward(g):
        need_db = bias is not None and bias.requires_grad
        dx, dk, db = linear_backward_data(
            g[0], xd, kernel.data, x.requires_grad, kernel.requires_grad, need_db
        )
        return (dx, dk) if bias is None else (dx, dk, db)

    return y, backward


def linear(x, kernel, bias=None):
    """x (..., in) @ kernel (in, out) + bias (out,): a Dense layer without activation."""
    x, kernel = as_tensor(x), as_tensor(kernel)
    bias = None if bias is None else as_tensor(bias)
    y, backward = _gemm_last_axis(x, kernel, bias)
    inputs = (x, kernel) if bias is None else (x, kernel, bias)
    return record(y, inputs, backward, "linear")


def matmul(a, b):
    """a @ b. 2-D products (and (..., K) @ (K, N)) run on the GEMM kernel; others on
    NumPy's matmul with its broadcasting."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim >= 2 and b.ndim == 2:
        y, backward = _gemm_last_axis(a, b, None)
        y = y.astype(np.result_type(a.dtype, b.dtype), copy=False)
        return record(y, (a, b), backward, "matmul")
    ad, bd = a.data, b.data

    def backward(g):
        a2 = ad[None, :] if ad.ndim == 1 else ad
        b2 = bd[:, None] if bd.ndim == 1 else bd
        g2 = g[0]
        if ad.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if bd.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        da = g2 @ np.swapaxes(b2, -1, -2)
        db = np.swapaxes(a2, -1, -2) @ g2
        if ad.ndim == 1:
            da = da[..., 0, :]
        if bd.ndim == 1:
            db = db[..., 0]
        return unbroadcast(da, ad.shape), unbroadcast(db, bd.shape)

    return record(np.matmul(ad, bd), (a, b), backward, "matmul")
