"""Models: ``Sequential``, functional ``Model(inputs, outputs)`` and the subclassable
``Model``; ``load_model`` rebuilds one that ``model.save`` wrote."""

from dlcore.saving import load_model

from .functional import Functional
from .model import Model
from .sequential import Sequential

__all__ = ["Functional", "Model", "Sequential", "load_model"]
