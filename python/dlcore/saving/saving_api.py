"""``save`` / ``load_model`` / ``save_weights`` / ``load_weights``: the file format
follows the name when writing and the content when reading.

========================  ==========================================  =================
extension                 format                                      written by
========================  ==========================================  =================
``.dlc``                  dlcore's checkpoint (:mod:`.checkpoint`):   ``save``,
                          atomic, checksummed, resumes training       ``save_weights``
                          exactly
``.keras``                Keras 3's archive (:mod:`.keras_file`)      ``save``
``.weights.h5``           Keras 3's weights file                      ``save_weights``
========================  ==========================================  =================

Reading looks at what a file holds, so a dlcore checkpoint loads whatever its name
(files written before ``.dlc`` existed were often called ``.keras``).
"""

from __future__ import annotations

import os
import warnings
import zipfile

from dlcore.registry import using_custom_objects

from . import keras_file, model_io

__all__ = [
    "DLCORE_EXTENSION",
    "KERAS_EXTENSION",
    "KERAS_WEIGHTS_EXTENSION",
    "load_model",
    "load_weights",
    "save_model",
    "save_weights",
]

DLCORE_EXTENSION = ".dlc"
KERAS_EXTENSION = ".keras"
KERAS_WEIGHTS_EXTENSION = ".weights.h5"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DLCORE_HEADER = "__dlcore_header__"  # the member every dlcore checkpoint has


def _format_for(path, fn, keras_extension):
    name = os.fspath(path)
    if name.endswith(DLCORE_EXTENSION):
        return "dlcore"
    if name.endswith(keras_extension):
        return "keras"
    raise ValueError(
        f"{fn}: cannot tell the format of {name!r} from its extension; name it "
        f"'*{DLCORE_EXTENSION}' for dlcore's checkpoint format (atomic, checksummed, "
        f"resumes training exactly) or '*{keras_extension}' for Keras 3's format"
    )


def _content(path):
    """'keras' (a Keras archive), 'hdf5', or 'other' (dlcore's reader decides)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        return "hdf5"
    names = set()
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            pass
    if "config.json" in names:
        return "keras"
    if f"{_DLCORE_HEADER}.npy" not in names and path.endswith(KERAS_EXTENSION):
        return "keras"  # damaged or foreign: the Keras reader names what is wrong
    return "other"


def save_model(model, path):
    """Writes the model in the format its extension names (``.dlc``, ``.keras``). An
    unbuilt model's ``.keras`` file holds no weights: Keras warns when it writes one, and
    so does dlcore (a ``.dlc`` file keeps the unbuilt model as it is, silently)."""
    if _format_for(path, "save", KERAS_EXTENSION) == "keras":
        if not model.built:
            warnings.warn(
                f"{model.name} is not built yet: its .keras file will hold no weights. Build "
                f"the model first (model.build(input_shape), or call it on data) to save them",
                UserWarning,
                stacklevel=3,  # the caller of model.save
            )
        keras_file.save_keras_model(model, path)
    else:
        model_io.save_model(model, path)


def load_model(filepath=None, custom_objects=None, compile=True, safe_mode=True, *, path=None):
    """Rebuilds a model saved with ``save``, in either format, or by Keras 3.

    ``custom_objects``: the user's classes and functions the file names (custom layers,
    losses, metrics, activations, initializers, regularizers, constraints), as a dict
    keyed by the name in the file (the class's or function's name, or ``"package>name"``
    when it was registered with ``register_keras_serializable``), as in Keras:
    ``load_model("m.keras", custom_objects={"MyLayer": MyLayer})``. A
    ``custom_object_scope`` and ``get_custom_objects()`` supply them too.
    """
    if isinstance(custom_objects, bool):  # load_model(path, False): compile, as before
        warnings.warn(
            "load_model: the second argument is custom_objects, as in Keras; pass "
            "compile=... by name",
            DeprecationWarning,
            stacklevel=2,
        )
        custom_objects, compile = None, custom_objects
    if path is not None:  # dlcore's earlier name of the argument
        if filepath is not None:
            raise TypeError("load_model: give filepath or path, not both")
        filepath = path
    if filepath is None:
        raise TypeError("load_model: give the file to read, e.g. load_model('m.keras')")
    with using_custom_objects(custom_objects, "load_model"):
        return _load_model(filepath, compile, safe_mode)


def _load_model(path, compile, safe_mode):
    name = os.fspath(path)
    if name.endswith(".onnx"):
        raise ValueError(
            f"load_model: {name!r} is an ONNX file; dlcore writes ONNX (model.export) but "
            f"loads its own (.dlc) and Keras 3 (.keras) files only"
        )
    kind = _content(path)
    if kind == "keras":
        return keras_file.load_keras_model(path, compile=compile, safe_mode=safe_mode)
    if kind == "hdf5":
        keras_file.check_hdf5_model(path)  # raises: a weights file, or a legacy one
    return model_io.load_model(path, compile=compile)


def save_weights(model, path):
    """Writes the weights in the format the extension names (``.dlc``, ``.weights.h5``)."""
    if _format_for(path, "save_weights", KERAS_WEIGHTS_EXTENSION) == "keras":
        keras_file.save_keras_weights(model, path)
    else:
        model_io.save_weights(model, path)


def load_weights(model, path):
    """Loads weights from a dlcore file, a Keras ``.weights.h5`` or a ``.keras`` archive."""
    kind = _content(path)
    if kind == "hdf5":
        keras_file.load_keras_weights(model, path)
    elif kind == "keras":
        keras_file.load_keras_archive_weights(model, path)
    else:
        model_io.load_weights(model, path)
