"""Checkpoint files: NumPy's ``.npz`` container (a zip of ``.npy`` arrays; no pickle, so
loading never runs code) holding the arrays plus a JSON header with the format name and
version, the model and optimizer configuration, and a SHA-256 of every array.

Writes are atomic: the file is written and fsync'ed under a temporary name in the same
directory, then renamed over the target, so a crash mid-save leaves the previous file
intact. The new file gets the mode ``open()`` would give it (that of the file it
replaces, else 0o666 less the umask), and saving through a symbolic link replaces the
link's target, not the link.

Reading is bounded by what the file declares and checked before anything is allocated:
:class:`CheckpointReader` reads the zip directory and every array's ``.npy`` header
first, refuses declared sizes that the file cannot hold (an archive member may expand
to at most :data:`MAX_EXPANSION` times the file's size; dlcore writes them stored),
and lets the caller compare each array's shape and dtype with what it expects before
reading it. A truncated, corrupted, oversized or foreign file raises
:class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile

import numpy as np

from .atomic import atomic_write

__all__ = [
    "FORMAT",
    "MAX_EXPANSION",
    "VERSION",
    "CheckpointError",
    "CheckpointReader",
    "read_checkpoint",
    "write_checkpoint",
]

FORMAT = "dlcore-checkpoint"
VERSION = 1
_HEADER = "__dlcore_header__"
MAX_EXPANSION = 16  # declared bytes per byte of file a checkpoint may ask to decompress
_SLACK = 1 << 20  # ... plus this much, so a tiny file may hold a few empty arrays
_MAX_HEADER = 64 << 20  # the JSON header's largest size
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """A file that is not a readable dlcore checkpoint, or does not fit the model."""


def _digest(array):
    h = hashlib.sha256()
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))  # no copy when C-ordered
    return h.hexdigest()


# ---------------------------------------------------------------- writing


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
    with atomic_write(path) as f:  # through a symbolic link: its target
        np.savez(f, **{_HEADER: blob}, **arrays)
    return path


class ArrayInfo:
    """What a member's ``.npy`` header declares: shape, dtype, order, and where its data
    starts; checked against the member's size before anything is read."""

    __slots__ = ("dtype", "fortran_order", "nbytes", "offset", "shape")

    def __init__(self, shape, dtype, fortran_order, offset):
        self.shape, self.dtype, self.fortran_order = shape, dtype, fortran_order
        self.offset = offset
        self.nbytes = math.prod(shape) * dtype.itemsize

    def __repr__(self):
        return f"ArrayInfo(shape={self.shape}, dtype={self.dtype})"


