"""Checkpoint files: NumPy's ``.npz`` container (a zip of ``.npy`` arrays, read with
``allow_pickle=False``, so loading never runs code) holding the arrays plus a JSON
header with the format name and version, the model and optimizer configuration, and
a SHA-256 of every array.

Writes are atomic: the file is written and fsync'ed under a temporary name in the same
directory, then renamed over the target, so a crash mid-save leaves the previous file
intact. A truncated, corrupted or foreign file raises :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import numpy as np

__all__ = ["CheckpointError", "write_checkpoint", "read_checkpoint", "FORMAT", "VERSION"]

FORMAT = "dlcore-checkpoint"
VERSION = 1
_HEADER = "__dlcore_header__"


class CheckpointError(ValueError):
    """A file that is not a readable dlcore checkpoint, or does not fit the model."""


def _digest(array):
    h = hashlib.sha256()
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def write_checkpoint(path, header, arrays):
    """Writes ``arrays`` (name -> ndarray) and the JSON-serialisable ``header``."""
    path = os.fspath(path)
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise TypeError(f"checkpoint array {name!r} has dtype {a.dtype}; only numeric arrays")
    header = dict(
        header,
        format=FORMAT,
        version=VERSION,
        checksums={name: _digest(a) for name, a in arrays.items()},
    )
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{_HEADER: blob}, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)
    return path


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path):
    """Returns (header, arrays) after checking the format and every checksum."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    with open(path, "rb") as f:  # a file that cannot be opened raises its OSError
        try:
            with np.load(f, allow_pickle=False) as z:
                if _HEADER not in z.files:
                    raise CheckpointError(
                        f"{path!r} is not a dlcore checkpoint (no dlcore "
                        f"header; it holds {sorted(z.files)[:5]})"
                    )
                header = json.loads(z[_HEADER].tobytes().decode())
                arrays = {name: z[name] for name in z.files if name != _HEADER}
        except CheckpointError:
            raise
        except Exception as e:  # a damaged zip fails in many ways: a flipped compression
            # method raises NotImplementedError, a flipped flag RuntimeError, ...
            raise CheckpointError(
                f"{path!r} is not a readable dlcore checkpoint: it is "
                f"truncated, corrupted or of another format "
                f"({type(e).__name__}: {e})"
            ) from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path!r} is not a dlcore checkpoint (format "
            f"{header.get('format') if isinstance(header, dict) else header!r})"
        )
    version = header.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise CheckpointError(
            f"{path!r} has checkpoint format version {version!r}; this dlcore reads 1 to {VERSION}"
        )
    expected = header.get("checksums", {})
    if set(expected) != set(arrays):
        raise CheckpointError(
            f"{path!r} is damaged: its arrays {sorted(arrays)} do not match "
            f"its header {sorted(expected)}"
        )
    for name, a in arrays.items():
        if _digest(a) != expected[name]:
            raise CheckpointError(f"{path!r} is damaged: array {name!r} fails its checksum")
    return header, arrays
