"""The ``keras`` namespace, so tutorial code runs with only its import line changed::

    from dlcore import keras                      # instead of: import keras
    import dlcore as tf; tf.keras.layers.Dense    # instead of: import tensorflow as tf
    from dlcore.keras.layers import Dense         # instead of: from keras.layers import Dense

Every name here is dlcore's own module or class; ``dlcore.keras.layers`` *is*
``dlcore.layers``.
"""

import sys as _sys

from dlcore import (
    activations,
    callbacks,
    constraints,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    regularizers,
    saving,
    utils,
)
from dlcore.layers import Input, Layer
from dlcore.models import Model, Sequential

from . import backend, ops, random

__all__ = [
    "Input",
    "Layer",
    "Model",
    "Sequential",
    "activations",
    "backend",
    "callbacks",
    "constraints",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "random",
    "regularizers",
    "saving",
    "utils",
]


def _alias(module, alias):
    """Makes ``import <alias>.x`` find ``<module>.x`` for every loaded submodule."""
    _sys.modules[alias] = module
    prefix = module.__name__ + "."
    for name, sub in list(_sys.modules.items()):
        if name.startswith(prefix) and sub is not None:
            _sys.modules[alias + name[len(module.__name__) :]] = sub


for _module in (activations, callbacks, constraints, datasets, initializers, layers, losses, metrics, models,
                optimizers, regularizers, saving, utils):  # fmt: skip
    _alias(_module, f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}")
