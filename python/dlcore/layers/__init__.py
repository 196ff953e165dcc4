"""Keras-style layers, one module per family as in Keras:

- :mod:`.base` Layer, InputLayer
- :mod:`.core` Dense, Activation, Embedding, Masking, Input
- :mod:`.merging` Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot
- :mod:`.convolutional` Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D
- :mod:`.pooling` MaxPooling1D/2D, AveragePooling1D/2D, GlobalAveragePooling1D/2D,
  GlobalMaxPooling1D/2D
- :mod:`.recurrent` LSTM, GRU, SimpleRNN
- :mod:`.regularization` Dropout, SpatialDropout2D, GaussianNoise
- :mod:`.reshaping` Flatten, Reshape, Permute, RepeatVector, UpSampling2D, ZeroPadding2D,
  Cropping2D
- :mod:`.activations` ReLU, LeakyReLU, ELU, PReLU, Softmax
- :mod:`.normalization` BatchNormalization, LayerNormalization
- :mod:`.wrappers` Bidirectional, TimeDistributed
- :mod:`.preprocessing` Rescaling, Normalization, RandomFlip, RandomRotation,
  RandomTranslation, RandomZoom, RandomContrast

A family module's ``__all__`` is what this package exports, and every layer class
registers itself (``@registry.register()``) under its Keras class name, which is how
saved models name it: a new layer is its class in its family module, and its tests.
"""

from . import (
    activations,
    base,
    convolutional,
    core,
    merging,
    normalization,
    pooling,
    preprocessing,
    recurrent,
    regularization,
    reshaping,
    wrappers,
)
from .activations import *  # noqa: F403
from .base import *  # noqa: F403
from .convolutional import *  # noqa: F403
from .core import *  # noqa: F403
from .merging import *  # noqa: F403
from .normalization import *  # noqa: F403
from .pooling import *  # noqa: F403
from .preprocessing import *  # noqa: F403
from .recurrent import *  # noqa: F403
from .regularization import *  # noqa: F403
from .reshaping import *  # noqa: F403
from .wrappers import *  # noqa: F403

_FAMILIES = (
    activations, base, convolutional, core, merging, pooling, recurrent, regularization,
    reshaping, normalization, wrappers, preprocessing,
)  # fmt: skip

__all__ = [
    *(name for family in _FAMILIES for name in family.__all__),
    "deserialize",
    "get",
    "serialize",
]


def serialize(layer):
    """``{"class_name": ..., "config": ...}`` of a registered layer (models included)."""
    return registry.serialize(layer)  # noqa: F405


def deserialize(config, custom_objects=None):
    """A layer from :func:`serialize`'s output (or a Keras layer config);
    ``custom_objects`` (name -> class) are found too, as in Keras."""
    return registry.deserialize(config, custom_objects)  # noqa: F405


get = deserialize
