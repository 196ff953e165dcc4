"""Training apart from model structure: the Trainer (compile, fit, evaluate, predict),
the data adapter and the distribution strategies."""

from .data_adapter import ArrayAdapter
from .strategy import LocalStrategy, MPIStrategy
from .trainer import Trainer

__all__ = ["ArrayAdapter", "LocalStrategy", "MPIStrategy", "Trainer"]
