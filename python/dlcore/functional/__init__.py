"""Differentiable operations over :mod:`dlcore.ops` and NumPy, by family.

Each op computes its output (kernel-backed ops call their ``ops`` forward) and records
its backward with :func:`dlcore.tensor.record`; gradients nobody needs are not computed
(the kernels' ``need_*`` flags). One implementation per op:

- :mod:`.elementwise` arithmetic, unary maths, comparisons, dtype promotion
- :mod:`.activations` relu, sigmoid, tanh, softmax, gelu, silu, elu, prelu, ...
- :mod:`.reductions` sum, mean, max, min
- :mod:`.shape` reshape, transpose, indexing, concatenate, stack, repeat, pad
- :mod:`.linalg` matmul, linear
- :mod:`.conv`, :mod:`.pool` convolution and pooling (:mod:`.window` their arguments)
- :mod:`.rnn` recurrent sequences
- :mod:`.normalization` batch and layer normalisation
- :mod:`.embedding` embedding lookup
- :mod:`.image` upsampling
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
from .conv import conv2d
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
from .image import upsample2d
from .linalg import linear, matmul
from .losses import (
    binary_crossentropy,
    categorical_crossentropy,
    mean_absolute_error,
    mean_squared_error,
    sparse_categorical_crossentropy,
)
from .methods import install as _install_methods
from .normalization import batch_norm, layer_norm
from .pool import max_pool2d
from .reductions import max, mean, min, sum
from .regularization import dropout, gaussian_noise
from .rnn import lstm
from .shape import concatenate, pad, repeat, reshape, stack, transpose
from .window import conv_padding

__all__ = [
    # layers' maths
    "linear", "conv2d", "max_pool2d", "lstm", "dropout",
    "batch_norm", "layer_norm", "embedding", "upsample2d", "gaussian_noise",
    # activations
    "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "relu6", "elu", "selu", "gelu", "silu", "swish", "softplus", "softsign",
    "hard_sigmoid", "hard_silu", "exponential", "mish", "prelu",
    # losses
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy",
    # tensor maths
    "add", "sub", "mul", "div", "power", "exp", "log", "sqrt", "square", "abs", "clip",
    "maximum", "minimum", "sum", "mean", "max", "min", "matmul", "reshape", "transpose",
    "concatenate", "stack", "repeat", "pad",
    # arguments
    "conv_padding",
]  # fmt: skip

_install_methods(_Tensor)
