# Type stubs for the C++ extension module; tests/test_stubs.py checks them against it.
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

IntPair = Union[int, Tuple[int, int]]
Padding = Union[int, Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]]

__version__: str
build_info: dict[str, Any]

def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def peak_gflops(threads: int = 1, seconds: float = 0.2) -> float: ...
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
def adam_update(
    param: np.ndarray,
    grad: ArrayLike,
    m: np.ndarray,
    v: np.ndarray,
    *,
    lr: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    step: int,
    vhat: Optional[np.ndarray] = None,
) -> None: ...
def sgd_update(
    param: np.ndarray,
    grad: ArrayLike,
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    velocity: Optional[np.ndarray] = None,
) -> None: ...
def rmsprop_update(
    param: np.ndarray,
    grad: ArrayLike,
    v: np.ndarray,
    *,
    lr: float,
    rho: float,
    momentum: float = 0.0,
    epsilon: float = 1e-07,
    mg: Optional[np.ndarray] = None,
    mom: Optional[np.ndarray] = None,
) -> None: ...
def conv2d_forward(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
) -> np.ndarray: ...
def conv2d_backward(
    dy: ArrayLike,
    x: ArrayLike,
    kernel: ArrayLike,
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    need_dx: bool = True,
    need_dkernel: bool = True,
    need_dbias: bool = True,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]: ...
def conv2d_plan(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
) -> Dict[str, str]: ...
def maxpool2d_forward(
    x: ArrayLike,
    *,
    pool_size: IntPair = 2,
    strides: Optional[IntPair] = None,
    padding: Padding = 0,
) -> Tuple[np.ndarray, np.ndarray]: ...
def maxpool2d_backward(dy: ArrayLike, argmax: np.ndarray, x_shape: Sequence[int]) -> np.ndarray: ...
def relu(x: ArrayLike) -> np.ndarray: ...
def relu_backward(dy: ArrayLike, y: ArrayLike) -> np.ndarray: ...

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
