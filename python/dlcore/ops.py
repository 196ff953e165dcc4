"""The C++ kernels: NumPy arrays in, NumPy arrays out, no autograd.

C-contiguous inputs of the computing dtype are used without copying; anything else is
converted once. Inputs are computed in float32, or in float64 when NumPy would promote
them to it. The GIL is released while a kernel runs. Bad input raises ``ValueError`` or
``TypeError`` naming the argument, what was received and what was expected.
"""

from dlcore._core import (
    LstmCache,
    LstmCellCache,
    gemm,
    gemm_backward,
    get_num_threads,
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    set_num_threads,
)

__all__ = [
    "LstmCache",
    "LstmCellCache",
    "gemm",
    "gemm_backward",
    "get_num_threads",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "set_num_threads",
]
