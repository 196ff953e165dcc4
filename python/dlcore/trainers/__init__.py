"""Training apart from model structure: the Trainer (compile, fit, evaluate, predict),
the data adapter and the distribution strategies."""

from .data_adapter import ArrayDataAdapter, get_data_adapter
from .strategy import LocalStrategy, MPIStrategy
from .trainer import Trainer

__all__ = ["ArrayDataAdapter", "LocalStrategy", "MPIStrategy", "Trainer", "get_data_adapter"]
