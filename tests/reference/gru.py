"""Step-by-step GRU in float64 NumPy, Keras' layout and gate order (z, r, h).

reset_after=True (Keras 3's default and torch.nn.GRU's formulation), bias (2, 3U):
    x_z, x_r, x_h = x_t kernel + bias[0];  h_z, h_r, h_h = h_{t-1} recurrent_kernel + bias[1]
    z = sigmoid(x_z + h_z), r = sigmoid(x_r + h_r), n = tanh(x_h + r * h_h)
reset_after=False, bias (3U,): the reset gate applies before the candidate's product:
    n = tanh(x_h + (r * h_{t-1}) recurrent_kernel[:, 2U:])
and h_t = z h_{t-1} + (1 - z) n. A masked step (mask[n, t] false) carries h_{t-1}
through and outputs it.
"""

import numpy as np

from .lstm import _f64, _sigmoid, step_mask


def gru_forward(x, h0, kernel, recurrent_kernel, bias, reset_after=True, mask=None):
    """Returns (y, h_n, saved); saved is what gru_backward needs."""
    x, kernel, rec, bias = (np.asarray(a, np.float64) for a in (x, kernel, recurrent_kernel, bias))
    N, T, _ = x.shape
    U = rec.shape[0]
    live = step_mask(mask, N, T)
    b_x, b_h = (bias[0], bias[1]) if reset_after else (bias, np.zeros(3 * U))
    h = _f64(h0, (N, U))
    y = np.zeros((N, T, U))
    steps = []
    for t in range(T):
        gx = x[:, t] @ kernel + b_x
        h_prev = h
        if reset_after:
            gh = h_prev @ rec + b_h
            z = _sigmoid(gx[:, :U] + gh[:, :U])
            r = _sigmoid(gx[:, U : 2 * U] + gh[:, U : 2 * U])
            hh = gh[:, 2 * U :]
            n = np.tanh(gx[:, 2 * U :] + r * hh)
        else:
            gh = h_prev @ rec[:, : 2 * U]
            z = _sigmoid(gx[:, :U] + gh[:, :U])
            r = _sigmoid(gx[:, U : 2 * U] + gh[:, U:])
            hh = r * h_prev
            n = np.tanh(gx[:, 2 * U :] + hh @ rec[:, 2 * U :])
        m = live[:, t, None]
        h = np.where(m, z * h_prev + (1 - z) * n, h_prev)
        y[:, t] = h
        steps.append((x[:, t], h_prev, z, r, n, hh, m))
    return y, h, (steps, kernel, rec, reset_after)


def gru_backward(dy, dh_n, saved):
    """Returns (dx, dh0, dkernel, drecurrent_kernel, dbias), dbias shaped as the bias."""
    steps, kernel, rec, reset_after = saved
    N, U = steps[0][1].shape
    T = len(steps)
    dy = _f64(dy, (N, T, U))
    dh = _f64(dh_n, (N, U)).copy()
    dx = np.zeros((N, T, kernel.shape[0]))
    dkernel, drec = np.zeros_like(kernel), np.zeros_like(rec)
    db_x, db_h = np.zeros(3 * U), np.zeros(3 * U)
    for t in reversed(range(T)):
        x_t, h_prev, z, r, n, hh, m = steps[t]
        dh = dh + dy[:, t]
        dh_live = np.where(m, dh, 0.0)
        da_n = dh_live * (1 - z) * (1 - n**2)
        da_z = dh_live * (h_prev - n) * z * (1 - z)
        if reset_after:
            da_r = da_n * hh * r * (1 - r)
            dgh = np.concatenate([da_z, da_r, da_n * r], axis=1)
            drec += h_prev.T @ dgh
            db_h += dgh.sum(axis=0)
            dh_prev = dgh @ rec.T
        else:
            d_hh = da_n @ rec[:, 2 * U :].T
            da_r = d_hh * h_prev * r * (1 - r)
            drec[:, : 2 * U] += h_prev.T @ np.concatenate([da_z, da_r], axis=1)
            drec[:, 2 * U :] += hh.T @ da_n
            dh_prev = np.concatenate([da_z, da_r], axis=1) @ rec[:, : 2 * U].T + d_hh * r
        dgx = np.concatenate([da_z, da_r, da_n], axis=1)
        dx[:, t] = dgx @ kernel.T
        dkernel += x_t.T @ dgx
        db_x += dgx.sum(axis=0)
        dh = np.where(m, dh * z + dh_prev, dh)
    dbias = np.stack([db_x, db_h]) if reset_after else db_x
    return dx, dh, dkernel, drec, dbias
