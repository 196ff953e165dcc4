"""Step-by-step LSTM in float64 NumPy, Keras' layout and gate order (i, f, c, o). A
masked step (mask[n, t] false) carries h and c through and outputs h_{t-1}, as Keras'
recurrent layers do."""

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _f64(a, shape):
    return np.zeros(shape) if a is None else np.asarray(a, np.float64)


def step_mask(mask, N, T):
    """The (N, T) boolean mask of the steps that run: all of them for None."""
    return np.ones((N, T), bool) if mask is None else np.asarray(mask).astype(bool)


def lstm_forward(x, h0, c0, kernel, recurrent_kernel, bias, mask=None):
    """Returns (y, h_n, c_n, saved); saved is what lstm_backward needs."""
    x, kernel, rec, bias = (np.asarray(a, np.float64) for a in (x, kernel, recurrent_kernel, bias))
    N, T, _ = x.shape
    U = rec.shape[0]
    live = step_mask(mask, N, T)
    h, c = _f64(h0, (N, U)), _f64(c0, (N, U))
    y = np.zeros((N, T, U))
    steps = []
    for t in range(T):
        z = x[:, t] @ kernel + h @ rec + bias
        i, f = _sigmoid(z[:, :U]), _sigmoid(z[:, U : 2 * U])
        g, o = np.tanh(z[:, 2 * U : 3 * U]), _sigmoid(z[:, 3 * U :])
        c_prev, h_prev = c, h
        c_new = f * c_prev + i * g
        m = live[:, t, None]
        c = np.where(m, c_new, c_prev)
        h = np.where(m, o * np.tanh(c_new), h_prev)
        y[:, t] = h
        steps.append((x[:, t], h_prev, c_prev, i, f, g, o, c_new, m))
    return y, h, c, (steps, kernel, rec)


def lstm_backward(dy, dh_n, dc_n, saved):
    """Returns (dx, dh0, dc0, dkernel, drecurrent_kernel, dbias)."""
    steps, kernel, rec = saved
    N, U = steps[0][1].shape
    T = len(steps)
    dy = _f64(dy, (N, T, U))
    dh, dc = _f64(dh_n, (N, U)).copy(), _f64(dc_n, (N, U)).copy()
    dx = np.zeros((N, T, kernel.shape[0]))
    dkernel, drec, dbias = np.zeros_like(kernel), np.zeros_like(rec), np.zeros(4 * U)
    for t in reversed(range(T)):
        x_t, h_prev, c_prev, i, f, g, o, c, m = steps[t]
        dh = dh + dy[:, t]
        tc = np.tanh(c)
        dc_t = np.where(m, dc + dh * o * (1 - tc**2), 0.0)
        dz = np.concatenate(
            [
                dc_t * g * i * (1 - i),
                dc_t * c_prev * f * (1 - f),
                dc_t * i * (1 - g**2),
                np.where(m, dh, 0.0) * tc * o * (1 - o),
            ],
            axis=1,
        )
        dx[:, t] = dz @ kernel.T
        dkernel += x_t.T @ dz
        drec += h_prev.T @ dz
        dbias += dz.sum(axis=0)
        dh = np.where(m, dz @ rec.T, dh)
        dc = np.where(m, dc_t * f, dc)
    return dx, dh, dc, dkernel, drec, dbias
