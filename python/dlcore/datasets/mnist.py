"""MNIST handwritten digits, read from the original IDX files.

``load_data(path=None)`` returns ``((x_train, y_train), (x_test, y_test))``: uint8
images (N, 28, 28) and uint8 labels (N,), as ``keras.datasets.mnist.load_data``.

Where the files are looked for, in order: ``path``; ``$DLCORE_DATA`` (the directory
itself, or its ``mnist`` subdirectory); the cache directory
(``$XDG_CACHE_HOME/dlcore/mnist``, by default ``~/.cache/dlcore/mnist``). File names:
the official ones (``train-images-idx3-ubyte`` ...), gzipped or not; a training subset
re-packed as ``train-<N>k-images-idx3-ubyte.gz`` is also recognised. When nothing is
found, the official files are downloaded into the cache (md5-checked), if the network
allows.

An IDX file's header is checked before its body is read: the size it declares must fit
the file (a gzipped body can expand at most deflate's 1032 times, and must match the
gzip trailer), the body is decompressed only up to that size, and any damage is a
ValueError naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import re
import struct
import urllib.request
import zlib

import numpy as np

__all__ = ["load_data", "read_idx", "search_paths"]

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_DEFLATE_MAX_RATIO = 1032  # the most a deflate stream expands
_CHUNK = 1 << 20


def read_idx(path, shape=None, dtype=None):
    """An IDX file (gzipped or not) as a NumPy array. ``shape`` (None entries: any size)
    and ``dtype``, when given, are what the header must declare; they are checked, as is
    the declared size against the file's, before the body is read. A bad or damaged
    file raises ValueError naming it."""
    path = os.fspath(path)
    gz = path.endswith(".gz")
    try:
        with (gzip.open if gz else open)(path, "rb") as f:
            dims, kind = _idx_header(path, f, shape, dtype)
            body = math.prod(dims) * kind.itemsize
            _check_size(path, gz, 4 + 4 * len(dims), body)
            data = np.empty(body, np.uint8)
            view, done = memoryview(data), 0
            while done < body:
                chunk = f.read(min(_CHUNK, body - done))
                if not chunk:
                    raise ValueError(
                        f"{path}: truncated: its header declares {dims} but it ends after "
                        f"{done} of {body} bytes of data"
                    )
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
            if f.read(1):
                raise ValueError(
                    f"{path}: holds more data than its header declares ({dims}); it is damaged"
                )
    except (EOFError, zlib.error, gzip.BadGzipFile, struct.error) as e:
        raise ValueError(
            f"{path}: not a readable {'gzipped ' if gz else ''}IDX file; it is truncated or "
            f"damaged ({type(e).__name__}: {e})"
        ) from e
    return data.view(kind).reshape(dims).astype(kind.newbyteorder("="))


def _idx_header(path, f, shape, dtype):
    """(dims, dtype) from the header at the start of ``f``, checked against ``shape`` and
    ``dtype`` when given."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {magic!r})")
    ndim = magic[3]
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise ValueError(f"{path}: truncated inside its header ({ndim} dimensions declared)")
    dims = struct.unpack(f">{ndim}I", raw)
    kind = np.dtype(_IDX_TYPES[magic[2]])
    if dtype is not None and kind != np.dtype(dtype):
        raise ValueError(f"{path}: holds {kind} values; expected {np.dtype(dtype)}")
    if shape is not None and (
        len(dims) != len(shape) or any(e is not None and e != d for e, d in zip(shape, dims))
    ):
        raise ValueError(f"{path}: holds an array of shape {dims}; expected {tuple(shape)}")
    return dims, kind


def _check_size(path, gz, header, body):
    """Refuses a declared size the file cannot hold, before anything is decompressed."""
    size = os.path.getsize(path)
    if not gz:
        if size != header + body:
            raise ValueError(
                f"{path}: header declares {body} bytes of data but the file holds "
                f"{size - header}; it is truncated or damaged"
            )
        return
    if body > _DEFLATE_MAX_RATIO * size:
        raise ValueError(
            f"{path}: header declares {body} bytes of data, more than a gzip file of "
            f"{size} bytes can hold; it is damaged"
        )
    with open(path, "rb") as raw:  # the trailer's ISIZE: the data's length modulo 2**32
        raw.seek(max(size - 4, 0))
        trailer = raw.read(4)
    if len(trailer) == 4 and struct.unpack("<I", trailer)[0] != (header + body) % 2**32:
        raise ValueError(
            f"{path}: its gzip trailer and its IDX header disagree on the size of the data "
            f"({struct.unpack('<I', trailer)[0]} vs {header + body} bytes); it is truncated "
            f"or damaged"
        )


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "dlcore", "mnist")


def search_paths(path=None):
    """The directories load_data looks in, in order."""
    out = []
    if path is not None:
        out.append(os.fspath(path))
    env = os.environ.get("DLCORE_DATA")
    if env:
        out += [env, os.path.join(env, "mnist")]
    out.append(_cache_dir())
    return out


def _find(directory, stem):
    """The file for `stem` in `directory`: the official name, or a re-packed subset."""
    for name in (stem, stem + ".gz"):
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    if stem.startswith("train-"):
        pattern = re.compile(r"train-\d+k-" + re.escape(stem[len("train-") :]) + r"(\.gz)?$")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return None
        for name in names:
            if pattern.match(name):
                return os.path.join(directory, name)
    return None


def _download(directory):
    os.makedirs(directory, exist_ok=True)
    for stem in FILES.values():
        name = stem + ".gz"
        target = os.path.join(directory, name)
        if os.path.isfile(target):
            continue
        errors = []
        for mirror in MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name, timeout=30) as r:
                    payload = r.read()
            except OSError as e:
                errors.append(f"{mirror}: {e}")
                continue
            if hashlib.md5(payload).hexdigest() != MD5[name]:
                errors.append(f"{mirror}: md5 mismatch")
                continue
            tmp = target + ".part"
            with open(tmp, "wb") as f:
                f.write(payload)
            os.replace(tmp, target)
            break
        else:
            raise OSError("; ".join(errors))


def load_data(path=None, download=True):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays; see the module doc for
    where the files are looked for."""
    places = search_paths(path)
    for directory in places:
        found = {key: _find(directory, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return _load(found)
    error = None
    if download:
        try:
            _download(_cache_dir())
            return _load({key: _find(_cache_dir(), stem) for key, stem in FILES.items()})
        except OSError as e:
            error = e
    raise FileNotFoundError(
        "MNIST not found. Looked in: "
        + ", ".join(places)
        + (f"; downloading failed ({error})" if error else "")
        + ". Point load_data(path=...) or $DLCORE_DATA at a directory holding "
        "train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
        "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)."
    )


def _load(files):
    images, labels = (
        {"shape": (None, 28, 28), "dtype": np.uint8},
        {"shape": (None,), "dtype": np.uint8},
    )
    x_train = read_idx(files["train_images"], **images)
    y_train = read_idx(files["train_labels"], **labels)
    x_test = read_idx(files["test_images"], **images)
    y_test = read_idx(files["test_labels"], **labels)
    for x, y, what in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"MNIST {what} files do not match: images {x.shape}, labels {y.shape}")
    return (x_train, y_train), (x_test, y_test)
