"""Step-by-step SimpleRNN in float64 NumPy, Keras' layout:
h_t = activation(x_t kernel + h_{t-1} recurrent_kernel + bias), activation tanh or relu.
A masked step (mask[n, t] false) carries h_{t-1} through and outputs it."""

import numpy as np

from .lstm import _f64, step_mask

ACTIVATIONS = {
    "tanh": (np.tanh, lambda h: 1 - h**2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda h: (h > 0).astype(np.float64)),
}


def simple_rnn_forward(x, h0, kernel, recurrent_kernel, bias, activation="tanh", mask=None):
    """Returns (y, h_n, saved); saved is what simple_rnn_backward needs."""
    x, kernel, rec, bias = (np.asarray(a, np.float64) for a in (x, kernel, recurrent_kernel, bias))
    N, T, _ = x.shape
    U = rec.shape[0]
    live = step_mask(mask, N, T)
    act = ACTIVATIONS[activation][0]
    h = _f64(h0, (N, U))
    y = np.zeros((N, T, U))
    steps = []
    for t in range(T):
        h_prev = h
        h_new = act(x[:, t] @ kernel + h_prev @ rec + bias)
        m = live[:, t, None]
        h = np.where(m, h_new, h_prev)
        y[:, t] = h
        steps.append((x[:, t], h_prev, h_new, m))
    return y, h, (steps, kernel, rec, activation)


def simple_rnn_backward(dy, dh_n, saved):
    """Returns (dx, dh0, dkernel, drecurrent_kernel, dbias)."""
    steps, kernel, rec, activation = saved
    derivative = ACTIVATIONS[activation][1]
    N, U = steps[0][1].shape
    T = len(steps)
    dy = _f64(dy, (N, T, U))
    dh = _f64(dh_n, (N, U)).copy()
    dx = np.zeros((N, T, kernel.shape[0]))
    dkernel, drec, dbias = np.zeros_like(kernel), np.zeros_like(rec), np.zeros(U)
    for t in reversed(range(T)):
        x_t, h_prev, h_new, m = steps[t]
        dh = dh + dy[:, t]
        dz = np.where(m, dh * derivative(h_new), 0.0)
        dx[:, t] = dz @ kernel.T
        dkernel += x_t.T @ dz
        drec += h_prev.T @ dz
        dbias += dz.sum(axis=0)
        dh = np.where(m, dz @ rec.T, dh)
    return dx, dh, dkernel, drec, dbias
