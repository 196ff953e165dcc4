"""Differentiable operations over :mod:`dlcore.ops` and NumPy, by family.

Each op computes its output (kernel-backed ops call their ``ops`` forward) and records
its backward with :func:`dlcore.tensor.record`; gradients nobody needs are not computed
(the kernels' ``need_*`` flags). One implementation per op:

- :mod:`.elementwise` arithmetic, unary maths, comparisons, dtype promotion
- :mod:`.activations` relu, sigmoid, tanh, softmax, gelu, silu, elu, prelu, ...
- :mod:`.reductions` sum, mean, max, min
- :mod:`.shape` reshape, transpose, indexing, concatenate, stack, repeat, pad
- :mod:`.linalg` matmul, linear
- :mod:`.conv`, :mod:`.pool` convolution (1-D, 2-D, transposed, depthwise, separable) and
  pooling (max, average, global) (:mod:`.window` their arguments)
- :mod:`.rnn` recurrent sequences
- :mod:`.normalization` batch and layer normalisation
- :mod:`.embedding` embedding lookup
- :mod:`.image` upsampling, flips, affine transforms, resizing
- :mod:`.regularization` dropout, gaussian_noise
- :mod:`.losses` losses, Keras' argument order ``(y_true, y_pred)``

Importing this package also gives :class:`dlcore.Tensor` its operators and methods
(:mod:`.methods`).
"""

from dlcore.tensor import Tensor as _Tensor

from .activations import (
    elu,
    exponential,
    gelu,
    hard_sigmoid,
    hard_silu,
    leaky_relu,
    log_softmax,
    mish,
    prelu,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    swish,
    tanh,
)
from .conv import conv1d, conv2d, conv2d_transpose, depthwise_conv2d, separable_conv2d
from .elementwise import (
    abs,
    add,
    clip,
    div,
    exp,
    log,
    maximum,
    minimum,
    mul,
    power,
    sqrt,
    square,
    sub,
)
from .embedding import embedding
from .image import affine_transform, flip, resize, upsample2d
from .linalg import linear, matmul
from .losses import (
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    categorical_hinge,
    cosine_similarity,
    dice,
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    mean_squared_logarithmic_error,
    poisson,
    sparse_categorical_crossentropy,
    squared_hinge,
    tversky,
)
from .methods import install as _install_methods
from .normalization import batch_norm, layer_norm
from .pool import (
    avg_pool1d,
    avg_pool2d,
    global_avg_pool,
    global_max_pool,
    max_pool1d,
    max_pool2d,
)
from .reductions import max, mean, min, sum
from .regularization import dropout, gaussian_noise
from .rnn import gru, lstm, simple_rnn
from .shape import concatenate, pad, repeat, reshape, stack, transpose
from .window import conv_padding, conv_transpose_padding

__all__ = [
    # layers' maths
    "linear", "conv2d", "max_pool2d", "lstm", "dropout",
    "batch_norm", "layer_norm", "embedding", "upsample2d", "gaussian_noise",
    "conv1d", "conv2d_transpose", "depthwise_conv2d", "separable_conv2d", "max_pool1d", "avg_pool1d", "avg_pool2d",
    "global_avg_pool", "global_max_pool",
    "gru", "simple_rnn",
    # activations
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "relu6", "elu", "selu", "gelu", "silu", "swish", "softplus", "softsign",
    "hard_sigmoid", "hard_silu", "exponential", "mish", "prelu",
    # losses
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "huber",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "hinge",
    "squared_hinge", "categorical_hinge", "log_cosh", "poisson", "kl_divergence",
    "cosine_similarity", "binary_focal_crossentropy", "categorical_focal_crossentropy", "dice",
    "tversky",
    # tensor maths
    "add", "sub", "mul", "div", "power", "exp", "log", "sqrt", "square", "abs", "clip",
    "maximum", "minimum", "sum", "mean", "max", "min", "matmul", "reshape", "transpose",
    "concatenate", "stack", "repeat", "pad",
    # arguments
    "conv_padding", "conv_transpose_padding",
    # images
    "affine_transform", "flip", "resize",
]  # fmt: skip

_install_methods(_Tensor)
