"""Keras 3 files: the ``.keras`` archive and the ``.weights.h5`` weights file.

A ``.keras`` file is a zip of ``metadata.json`` (the Keras version), ``config.json``
(the architecture and compile settings, :mod:`.keras_config`) and ``model.weights.h5``.
The HDF5 file holds each layer's variables as datasets ``0``, ``1``, ... of a group
``<path>/vars`` (its ``name`` attribute is the layer's name), where ``<path>`` follows
the model's structure: ``layers/<layer>`` for each layer of a model, named by the
layer's class in snake case and numbered per class in the order of ``model.layers``
(``layers/dense``, ``layers/dense_1``), ``layers/<model>/layers/...`` inside a nested
model, and a sub-layer's attribute name below its owner (an LSTM's weights sit in
``layers/lstm/cell/vars``: :data:`WEIGHT_GROUPS`). The optimizer's variables are in
``optimizer/vars``: the step count, the learning rate, then its slots
(:data:`OPTIMIZER_SLOTS`). A ``.weights.h5`` file is the same HDF5 file on its own.

Reading trusts nothing in the file: zip members and HDF5 datasets are checked against
their declared sizes, and each weight's shape and dtype against the model before it is
read; HDF5 links to other files, external and virtual datasets are refused; nothing in
the file is executed. HDF5 needs h5py (``pip install 'dlcore[keras]'``).

The file of an unbuilt model holds no weights (Keras warns when it writes one): it loads
as an unbuilt model, as in Keras. Keras' legacy HDF5 files (``model.save("m.h5")``, and
weights in the legacy layout) are not read; the error says how to re-save them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import zipfile

import numpy as np

from dlcore import initializers
from dlcore.layers.base import Layer, registry, to_snake_case

from .atomic import atomic_write
from .keras_config import KerasFormatError, compile_from_keras, model_from_keras, model_to_keras

__all__ = [
    "OPTIMIZER_SLOTS",
    "WEIGHT_GROUPS",
    "KerasFormatError",
    "check_hdf5_model",
    "load_keras_archive_weights",
    "load_keras_model",
    "load_keras_weights",
    "save_keras_model",
    "save_keras_weights",
]

KERAS_VERSION = "3.8.0"  # the Keras version whose format dlcore writes (metadata.json)
READS_MAJOR = (3, 3)  # the Keras versions (major) whose archives dlcore reads
MAX_EXPANSION = 16  # declared bytes per byte of archive a member may decompress to
MAX_CONFIG = 64 << 20  # config.json's largest size
_SLACK = 1 << 20

# class name -> the sub-group of a layer's path that holds its own weights, where Keras
# keeps them in a sub-object (an RNN layer's cell)
WEIGHT_GROUPS = {"LSTM": "cell", "GRU": "cell", "SimpleRNN": "cell"}

# optimizer class -> its slots in Keras' order: each tuple is one pass over the
# trainable variables, its slots interleaved per variable (Adam: m0 v0 m1 v1 ..., then
# vhat0 vhat1 ... with amsgrad); names are dlcore's slot names
OPTIMIZER_SLOTS = {
    "SGD": (("momentum",),),
    "Adam": (("m", "v"), ("vhat",)),
    "AdamW": (("m", "v"), ("vhat",)),
    "RMSprop": (("v",), ("mom",), ("mg",)),
}


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "Keras files (.keras, .weights.h5) need h5py: pip install 'dlcore[keras]'"
        ) from e
    return h5py


# ---------------------------------------------------------------- layout


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _name_key(attr):
    return f"~{attr}" if attr.startswith("_") else attr


def weight_layout(layer, path=""):
    """``[(group path, layer name, [weights])]`` for ``layer`` and everything in it, in
    Keras' order (the order of its trainable variables too)."""
    join = (lambda p: f"{path}/{p}") if path else (lambda p: p)
    own = layer._own_weights(True) + layer._own_weights(False)
    group = WEIGHT_GROUPS.get(type(layer).__name__)
    if group:
        entries = [(join("vars"), layer.name, []), (join(f"{group}/vars"), layer.name, own)]
    else:
        entries = [(join("vars"), layer.name, own)]
    if registry.name_of(layer) in ("Sequential", "Functional"):
        used = {}
        for sub in layer.layers:
            name = _unique(to_snake_case(type(sub).__name__), used)
            entries += weight_layout(sub, join(f"layers/{name}"))
        return entries
    for attr, value in sorted(vars(layer).items(), key=lambda kv: _name_key(kv[0])):
        if attr in layer._untracked:
            continue
        if isinstance(value, Layer):
            entries += weight_layout(value, join(attr))
        elif isinstance(value, (list, tuple, dict)):
            used = {}
            for item in value.values() if isinstance(value, dict) else value:
                if isinstance(item, Layer):
                    name = _unique(to_snake_case(type(item).__name__), used)
                    entries += weight_layout(item, join(f"{attr}/{name}"))
    return entries


