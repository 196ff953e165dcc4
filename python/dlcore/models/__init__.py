"""Models: ``Sequential`` and the subclassable ``Model``; ``load_model`` rebuilds one
that ``model.save`` wrote."""

from dlcore.saving import load_model

from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
