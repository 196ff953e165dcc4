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
def array_cache_info() -> Dict[str, int]: ...
def array_cache_release() -> int: ...
def configure_array_cache(limit: Optional[int] = None, min_bytes: Optional[int] = None) -> None: ...
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

# The updates take one parameter, or lists of parameters and of their gradients and
# state arrays (of one length), all checked before any is updated.
_Arrays = Union[np.ndarray, Sequence[np.ndarray]]
_Grads = Union[ArrayLike, Sequence[ArrayLike]]

def adam_update(
    param: _Arrays,
    grad: _Grads,
    m: _Arrays,
    v: _Arrays,
    *,
    lr: float,
    beta_1: float,
    beta_2: float,
    epsilon: float,
    step: int,
    vhat: Optional[_Arrays] = None,
) -> None: ...
def sgd_update(
    param: _Arrays,
    grad: _Grads,
    *,
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    velocity: Optional[_Arrays] = None,
) -> None: ...
def rmsprop_update(
    param: _Arrays,
    grad: _Grads,
    v: _Arrays,
    *,
    lr: float,
    rho: float,
    momentum: float = 0.0,
    epsilon: float = 1e-07,
    mg: Optional[_Arrays] = None,
    mom: Optional[_Arrays] = None,
) -> None: ...
def conv2d_forward(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    activation: Optional[str] = None,
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
    activation: Optional[str] = None,
    y: Optional[ArrayLike] = None,
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
    need_argmax: bool = True,
) -> Tuple[np.ndarray, Optional[np.ndarray]]: ...
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
    *,
    mask: Optional[ArrayLike] = None,
    keep_cache: bool = True,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[LstmCache]]: ...
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
def activation_forward(
    x: ArrayLike,
    kind: str,
    *,
    alpha: Optional[float] = None,
    negative_slope: Optional[float] = None,
    max_value: Optional[float] = None,
    threshold: Optional[float] = None,
    approximate: Optional[Union[bool, str]] = None,
) -> np.ndarray:
    """Keras 3's activation `kind` element-wise (relu with Keras ReLU's parameters, relu6,
    leaky_relu, elu, selu, gelu, silu/swish, softplus, softsign, sigmoid, tanh,
    hard_sigmoid, hard_silu/hard_swish, mish). A parameter applies to its kinds only:
    alpha to elu; negative_slope to relu and leaky_relu; max_value and threshold to relu;
    approximate to gelu."""

def activation_backward(
    dy: ArrayLike,
    kind: str,
    *,
    x: Optional[ArrayLike] = None,
    y: Optional[ArrayLike] = None,
    alpha: Optional[float] = None,
    negative_slope: Optional[float] = None,
    max_value: Optional[float] = None,
    threshold: Optional[float] = None,
    approximate: Optional[Union[bool, str]] = None,
) -> np.ndarray:
    """dy * f'(x). sigmoid and tanh read the forward's output y, every other kind its
    input x (activation_backward_needs(kind) says which); passing both is fine."""

def activation_backward_needs(kind: str) -> str:
    """'y' for sigmoid and tanh, 'x' for every other kind."""

