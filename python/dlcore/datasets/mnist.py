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
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
import urllib.request

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


def read_idx(path):
    """An IDX file (gzipped or not) as a NumPy array; raises ValueError on a bad file."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: header says {dims} ({expected} bytes of data) but the file "
            f"holds {len(data) - header}; it is truncated or damaged"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


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
    x_train, y_train = read_idx(files["train_images"]), read_idx(files["train_labels"])
    x_test, y_test = read_idx(files["test_images"]), read_idx(files["test_labels"])
    for x, y, what in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"MNIST {what} files do not match: images {x.shape}, labels {y.shape}")
    return (x_train, y_train), (x_test, y_test)
