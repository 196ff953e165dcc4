"""One call of every kernel in dlcore.ops, for the concurrency and determinism tests.

A case is a function of NumPy inputs that returns a tuple of arrays; it allocates its
results afresh on every call, and the in-place optimizer updates run on copies of the
parameter and its state, so one case may run on many threads at once. The shapes are
chosen to reach the code paths that split work between threads: every conv2d plan (for
convolutions and transposed ones), depthwise convolutions of many samples and of one,
both ways an LSTM sequence is shared between threads, and element-wise sizes past the
point where the element-wise kernels go parallel.
"""

import numpy as np

from dlcore import ops

# relu and the optimizer updates use one thread below 2**15 elements.
ELTWISE_SIZE = 1 << 16

# x shape, kernel shape and padding of each conv2d plan; see ops.conv2d_plan.
CONV_SHAPES = {
    # 17 -> 21 channels: partial panels in the products' operands
    "winograd": ((4, 16, 16, 17), (3, 3, 17, 21), 1),
    # one 13x13 image, 36 tiles: the forward splits the output channels among the threads
    "winograd_few_tiles": ((1, 13, 13, 32), (3, 3, 32, 64), 0),
    "im2col": ((4, 16, 16, 8), (3, 3, 8, 16), 1),
    # a 1600 x 96 kernel gradient: pixel tiles, each thread summing its taps of it
    "im2col_taps": ((4, 8, 8, 64), (5, 5, 64, 96), 2),
    "direct": ((4, 16, 16, 3), (3, 3, 3, 16), 1),
    "pointwise": ((4, 16, 16, 16), (1, 1, 16, 32), 0),
    "row_views": ((4, 1, 48, 16), (1, 5, 16, 24), ((0, 0), (2, 2))),  # a 'same' Conv1D
}

# x shape, kernel shape (KH, KW, OC, C), strides and padding of transposed convolutions
# whose passes take each conv2d plan that splits work its own way: the DCGAN layer's
# geometry (pixel tiles: the forward by samples, dx and dkernel by pixel tiles), a 3x3
# stride-1 one (Winograd) and a 1x1 (pointwise: Eigen-threaded GEMMs).
CONV_TRANSPOSE_SHAPES = {
    "pixel_tiles": ((4, 7, 7, 32), (4, 4, 16, 32), 2, 1),
    "winograd": ((4, 16, 16, 16), (3, 3, 16, 16), 1, 1),
    "pointwise": ((4, 16, 16, 16), (1, 1, 32, 16), 1, 0),
}

# x shape, kernel shape (KH, KW, C, M) and window of depthwise convolutions: MobileNet's
# 3x3 over a batch (96 channels: two blocks of the kernel gradient's channels), one large
# sample with a depth multiplier, strides and asymmetric padding (work split inside a
# sample), and a dilated non-square kernel.
DEPTHWISE_SHAPES = {
    "batch": ((4, 16, 16, 96), (3, 3, 96, 1), dict(padding=1)),
    "one_sample": ((1, 33, 31, 24), (3, 3, 24, 2), dict(strides=2, padding=((0, 1), (1, 0)))),
    "dilated": ((2, 20, 18, 17), (2, 5, 17, 3), dict(padding=(1, 4), dilation=(2, 1))),
}

# x shapes of the normalisations: C = 3 read in wide rows of 8 rows, three chunks of rows
# with a short last wide row; C = 64 in 13 chunks; layer norm rows in 6 chunks.
NORM_SHAPES = {"c3": (9, 37, 35, 3), "c64": (16, 14, 14, 64), "rows": (64, 33, 40)}