def _trainable_order(model, layout):
    """The model's trainable weights in Keras' order (the optimizer's slots follow it):
    the layers' order, each layer's own weights then those of the layers it holds in the
    order it tracks them (a Bidirectional's forward layer first), as Keras'
    trainable_variables; the layout walks held layers by name instead."""
    return list(model.trainable_weights)


def _slot_names(optimizer):
    passes = OPTIMIZER_SLOTS.get(type(optimizer).__name__)
    if passes is None:
        raise KerasFormatError(
            f"the state of a {type(optimizer).__name__} optimizer has no Keras layout "
            f"(dlcore knows {sorted(OPTIMIZER_SLOTS)})"
        )
    return [tuple(n for n in p if n in optimizer.slot_names) for p in passes]


# ---------------------------------------------------------------- writing


def _optimizer_arrays(model, layout):
    optimizer = model.optimizer
    params = _trainable_order(model, layout)
    iterations, state = optimizer.get_state(params)
    names = optimizer.slot_names
    per_param = [dict(zip(names, state[i * len(names) : (i + 1) * len(names)])) for i in range(len(params))]  # fmt: skip
    arrays = [np.asarray(iterations, np.int64)]
    if not callable(optimizer.learning_rate):
        arrays.append(np.asarray(optimizer.learning_rate, np.float32))
    for group in _slot_names(optimizer):
        for slots in per_param:
            arrays += [np.asarray(slots[n]) for n in group]
    return optimizer.name, arrays


def _write_h5(model, target):
    h5py = _h5py()
    layout = weight_layout(model)
    with h5py.File(target, "w") as f:
        for path, name, weights in layout:
            group = f.require_group(path)
            group.attrs["name"] = name
            for i, w in enumerate(weights):
                group.create_dataset(str(i), data=w.data)
        if model.optimizer is not None and model.get_compile_config():
            name, arrays = _optimizer_arrays(model, layout)
            group = f.require_group("optimizer/vars")
            group.attrs["name"] = name
            for i, a in enumerate(arrays):
                group.create_dataset(str(i), data=a)


def save_keras_model(model, path):
    """Writes ``model`` as a Keras 3 ``.keras`` archive (atomically)."""
    config = json.dumps(model_to_keras(model))
    metadata = json.dumps({"keras_version": KERAS_VERSION, "date_saved": "", "producer": "dlcore"})
    weights = io.BytesIO()
    _write_h5(model, weights)
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", metadata)
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", weights.getvalue())


def save_keras_weights(model, path):
    """Writes the weights (and the optimizer's state) as a Keras ``.weights.h5`` file."""
    _h5py()
    with atomic_write(path) as f:
        _write_h5(model, f)


# ---------------------------------------------------------------- reading


