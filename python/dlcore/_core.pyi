# Type stubs for the C++ extension module; tests/test_stubs.py checks them against it.
from typing import Any, Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike

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
