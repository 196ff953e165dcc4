"""The C++ kernels: NumPy arrays in, NumPy arrays out, no autograd.

C-contiguous inputs of the computing dtype are used without copying; anything else is
converted once. Inputs are computed in float32, or in float64 when NumPy would promote
them to it. The GIL is released while a kernel runs. Bad input raises ``ValueError`` or
``TypeError`` naming the argument, what was received and what was expected.
"""

from dlcore._core import (
    LstmCache,
    LstmCellCache,
    adam_update,
    conv2d_backward,
    conv2d_forward,
    conv2d_plan,
    gemm,
    gemm_backward,
    get_num_threads,
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    maxpool2d_backward,
    maxpool2d_forward,
    peak_gflops,
    relu,
    relu_backward,
    rmsprop_update,
    set_num_threads,
    sgd_update,
)

__all__ = [
    "gemm",
    "gemm_backward",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_plan",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "lstm_forward",
    "lstm_backward",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "LstmCache",
    "LstmCellCache",
    "relu",
    "relu_backward",
    "adam_update",
    "sgd_update",
    "rmsprop_update",
    "get_num_threads",
    "set_num_threads",
    "peak_gflops",
]
