"""Saving models, in two formats chosen by the file's extension (:mod:`.saving_api`):

- ``.dlc``: dlcore's checkpoint format (:mod:`.checkpoint`: an npz zip with a JSON header
  and checksums, atomic writes, no pickle) with the model-level save/load on top
  (:mod:`.model_io`);
- ``.keras`` / ``.weights.h5``: Keras 3's archive and weights file (:mod:`.keras_file`,
  :mod:`.keras_config`), which Keras opens and dlcore reads back.

The user's own classes and functions (a custom layer, a loss function) are saved by name
and found again through ``load_model(path, custom_objects={...})``, a
:class:`CustomObjectScope` or :func:`register_keras_serializable`, as in Keras
(``keras.saving``); see :mod:`dlcore.registry`.
"""

from dlcore.registry import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

from .checkpoint import FORMAT, VERSION, CheckpointError, read_checkpoint, write_checkpoint
from .keras_config import KerasFormatError
from .saving_api import (
    DLCORE_EXTENSION,
    KERAS_EXTENSION,
    KERAS_WEIGHTS_EXTENSION,
    load_model,
    load_weights,
    save_model,
    save_weights,
)

__all__ = [
    "DLCORE_EXTENSION",
    "FORMAT",
    "KERAS_EXTENSION",
    "KERAS_WEIGHTS_EXTENSION",
    "VERSION",
    "custom_object_scope",
    "get_custom_objects",
    "get_registered_name",
    "get_registered_object",
    "CheckpointError",
    "CustomObjectScope",
    "KerasFormatError",
    "load_model",
    "load_weights",
    "read_checkpoint",
    "register_keras_serializable",
    "save_model",
    "save_weights",
    "write_checkpoint",
]