class _Archive:
    """A ``.keras`` zip, its members' declared sizes checked before anything is read."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.size = os.path.getsize(self.path)
        self._file = open(self.path, "rb")
        try:
            self.zip = zipfile.ZipFile(self._file)
            self.members = {i.filename: i for i in self.zip.infolist()}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            self._file.close()
            raise KerasFormatError(
                f"{self.path!r} is not a readable Keras archive: it is truncated, corrupted "
                f"or of another format ({type(e).__name__}: {e})"
            ) from e

    def close(self):
        self.zip.close()
        self._file.close()

    def read(self, name, limit):
        info = self.members.get(name)
        if info is None:
            raise KerasFormatError(
                f"{self.path!r} is not a Keras archive: it has no {name} (it holds "
                f"{sorted(self.members)[:6]})"
            )
        cap = min(limit, MAX_EXPANSION * self.size + _SLACK)
        if info.file_size > cap:
            raise KerasFormatError(
                f"{self.path!r}: its {name} declares {info.file_size} bytes, more than the "
                f"{cap} a file of {self.size} bytes may hold (truncated or hostile)"
            )
        try:
            with self.zip.open(info) as f:
                data = f.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                RuntimeError) as e:  # fmt: skip
            raise KerasFormatError(
                f"{self.path!r}: its {name} is damaged ({type(e).__name__}: {e})"
            ) from e
        if len(data) != info.file_size:
            raise KerasFormatError(f"{self.path!r}: its {name} is not the size it declares")
        return data


def _json(data, what, path):
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise KerasFormatError(f"{path!r}: its {what} is not valid JSON ({e})") from e
    if not isinstance(value, dict):
        raise KerasFormatError(f"{path!r}: its {what} is not a JSON object")
    return value


def _check_version(metadata, path):
    version = str(metadata.get("keras_version", ""))
    match = re.match(r"(\d+)\.", version)
    if not match:
        raise KerasFormatError(f"{path!r}: its metadata names no Keras version ({version!r})")
    major = int(match.group(1))
    if major > max(READS_MAJOR):
        raise KerasFormatError(
            f"{path!r} was written by Keras {version}, a newer file format than this dlcore "
            f"reads (Keras {min(READS_MAJOR)}.x to {max(READS_MAJOR)}.x); update dlcore"
        )
    if major < min(READS_MAJOR):
        raise KerasFormatError(
            f"{path!r} was written by Keras {version}; dlcore reads the Keras 3 format: "
            f"load it with Keras 3 and save it again"
        )


def load_keras_model(path, compile=True, safe_mode=True):
    """The model a Keras 3 ``.keras`` archive holds, with its weights and (with
    ``compile``) its optimizer, loss, metrics and optimizer state."""
    if not safe_mode:
        raise ValueError(
            "load_model: dlcore never executes code from a file; safe_mode=False has no effect"
        )
    archive = _Archive(path)
    try:
        metadata = _json(archive.read("metadata.json", 1 << 20), "metadata.json", archive.path)
        _check_version(metadata, archive.path)
        config = _json(archive.read("config.json", MAX_CONFIG), "config.json", archive.path)
        info = archive.members.get("model.weights.h5")
        declared = info.file_size if info is not None else 0
        where = repr(archive.path)
        with _allocation_limit(2 * declared + _SLACK, f"the architecture in {where}"):
            try:
                model = model_from_keras(config, where)
            except KerasFormatError:
                raise
            except (ValueError, TypeError, KeyError, AttributeError, IndexError,
                    OverflowError, RecursionError) as e:  # fmt: skip
                raise KerasFormatError(f"{where}: dlcore cannot rebuild its model: {e}") from e
        compile_config = config.get("compile_config")
        if compile and isinstance(compile_config, dict) and compile_config.get("loss"):
            try:
                compile_from_keras(model, compile_config, where)
            except KerasFormatError as e:
                raise KerasFormatError(f"{e}; load with compile=False to skip it") from e
            except (ValueError, TypeError) as e:
                raise KerasFormatError(
                    f"{where}: cannot compile as its compile_config says ({e}); load with "
                    f"compile=False to skip it"
                ) from e
        blob = archive.read("model.weights.h5", MAX_EXPANSION * archive.size + _SLACK)
    finally:
        archive.close()
    _read_h5(model, io.BytesIO(blob), f"{where} (model.weights.h5)", optimizer=compile)
    return model


def load_keras_archive_weights(model, path):
    """Loads the weights (and optimizer state) of a ``.keras`` archive into ``model``."""
    archive = _Archive(path)
    try:
        metadata = _json(archive.read("metadata.json", 1 << 20), "metadata.json", archive.path)
        _check_version(metadata, archive.path)
        blob = archive.read("model.weights.h5", MAX_EXPANSION * archive.size + _SLACK)
    finally:
        archive.close()
    _read_h5(model, io.BytesIO(blob), f"{archive.path!r} (model.weights.h5)", optimizer=True)


def load_keras_weights(model, path):
    """Loads a Keras ``.weights.h5`` file into ``model`` (and the optimizer's state,
    when the model is compiled and the file has it)."""
    _read_h5(model, os.fspath(path), repr(os.fspath(path)), optimizer=True)


@contextlib.contextmanager
def _allocation_limit(nbytes, source):
    """Holds the weights a file's architecture creates to what the file holds, where
    dlcore's initializers can enforce it."""
    limit = getattr(initializers, "allocation_limit", None)
    if limit is None:
        yield
    else:
        with limit(nbytes, source):
            yield