class CheckpointReader:
    """An open checkpoint. Opening reads the zip directory, the header and each array's
    declared shape and dtype (:attr:`arrays`), nothing more; :meth:`read` then reads one
    array and checks its checksum. Use it as a context manager::

        with CheckpointReader(path) as ckpt:
            if ckpt.arrays["weights/0000"].shape == expected:
                w = ckpt.read("weights/0000")
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no checkpoint at {self.path!r}")
        self._file = open(self.path, "rb")  # a file that cannot be opened raises its OSError
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if getattr(self, "_zip", None) is not None:
            self._zip.close()
        self._file.close()

    def error(self, message):
        return CheckpointError(f"{self.path!r} {message}")

    # ------------------------------------------------------------ opening
    def _open(self):
        size = os.fstat(self._file.fileno()).st_size
        try:
            self._zip = zipfile.ZipFile(self._file)
            members = {}
            for info in self._zip.infolist():
                if not info.filename.endswith(".npy") or info.filename[:-4] in members:
                    raise self.error(f"holds an unexpected member {info.filename!r}")
                members[info.filename[:-4]] = info
            declared = sum(info.file_size for info in members.values())
            if declared > MAX_EXPANSION * size + _SLACK:
                raise self.error(
                    f"declares {declared} bytes of arrays in a file of {size} bytes; a "
                    f"checkpoint may expand at most {MAX_EXPANSION} times (a zip bomb?)"
                )
            if _HEADER not in members:
                raise self.error(
                    f"is not a dlcore checkpoint (no dlcore header; it holds {sorted(members)[:5]})"
                )
            self._members = members
            self.header = self._read_header(members[_HEADER])
            self.arrays = {
                name: self._array_info(name, info)
                for name, info in members.items()
                if name != _HEADER
            }
        except CheckpointError:
            raise
        except Exception as e:  # a damaged zip fails in many ways: a
            # flipped compression method raises NotImplementedError, a flipped flag
            # RuntimeError, a damaged .npy header ValueError, ...
            raise self.error(
                f"is not a readable dlcore checkpoint: it is truncated, corrupted or of "
                f"another format ({type(e).__name__}: {e})"
            ) from e
        expected = self.header.get("checksums")
        if not isinstance(expected, dict) or set(expected) != set(self.arrays):
            raise self.error(
                f"is damaged: its arrays {sorted(self.arrays)[:8]} do not match its header "
                f"{sorted(expected)[:8] if isinstance(expected, dict) else expected!r}"
            )

    def _array_info(self, name, info):
        with self._zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise self.error(f"array {name!r} has .npy format version {version}")
            offset = f.tell()
        if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
            raise self.error(f"array {name!r} has dtype {dtype}; a checkpoint holds numbers")
        if any(d < 0 for d in shape):
            raise self.error(f"array {name!r} declares a negative dimension {tuple(shape)}")
        array = ArrayInfo(tuple(shape), dtype, fortran_order, offset)
        if offset + array.nbytes != info.file_size:
            raise self.error(
                f"is damaged: array {name!r} declares shape {array.shape} {dtype} "
                f"({array.nbytes} bytes) but its member holds {info.file_size - offset}"
            )
        return array

    def _read_header(self, info):
        array = self._array_info(_HEADER, info)
        if array.dtype != np.uint8 or len(array.shape) != 1 or array.nbytes > _MAX_HEADER:
            raise self.error(f"has a malformed header ({array})")
        header = json.loads(self._read_bytes(_HEADER, array).tobytes().decode())
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise self.error(
                f"is not a dlcore checkpoint (format "
                f"{header.get('format') if isinstance(header, dict) else header!r})"
            )
        version = header.get("version")
        if not isinstance(version, int) or not 1 <= version <= VERSION:
            raise self.error(
                f"has checkpoint format version {version!r}; this dlcore reads 1 to {VERSION}"
            )
        return header

    # ------------------------------------------------------------ reading arrays
    def _read_bytes(self, name, array):
        """The array's data as a flat uint8 array, read in chunks into one allocation of
        the declared size (which opening checked against the member)."""
        out = np.empty(array.nbytes, np.uint8)
        view = memoryview(out)
        with self._zip.open(self._members[name]) as f:
            f.seek(array.offset)
            done = 0
            while done < array.nbytes:
                chunk = f.read(min(_CHUNK, array.nbytes - done))
                if not chunk:
                    raise self.error(f"is truncated inside array {name!r}")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
            if f.read(1):  # reading to the end also checks the member's CRC
                raise self.error(f"is damaged: array {name!r} holds more than it declares")
        return out

    def read(self, name):
        """Array ``name`` as stored, after checking its checksum."""
        array = self.arrays[name]
        try:
            data = self._read_bytes(name, array)
        except CheckpointError:
            raise
        except Exception as e:
            raise self.error(f"is damaged inside array {name!r} ({type(e).__name__}: {e})") from e
        order = "F" if array.fortran_order else "C"
        out = data.view(array.dtype).reshape(array.shape, order=order)
        if _digest(out) != self.header["checksums"][name]:
            raise self.error(f"is damaged: array {name!r} fails its checksum")
        return out


def read_checkpoint(path):
    """Returns (header, arrays) after checking the format and every checksum."""
    with CheckpointReader(path) as ckpt:
        return ckpt.header, {name: ckpt.read(name) for name in ckpt.arrays}