# Every activation kernel, with parameters where it has them; (32, 33, 35) elements go
# parallel even for the cheapest kinds.
ACTIVATIONS = {
    "relu": ("relu", {"negative_slope": 0.1, "max_value": 6.0, "threshold": 0.5}),
    "elu": ("elu", {"alpha": 0.5}),
    "selu": ("selu", {}),
    "gelu": ("gelu", {}),
    "gelu_tanh": ("gelu", {"approximate": True}),
    "silu": ("silu", {}),
    "softplus": ("softplus", {}),
    "softsign": ("softsign", {}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "hard_sigmoid": ("hard_sigmoid", {}),
    "hard_silu": ("hard_silu", {}),
    "mish": ("mish", {}),
}

# (N, T, I, U) of an LSTM that 2 threads share by batch (many sequences) and one they
# share by hidden units (few sequences, several 16-unit panels).
LSTM_SHAPES = {"by_batch": (16, 8, 8, 32), "by_units": (2, 6, 8, 64)}
# The GRU (both formulations) and the SimpleRNN (both activations) at those shapes, and
# each family once more with a mask of right-padded sequences (the LSTM's too).
RNN_VARIANTS = {
    "by_batch": ("by_batch", False),
    "by_units": ("by_units", False),
    "masked": ("by_units", True),
}


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _conv_plan_matches(name):
    x_shape, k_shape, padding = CONV_SHAPES[name]
    plan = ops.conv2d_plan(x_shape, k_shape, padding=padding)
    expected = {
        "winograd": "winograd",
        "winograd_few_tiles": "winograd",
        "im2col": "pixel_tiles",
        "im2col_taps": "pixel_tiles",
        "direct": "direct",
        "pointwise": "pointwise",
        "row_views": "row_views",
    }[name]
    return plan["forward"] == expected


def _conv_inputs(rng, name):
    assert _conv_plan_matches(name), f"{name} shape no longer takes the {name} plan"
    x_shape, k_shape, padding = CONV_SHAPES[name]
    x, kernel, bias = _f32(rng, *x_shape), _f32(rng, *k_shape), _f32(rng, k_shape[3])
    y_shape = ops.conv2d_forward(x, kernel, padding=padding).shape
    return x, kernel, bias, _f32(rng, *y_shape), padding


def _conv_transpose_inputs(rng, name):
    x_shape, k_shape, strides, padding = CONV_TRANSPOSE_SHAPES[name]
    x, kernel, bias = _f32(rng, *x_shape), _f32(rng, *k_shape), _f32(rng, k_shape[2])
    y = ops.conv2d_transpose_forward(x, kernel, strides=strides, padding=padding)
    # the forward is the input-gradient pass of the convolution of an input of y's shape
    plan = ops.conv2d_plan(y.shape, k_shape, strides=strides, padding=padding)["input_grad"]
    assert plan == name, f"the {name} transposed shape now takes the {plan} plan"
    return x, kernel, bias, _f32(rng, *y.shape), strides, padding


def _depthwise_inputs(rng, name):
    x_shape, k_shape, window = DEPTHWISE_SHAPES[name]
    x, kernel = _f32(rng, *x_shape), _f32(rng, *k_shape)
    bias = _f32(rng, k_shape[2] * k_shape[3])
    y = ops.depthwise_conv2d_forward(x, kernel, **window)
    return x, kernel, bias, _f32(rng, *y.shape), window


def _right_padded(rng, N, T):
    return np.arange(T)[None, :] < rng.integers(1, T + 1, N)[:, None]


def _lstm_inputs(rng, name):
    N, T, I, U = LSTM_SHAPES[RNN_VARIANTS[name][0]]
    x = _f32(rng, N, T, I)
    h0, c0 = _f32(rng, N, U), _f32(rng, N, U)
    kernel, recurrent, bias = (
        0.3 * _f32(rng, I, 4 * U),
        0.3 * _f32(rng, U, 4 * U),
        _f32(rng, 4 * U),
    )
    dy, dh_n, dc_n = _f32(rng, N, T, U), _f32(rng, N, U), _f32(rng, N, U)
    mask = _right_padded(rng, N, T) if RNN_VARIANTS[name][1] else None
    return x, h0, c0, kernel, recurrent, bias, dy, dh_n, dc_n, mask


def _rnn_inputs(rng, name, gates, bias_shape):
    """A GRU's (3 gates) or SimpleRNN's (1) inputs and incoming gradients."""
    N, T, I, U = LSTM_SHAPES[RNN_VARIANTS[name][0]]
    x, h0 = _f32(rng, N, T, I), _f32(rng, N, U)
    kernel, recurrent = 0.3 * _f32(rng, I, gates * U), 0.3 * _f32(rng, U, gates * U)
    bias = _f32(rng, *bias_shape(U))
    mask = _right_padded(rng, N, T) if RNN_VARIANTS[name][1] else None
    return x, h0, kernel, recurrent, bias, mask, _f32(rng, N, T, U), _f32(rng, N, U)


def gemm(a, b):
    return (ops.gemm(a, b), ops.gemm(a, b.T, trans_b=True))


def gemm_backward(dc, a, b):
    return ops.gemm_backward(dc, a, b)


def conv2d_forward(x, kernel, bias, dy, padding):
    return (ops.conv2d_forward(x, kernel, bias, padding=padding),)


def conv2d_backward(x, kernel, bias, dy, padding):
    return ops.conv2d_backward(dy, x, kernel, padding=padding)


def conv2d_relu_forward(x, kernel, bias, dy, padding):
    return (ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu"),)


def conv2d_relu_backward(x, kernel, bias, dy, padding):
    y = ops.conv2d_forward(x, kernel, bias, padding=padding, activation="relu")
    return ops.conv2d_backward(dy, x, kernel, padding=padding, activation="relu", y=y)


def conv2d_transpose_forward(x, kernel, bias, dy, strides, padding):
    return (ops.conv2d_transpose_forward(x, kernel, bias, strides=strides, padding=padding),)


def conv2d_transpose_backward(x, kernel, bias, dy, strides, padding):
    return ops.conv2d_transpose_backward(dy, x, kernel, strides=strides, padding=padding)


def depthwise_conv2d_forward(x, kernel, bias, dy, window):
    return (ops.depthwise_conv2d_forward(x, kernel, bias, **window),)


def depthwise_conv2d_backward(x, kernel, bias, dy, window):
    return ops.depthwise_conv2d_backward(dy, x, kernel, **window)


def maxpool2d_forward(x, dy):
    y, argmax = ops.maxpool2d_forward(x, pool_size=3, strides=2, padding=1)
    inference, _ = ops.maxpool2d_forward(x, pool_size=3, strides=2, padding=1, need_argmax=False)
    return y, argmax, inference


def maxpool2d_backward(x, dy):
    _, argmax = ops.maxpool2d_forward(x, pool_size=3, strides=2, padding=1)
    return (ops.maxpool2d_backward(dy, argmax, x.shape),)


def avgpool2d_forward(x, dy):
    return (ops.avgpool2d_forward(x, pool_size=3, strides=2, padding=1),)


def avgpool2d_backward(x, dy):
    return (ops.avgpool2d_backward(dy, x.shape, pool_size=3, strides=2, padding=1),)


def _positions_kept(x):
    """A mask over x's positions that keeps about two in three."""
    return (np.arange(np.prod(x.shape[:-1])) % 3 != 1).reshape(x.shape[:-1])


def global_avgpool_forward(x, dy):
    return ops.global_avgpool_forward(x), ops.global_avgpool_forward(x, _positions_kept(x))


def global_avgpool_backward(x, dy):
    dy = dy[:, 0, 0]  # (N, C)
    return (ops.global_avgpool_backward(dy, x.shape),
            ops.global_avgpool_backward(dy, x.shape, _positions_kept(x)))  # fmt: skip


def lstm_forward(x, h0, c0, kernel, recurrent, bias, dy, dh_n, dc_n, mask):
    y, h_n, c_n, _ = ops.lstm_forward(x, h0, c0, kernel, recurrent, bias, mask=mask)
    return y, h_n, c_n


def lstm_inference(x, h0, c0, kernel, recurrent, bias, dy, dh_n, dc_n, mask):
    y, h_n, c_n, _ = ops.lstm_forward(
        x, h0, c0, kernel, recurrent, bias, mask=mask, keep_cache=False
    )
    return y, h_n, c_n


def lstm_backward(x, h0, c0, kernel, recurrent, bias, dy, dh_n, dc_n, mask):
    # A cache serves one backward, so each call runs its own forward.
    *_, cache = ops.lstm_forward(x, h0, c0, kernel, recurrent, bias, mask=mask)
    return ops.lstm_backward(dy, dh_n, dc_n, cache)


def lstm_cell_forward(x, h0, c0, kernel, recurrent, bias, dy, dh_n, dc_n, mask):
    h, c, _ = ops.lstm_cell_forward(x[:, 0], h0, c0, kernel, recurrent, bias)
    return h, c


def lstm_cell_backward(x, h0, c0, kernel, recurrent, bias, dy, dh_n, dc_n, mask):
    *_, cache = ops.lstm_cell_forward(x[:, 0], h0, c0, kernel, recurrent, bias)
    return ops.lstm_cell_backward(dh_n, dc_n, cache)


def gru_forward(x, h0, kernel, recurrent, bias, mask, dy, dh_n):
    # Keras' reset_after=True with a (2, 3U) bias, reset_after=False with a (3U,) one.
    y, h_n, _ = ops.gru_forward(
        x, h0, kernel, recurrent, bias, reset_after=bias.ndim == 2, mask=mask
    )
    return y, h_n


def gru_inference(x, h0, kernel, recurrent, bias, mask, dy, dh_n):
    y, h_n, _ = ops.gru_forward(
        x, h0, kernel, recurrent, bias, reset_after=bias.ndim == 2, mask=mask, keep_cache=False
    )
    return y, h_n


def gru_backward(x, h0, kernel, recurrent, bias, mask, dy, dh_n):
    *_, cache = ops.gru_forward(
        x, h0, kernel, recurrent, bias, reset_after=bias.ndim == 2, mask=mask
    )
    return ops.gru_backward(dy, dh_n, cache)


def simple_rnn_forward(x, h0, kernel, recurrent, bias, mask, dy, dh_n):
    # relu where the mask is, tanh elsewhere: both activations run.
    activation = "tanh" if mask is None else "relu"
    y, h_n, _ = ops.simple_rnn_forward(
        x, h0, kernel, recurrent, bias, activation=activation, mask=mask
    )
    return y, h_n


def simple_rnn_backward(x, h0, kernel, recurrent, bias, mask, dy, dh_n):
    activation = "tanh" if mask is None else "relu"
    *_, cache = ops.simple_rnn_forward(
        x, h0, kernel, recurrent, bias, activation=activation, mask=mask
    )
    return ops.simple_rnn_backward(dy, dh_n, cache)


def relu(x, dy):
    return (ops.relu(x),)


def relu_backward(x, dy):
    return (ops.relu_backward(dy, ops.relu(x)),)


def batch_norm_forward(x, dy, gamma, beta):
    return ops.batch_norm_forward(x, gamma, beta)


def batch_norm_inference(x, dy, gamma, beta):
    # moving statistics of a plausible size: the batch's, shifted and scaled
    rows = x.reshape(-1, x.shape[-1])
    mean, variance = rows.mean(axis=0) + 0.1, rows.var(axis=0) * 1.5 + 0.2
    return ops.batch_norm_inference(x, mean, variance, gamma, beta)


def batch_norm_backward(x, dy, gamma, beta):
    _, mean, _, inv_std = ops.batch_norm_forward(x, gamma, beta)
    return ops.batch_norm_backward(dy, x, mean, inv_std, gamma)


def layer_norm_forward(x, dy, gamma, beta):
    return ops.layer_norm_forward(x, gamma, beta)


def layer_norm_backward(x, dy, gamma, beta):
    _, mean, inv_std = ops.layer_norm_forward(x, gamma, beta)
    return ops.layer_norm_backward(dy, x, mean, inv_std, gamma)


def embedding_forward(idx, table, dy):
    return (ops.embedding_forward(idx, table),)


def embedding_backward(idx, table, dy):
    return (ops.embedding_backward(dy, idx, table.shape[0]),)


def activation_forward(x, dy, kind, params):
    return (ops.activation_forward(x, kind, **params),)


def activation_backward(x, dy, kind, params):
    y = ops.activation_forward(x, kind, **params)
    return (ops.activation_backward(dy, kind, x=x, y=y, **params),)


def softmax_forward(x, dy, labels):
    return (ops.softmax_forward(x),)


def softmax_backward(x, dy, labels):
    return (ops.softmax_backward(dy, ops.softmax_forward(x)),)


def sparse_softmax_cross_entropy(x, dy, labels):
    return ops.sparse_softmax_cross_entropy(x, labels)


def softmax_cross_entropy(x, dy, labels):
    return ops.softmax_cross_entropy(x, np.abs(dy))  # soft targets


def adam_update(param, grad, m, v):
    param, m, v, vhat = param.copy(), m.copy(), v.copy(), v.copy()
    ops.adam_update(
        param, grad, m, v, lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3, vhat=vhat
    )
    return param, m, v, vhat


def sgd_update(param, grad, m, v):
    param, velocity = param.copy(), m.copy()
    ops.sgd_update(param, grad, lr=0.01, momentum=0.9, nesterov=True, velocity=velocity)
    return param, velocity


def rmsprop_update(param, grad, m, v):
    param, v, mg, mom = param.copy(), v.copy(), m.copy(), m.copy()
    ops.rmsprop_update(param, grad, v, lr=0.01, rho=0.9, momentum=0.5, mg=mg, mom=mom)
    return param, v, mg, mom


def _pool_inputs(rng):
    x = _f32(rng, 4, 16, 16, 8)
    y, _ = ops.maxpool2d_forward(x, pool_size=3, strides=2, padding=1)
    return x, _f32(rng, *y.shape)


def _optim_inputs(rng):
    # m doubles as RMSprop's mean gradient, so v > m**2: a centered update stays finite.
    param, grad, m = _f32(rng, ELTWISE_SIZE), _f32(rng, ELTWISE_SIZE), _f32(rng, ELTWISE_SIZE)
    return param, grad, m, m * m + np.abs(_f32(rng, ELTWISE_SIZE))


def _norm_inputs(rng, variant):
    shape = NORM_SHAPES[variant]
    x, dy = _f32(rng, *shape) + 0.5, _f32(rng, *shape)
    return x, dy, _f32(rng, shape[-1]), _f32(rng, shape[-1])


def _embedding_inputs(rng):
    # Zipf-distributed ids (a few rows take most hits), 2 x 50 x 32 = 76,800 elements.
    idx = np.minimum(rng.zipf(1.3, (32, 50)) - 1, 2999)
    return idx, _f32(rng, 3000, 48), _f32(rng, 32, 50, 48)


def _activation_inputs(rng, variant):
    kind, params = ACTIVATIONS[variant]
    return 3 * _f32(rng, 32, 33, 35), _f32(rng, 32, 33, 35), kind, params


def _softmax_inputs(rng):
    # 96 rows of 1000 classes: past the point where the row loops go parallel.
    x = 3 * _f32(rng, 96, 1000)
    return x, _f32(rng, 96, 1000), rng.integers(0, 1000, 96)


def make_inputs(name, rng):
    """Inputs of case `name` drawn from rng."""
    kernel, _, variant = name.partition("[")
    variant = variant.rstrip("]")
    if kernel == "gemm" and variant == "narrow":
        # a Dense layer's batch of 32 against 130 units: each thread its own columns,
        # with the one-thread product's bits
        return _f32(rng, 32, 1600), _f32(rng, 1600, 130)
    if kernel == "gemm" and variant == "row_vector":
        # a Dense layer at batch 1: each thread its own vectors of columns
        return _f32(rng, 1, 1600), _f32(rng, 1600, 130)
    if kernel == "gemm_backward" and variant == "narrow":
        return _f32(rng, 32, 130), _f32(rng, 32, 1600), _f32(rng, 1600, 130)
    if kernel == "gemm":
        return _f32(rng, 96, 1024), _f32(rng, 1024, 80)
    if kernel == "gemm_backward":
        # db = a^T @ dc reduces over the 1024 rows of a
        return _f32(rng, 1024, 80), _f32(rng, 1024, 96), _f32(rng, 96, 80)
    if kernel.startswith("conv2d_transpose"):
        return _conv_transpose_inputs(rng, variant)
    if kernel.startswith("depthwise_conv2d"):
        return _depthwise_inputs(rng, variant)
    if kernel.startswith("conv2d"):
        return _conv_inputs(rng, variant)
    if kernel.startswith(("maxpool2d", "avgpool2d", "global_avgpool")):
        return _pool_inputs(rng)
    if kernel.startswith("lstm_cell"):
        return _lstm_inputs(rng, "by_batch")
    if kernel.startswith("lstm"):
        return _lstm_inputs(rng, variant)
    if kernel.startswith("gru"):  # the masked one without the reset after
        return _rnn_inputs(
            rng, variant, 3, lambda U: (3 * U,) if variant == "masked" else (2, 3 * U)
        )
    if kernel.startswith("simple_rnn"):
        return _rnn_inputs(rng, variant, 1, lambda U: (U,))
    if kernel.startswith("relu"):
        return _f32(rng, ELTWISE_SIZE), _f32(rng, ELTWISE_SIZE)
    if kernel.startswith(("batch_norm", "layer_norm")):
        return _norm_inputs(rng, variant)
    if kernel.startswith("embedding"):
        return _embedding_inputs(rng)
    if kernel.startswith("activation"):
        return _activation_inputs(rng, variant)
    if "softmax" in kernel:
        return _softmax_inputs(rng)
    return _optim_inputs(rng)


FUNCTIONS = {
    f.__name__: f
    for f in (
        gemm,
        gemm_backward,
        conv2d_forward,
        conv2d_backward,
        conv2d_relu_forward,
        conv2d_relu_backward,
        maxpool2d_forward,
        maxpool2d_backward,
        lstm_forward,
        lstm_inference,
        lstm_backward,
        lstm_cell_forward,
        lstm_cell_backward,
        gru_forward,
        gru_inference,
        gru_backward,
        simple_rnn_forward,
        simple_rnn_backward,
        relu,
        relu_backward,
        batch_norm_forward,
        batch_norm_inference,
        batch_norm_backward,
        layer_norm_forward,
        layer_norm_backward,
        embedding_forward,
        embedding_backward,
        activation_forward,
        activation_backward,
        adam_update,
        sgd_update,
        rmsprop_update,
        conv2d_transpose_forward,
        conv2d_transpose_backward,
        depthwise_conv2d_forward,
        depthwise_conv2d_backward,
        avgpool2d_forward,
        avgpool2d_backward,
        global_avgpool_forward,
        global_avgpool_backward,
        softmax_forward,
        softmax_backward,
        sparse_softmax_cross_entropy,
        softmax_cross_entropy,
    )
}

CASES = (
    ["gemm", "gemm_backward", "gemm[narrow]", "gemm_backward[narrow]", "gemm[row_vector]"]
    + [f"conv2d_{d}[{plan}]" for d in ("forward", "backward") for plan in CONV_SHAPES]
    + [f"conv2d_relu_{d}[winograd]" for d in ("forward", "backward")]
    + ["maxpool2d_forward", "maxpool2d_backward"]
    + [f"lstm_{d}[{how}]" for d in ("forward", "inference", "backward") for how in RNN_VARIANTS]
    + [f"gru_{d}[{how}]" for d in ("forward", "inference", "backward") for how in RNN_VARIANTS]
    + [f"simple_rnn_{d}[{how}]" for d in ("forward", "backward") for how in RNN_VARIANTS]
    + [
        "lstm_cell_forward",
        "lstm_cell_backward",
        "relu",
        "relu_backward",
        "adam_update",
        "sgd_update",
        "rmsprop_update",
    ]
    + [f"batch_norm_{d}[{v}]" for d in ("forward", "inference", "backward") for v in ("c3", "c64")]
    + [f"layer_norm_{d}[rows]" for d in ("forward", "backward")]
    + ["embedding_forward", "embedding_backward"]
    + [f"activation_{d}[{kind}]" for d in ("forward", "backward") for kind in ACTIVATIONS]
    + [
        f"conv2d_transpose_{d}[{plan}]"
        for d in ("forward", "backward")
        for plan in CONV_TRANSPOSE_SHAPES
    ]
    + [f"depthwise_conv2d_{d}[{how}]" for d in ("forward", "backward") for how in DEPTHWISE_SHAPES]
    + [
        "avgpool2d_forward",
        "avgpool2d_backward",
        "global_avgpool_forward",
        "global_avgpool_backward",
        "softmax_forward",
        "softmax_backward",
        "sparse_softmax_cross_entropy",
        "softmax_cross_entropy",
    ]
)


def run(name, inputs):
    """Case `name` on `inputs`: a tuple of fresh arrays."""
    return tuple(FUNCTIONS[name.partition("[")[0]](*inputs))


# Outputs (by position in a case's result) whose bits may change with the thread count,
# and why; every other output is the same at any thread count. See test_determinism.py.
EIGEN_K_BLOCKS = (
    "Eigen's threaded GEMM chooses its depth blocking by thread count, so "
    "a long reduction (K = 1024 here) is summed in other groups"
)
THREAD_PARTIALS = (
    "each thread sums its share of the pixel tiles (or sequences) into its "
    "own partial, and the partials are added in thread order"
)
THREAD_DEPENDENT = {
    "gemm": ({0, 1}, EIGEN_K_BLOCKS),
    "gemm_backward": ({1}, EIGEN_K_BLOCKS),  # db; da reduces over only 80 columns
    # Winograd's y and dx come from products on packed panels, which give every value
    # the same arithmetic however the tiles are split: the same bits at any thread count.
    "conv2d_backward[winograd]": ({1, 2}, THREAD_PARTIALS),
    "conv2d_backward[winograd_few_tiles]": ({1, 2}, THREAD_PARTIALS),
    "conv2d_relu_backward[winograd]": ({1, 2}, THREAD_PARTIALS),
    "conv2d_backward[im2col]": ({1, 2}, THREAD_PARTIALS),
    "conv2d_backward[im2col_taps]": (
        {1, 2},
        "dkernel: each thread multiplies its share of the taps, so the products' heights "
        "(and which rows fall in Eigen's remainder panel) follow the thread count; dbias: "
        + THREAD_PARTIALS,
    ),
    "conv2d_backward[direct]": ({1, 2}, THREAD_PARTIALS),
    "conv2d_backward[row_views]": ({1, 2}, THREAD_PARTIALS),
    # dkernel is one GEMM over all N*H*W = 1024 pixels
    "conv2d_backward[pointwise]": ({1, 2}, EIGEN_K_BLOCKS + "; dbias: " + THREAD_PARTIALS),
    # dbias: each thread sums the gate gradients of its own sequences
    "lstm_backward[by_batch]": ({5}, THREAD_PARTIALS),
    # dkernel is the kernel gradient of the convolution transposed (its x is dy)
    "conv2d_transpose_backward[pixel_tiles]": ({1, 2}, THREAD_PARTIALS),
    # The transposed forward is conv2d's input-gradient Winograd pass and its dx
    # conv2d's forward one (the same bits at any thread count, as above).
    "conv2d_transpose_backward[winograd]": ({1, 2}, THREAD_PARTIALS),
    "conv2d_transpose_backward[pointwise]": (
        {1, 2},
        EIGEN_K_BLOCKS + "; dbias: " + THREAD_PARTIALS,
    ),
    "gru_backward[by_batch]": ({4}, THREAD_PARTIALS),
    "simple_rnn_backward[by_batch]": ({4}, THREAD_PARTIALS),
}


def thread_dependent(name, index):
    """Whether output `index` of case `name` may change with the thread count."""
    return index in THREAD_DEPENDENT.get(name, ((), ""))[0]