def _open_h5(source, where):
    h5py = _h5py()
    try:
        return h5py.File(source, "r")
    except (OSError, ValueError) as e:
        raise KerasFormatError(
            f"{where} is not a readable HDF5 file: it is truncated, corrupted or of another "
            f"format ({e})"
        ) from e


def _group(f, path, where):
    h5py = _h5py()
    node = f
    for part in path.split("/"):
        if not isinstance(node, h5py.Group) or part not in node:
            return None
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise KerasFormatError(f"{where}: {path} is a link ({type(link).__name__}); refused")
        node = node[part]
    if not isinstance(node, h5py.Group):
        raise KerasFormatError(f"{where}: {path} is not a group")
    return node


def _datasets(group, path, where):
    """The datasets ``0``, ``1``, ... of a ``vars`` group, checked (nothing read)."""
    h5py = _h5py()
    keys = list(group.keys())
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
        raise KerasFormatError(f"{where}: {path} holds {keys[:8]}, not variables 0, 1, ...")
    out = []
    for i in range(len(keys)):
        link = group.get(str(i), getlink=True)
        ds = group[str(i)] if isinstance(link, h5py.HardLink) else None
        if not isinstance(ds, h5py.Dataset) or ds.external or ds.is_virtual:
            raise KerasFormatError(
                f"{where}: {path}/{i} is not a plain dataset (a link, an external or a "
                f"virtual dataset); refused"
            )
        out.append(ds)
    return out


def _read(ds, shape, kinds, where, what):
    if ds.shape != tuple(shape):
        raise KerasFormatError(
            f"{where} does not fit the model: {what} is {ds.shape} in the file but "
            f"{tuple(shape)} in the model"
        )
    if ds.dtype.kind not in kinds:
        raise KerasFormatError(f"{where}: {what} has dtype {ds.dtype}, expected numbers")
    return np.asarray(ds[()])


def _legacy_hdf5_error(f, where):
    """The error naming what a legacy Keras HDF5 file ``f`` (h5py, open) holds, or None
    for Keras 3's weights file. ``model.save("m.h5")`` (Keras 2, and Keras 3's legacy
    writer) keeps the architecture in the root's ``model_config`` and the weights under
    ``model_weights``; a legacy weights file has the ``layer_names`` at its root."""
    if "model_config" in f.attrs or f.get("model_weights", getlink=True) is not None:
        return KerasFormatError(
            f"{where} is a whole model in Keras' legacy HDF5 format (model.save('m.h5')), "
            f"which dlcore does not read: load it in Keras, save it again as a .keras "
            f"archive (model.save('m.keras')) and load that"
        )
    if "layer_names" in f.attrs:
        return KerasFormatError(
            f"{where} holds weights in Keras' legacy HDF5 layout, which dlcore does not "
            f"read: load them in Keras and save them again with "
            f"model.save_weights('m.weights.h5')"
        )
    return None


