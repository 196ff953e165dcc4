# Type stubs for the C++ extension module; tests/test_stubs.py checks them against it.
from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

__version__: str
build_info: dict[str, Any]

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def gemm(
    a: ArrayLike, b: ArrayLike, *, trans_a: bool = False, trans_b: bool = False
) -> np.ndarray: ...
def gemm_backward(
    dc: ArrayLike,
    a: ArrayLike,
    b: ArrayLike,
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    need_da: bool = True,
    need_db: bool = True,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]: ...

class LstmCache:
    """What lstm_backward needs from lstm_forward; opaque, serves one backward."""

class LstmCellCache:
    """What lstm_cell_backward needs from lstm_cell_forward; opaque, serves one backward."""

def lstm_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    c0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, LstmCache]: ...
def lstm_backward(
    dy: Optional[ArrayLike],
    dh_n: Optional[ArrayLike],
    dc_n: Optional[ArrayLike],
    cache: LstmCache,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
def lstm_cell_forward(
    x_t: ArrayLike,
    h: Optional[ArrayLike],
    c: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike,
) -> Tuple[np.ndarray, np.ndarray, LstmCellCache]: ...
def lstm_cell_backward(
    dh_next: Optional[ArrayLike],
    dc_next: Optional[ArrayLike],
    cache: LstmCellCache,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