def batch_norm_forward(
    x: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    *,
    epsilon: float = 1e-3,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training mode over the last axis: (y, mean, variance, inv_std), the statistics (C,)
    over all other axes, the variance biased (what Keras' moving_variance averages)."""

def batch_norm_inference(
    x: ArrayLike,
    mean: ArrayLike,
    variance: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    *,
    epsilon: float = 1e-3,
) -> np.ndarray:
    """Inference mode: y = (x - mean) / sqrt(variance + epsilon) * gamma + beta."""

def batch_norm_backward(
    dy: ArrayLike,
    x: ArrayLike,
    mean: ArrayLike,
    inv_std: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    *,
    training: bool = True,
    need_dx: bool = True,
    need_dgamma: bool = True,
    need_dbeta: bool = True,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """(dx, dgamma, dbeta); training=False treats mean and inv_std as constants."""

def layer_norm_forward(
    x: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    beta: Optional[ArrayLike] = None,
    *,
    epsilon: float = 1e-3,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row of the last axis normalised: (y, mean, inv_std), the last two x.shape[:-1]."""

def layer_norm_backward(
    dy: ArrayLike,
    x: ArrayLike,
    mean: ArrayLike,
    inv_std: ArrayLike,
    gamma: Optional[ArrayLike] = None,
    *,
    need_dx: bool = True,
    need_dgamma: bool = True,
    need_dbeta: bool = True,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """(dx, dgamma, dbeta) of layer_norm_forward."""

def embedding_forward(idx: ArrayLike, table: ArrayLike) -> np.ndarray:
    """table[idx]: idx of any integer dtype and shape, table (input_dim, output_dim);
    an index outside [0, input_dim) is a ValueError naming it and its position."""

def embedding_backward(dy: ArrayLike, idx: ArrayLike, input_dim: int) -> np.ndarray:
    """Dense dtable (input_dim, output_dim): the rows of dy added at idx, in position
    order (the same bits at any thread count)."""

def softmax_forward(x: ArrayLike) -> np.ndarray:
    """Softmax over the last axis of x (..., classes); a NaN or +inf logit makes its row
    NaN (the same bits at any thread count)."""

def softmax_backward(dy: ArrayLike, y: ArrayLike) -> np.ndarray:
    """dx = y * (dy - sum(dy * y)) per row, y the forward's output."""

def sparse_softmax_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, with_grad: bool = True
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(loss, grad): logsumexp(z) - z[label] per row of logits (..., classes), labels of
    any integer dtype and shape logits.shape[:-1]; grad = softmax(z) - onehot(label), or
    None without with_grad. A label outside [0, classes) is a ValueError naming it."""

def softmax_cross_entropy(
    logits: ArrayLike, targets: ArrayLike, with_grad: bool = True
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(loss, grad): -sum(targets * log_softmax(z)) per row, targets the logits' shape;
    grad = softmax(z) * sum(targets) - targets, or None without with_grad."""

def conv2d_transpose_forward(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    output_padding: IntPair = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """The adjoint of conv2d_forward: x (N, H, W, C), kernel (KH, KW, OC, C) -> y (N, OH,
    OW, OC); padding crops y, output_padding adds rows and columns at its bottom/right."""

def conv2d_transpose_backward(
    dy: ArrayLike,
    x: ArrayLike,
    kernel: ArrayLike,
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    output_padding: IntPair = 0,
    dilation: IntPair = 1,
    need_dx: bool = True,
    need_dkernel: bool = True,
    need_dbias: bool = True,
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]: ...
def depthwise_conv2d_forward(
    x: ArrayLike,
    kernel: ArrayLike,
    bias: Optional[ArrayLike] = None,
    *,
    strides: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
) -> np.ndarray:
    """Each channel of x (N, H, W, C) convolved with its own M filters, kernel (KH, KW, C,
    M) -> y (N, OH, OW, C * M), y[..., c * M + m] from channel c and filter m."""

def depthwise_conv2d_backward(
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
def avgpool2d_forward(
    x: ArrayLike,
    *,
    pool_size: IntPair = 2,
    strides: Optional[IntPair] = None,
    padding: Padding = 0,
) -> np.ndarray:
    """Mean of each window over its cells inside x (padding is not counted)."""

def avgpool2d_backward(
    dy: ArrayLike,
    x_shape: Sequence[int],
    *,
    pool_size: IntPair = 2,
    strides: Optional[IntPair] = None,
    padding: Padding = 0,
) -> np.ndarray: ...
def global_avgpool_forward(x: ArrayLike, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, T, C) or (N, H, W, C) -> (N, C): the mean over the positions, or over those a
    bool mask of x's shape without the channels keeps."""

def global_avgpool_backward(
    dy: ArrayLike, x_shape: Sequence[int], mask: Optional[np.ndarray] = None
) -> np.ndarray: ...

class GruCache:
    """What gru_backward needs from gru_forward; opaque, serves one backward."""

def gru_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike,
    *,
    reset_after: bool = True,
    mask: Optional[ArrayLike] = None,
    keep_cache: bool = True,
) -> Tuple[np.ndarray, np.ndarray, Optional[GruCache]]:
    """(y (N, T, U), h_n (N, U), cache): a GRU over x (N, T, I), Keras' gate order z, r, h;
    bias (2, 3U) with reset_after, (3U,) without; masked steps carry h through;
    keep_cache=False (inference) keeps nothing after the call and returns None for the cache."""

def gru_backward(
    dy: Optional[ArrayLike],
    dh_n: Optional[ArrayLike],
    cache: GruCache,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dh0, dkernel, drecurrent_kernel, dbias) of gru_forward."""

class SimpleRnnCache:
    """What simple_rnn_backward needs from simple_rnn_forward; opaque, reusable."""

def simple_rnn_forward(
    x: ArrayLike,
    h0: Optional[ArrayLike],
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike,
    *,
    activation: str = "tanh",
    mask: Optional[ArrayLike] = None,
) -> Tuple[np.ndarray, np.ndarray, SimpleRnnCache]:
    """(y (N, T, U), h_n (N, U), cache): h_t = activation(x_t kernel + h_{t-1}
    recurrent_kernel + bias), activation 'tanh' or 'relu'; masked steps carry h through."""

def simple_rnn_backward(
    dy: Optional[ArrayLike],
    dh_n: Optional[ArrayLike],
    cache: SimpleRnnCache,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dh0, dkernel, drecurrent_kernel, dbias) of simple_rnn_forward."""