def check_hdf5_model(path):
    """Refuses ``path``, an HDF5 file given to ``load_model``, with the error that fits
    it: a legacy Keras file is named as one; Keras 3's weights file needs a built model
    and ``load_weights``."""
    name = os.fspath(path)
    f = _open_h5(name, repr(name))
    try:
        error = _legacy_hdf5_error(f, repr(name))
    finally:
        f.close()
    raise error or ValueError(
        f"load_model: {name!r} is an HDF5 file (Keras weights); build the model and use "
        f"model.load_weights({name!r})"
    )


def _stored_weight(f):
    """The path of the first dataset outside the optimizer's group, or None (h5py's
    visit follows hard links only: each object once, no other file)."""
    h5py = _h5py()

    def found(name, node):
        if isinstance(node, h5py.Dataset) and not name.startswith("optimizer/"):
            return name
        return None

    return f.visititems(found)


def _read_h5(model, source, where, optimizer):
    f = _open_h5(source, where)
    try:
        legacy = _legacy_hdf5_error(f, where)
        if legacy is not None:
            raise legacy
        if not model.built:
            # the file of an unbuilt model (Keras warns when it writes one) holds no
            # weights: the model stays unbuilt, as Keras loads it
            stored = _stored_weight(f)
            if stored is not None:
                raise KerasFormatError(
                    f"{model.name}: build the model before loading weights into it ({where} "
                    f"holds weights, e.g. {stored}, and the model has none yet)"
                )
            return
        layout = weight_layout(model)
        values = []
        for path, name, weights in layout:
            if not weights:
                continue
            group = _group(f, path, where)
            if group is None:
                raise KerasFormatError(
                    f"{where} does not fit the model: it has no weights for layer {name!r} ({path})"
                )
            datasets = _datasets(group, path, where)
            if len(datasets) != len(weights):
                raise KerasFormatError(
                    f"{where} does not fit the model: layer {name!r} has {len(datasets)} "
                    f"weights in the file, {len(weights)} in the model"
                )
            for i, (ds, w) in enumerate(zip(datasets, weights)):
                # integers too: Keras keeps a Normalization's count as one
                values.append((w, _read(ds, w.shape, "fiu", where, f"weight {i} of {name!r}")))
        state = _read_optimizer(model, f, layout, where) if optimizer else None
    except KerasFormatError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise KerasFormatError(f"{where} is damaged ({type(e).__name__}: {e})") from e
    finally:
        f.close()
    for w, value in values:  # all read and checked: none assigned before
        w.data[...] = value
    if state is not None:
        params, iterations, learning_rate, arrays = state
        model.optimizer.params = params
        model.optimizer.set_state(params, iterations, arrays)
        if learning_rate is not None:
            model.optimizer.learning_rate = learning_rate


def _read_optimizer(model, f, layout, where):
    """(params, iterations, learning rate or None, slot arrays in dlcore's order), or
    None when the file or the model has no optimizer state to match."""
    optimizer = getattr(model, "optimizer", None)
    group = _group(f, "optimizer/vars", where)
    if optimizer is None or group is None or type(optimizer).__name__ not in OPTIMIZER_SLOTS:
        return None
    datasets = _datasets(group, "optimizer/vars", where)
    if not datasets:
        return None  # saved before its first step
    params = _trainable_order(model, layout)
    passes = _slot_names(optimizer)
    has_lr = not callable(optimizer.learning_rate)
    expected = 1 + has_lr + sum(len(p) for p in passes) * len(params)
    if len(datasets) != expected:
        raise KerasFormatError(
            f"{where}: its {optimizer.name} optimizer has {len(datasets)} variables; this "
            f"model's {type(optimizer).__name__} has {expected}; load with compile=False"
        )
    iterations = int(_read(datasets[0], (), "iu", where, "the optimizer's step count"))
    learning_rate = None
    if has_lr:
        learning_rate = float(_read(datasets[1], (), "f", where, "the learning rate"))
    it = iter(datasets[1 + has_lr :])
    slots = [{} for _ in params]
    for group_names in passes:
        for p, own in zip(params, slots):
            for n in group_names:
                own[n] = _read(next(it), p.shape, "f", where, f"slot {n!r} of {p.name}")
    arrays = [own[n] for own in slots for n in optimizer.slot_names]
    return params, iterations, learning_rate, arrays
