"""Saving models: dlcore's checkpoint format (:mod:`.checkpoint`: an npz zip with a JSON
header and checksums, atomic writes, no pickle) and the model-level save/load on top
(:mod:`.model_io`)."""

from .checkpoint import FORMAT, VERSION, CheckpointError, read_checkpoint, write_checkpoint
from .model_io import load_model, load_weights, save_model, save_weights

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "load_model",
    "load_weights",
    "read_checkpoint",
    "save_model",
    "save_weights",
    "write_checkpoint",
]
