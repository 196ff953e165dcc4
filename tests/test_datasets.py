import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from dlcore.datasets import mnist


def test_load_data_from_the_shared_copy(mnist_dir):
    (x_train, y_train), (x_test, y_test) = mnist.load_data(mnist_dir, download=False)
    assert x_train.shape == (20000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (20000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert set(np.unique(y_train)) == set(range(10)) and x_train.max() == 255
    counts = np.bincount(y_train)
    assert counts.min() >= 1775 and counts.max() <= 2281  # the README's class counts
    # the official test set, byte for byte
    with open(os.path.join(mnist_dir, "t10k-labels-idx1-ubyte.gz"), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == mnist.MD5["t10k-labels-idx1-ubyte.gz"]


def test_dlcore_data_environment_variable(mnist_dir, monkeypatch):
    monkeypatch.setenv("DLCORE_DATA", mnist_dir)
    (_, y_train), _ = mnist.load_data(download=False)
    assert len(y_train) == 20000


def _write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_reads_plain_and_gzipped_official_names(tmp_path):
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (5, 28, 28)), rng.integers(0, 10, 5)
    _write_idx(tmp_path / "train-images-idx3-ubyte", imgs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs[:2], gz=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:2])
    (x, y), (xt, yt) = mnist.load_data(tmp_path, download=False)
    np.testing.assert_array_equal(x, imgs)
    np.testing.assert_array_equal(yt, labels[:2])


def test_missing_files_say_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DLCORE_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"MNIST not found\. Looked in: .*empty.*cache"):
        mnist.load_data(tmp_path / "empty", download=False)


def test_damaged_idx_files_raise(tmp_path):
    _write_idx(tmp_path / "x", np.zeros((3, 4, 4)))
    data = (tmp_path / "x").read_bytes()
    (tmp_path / "cut").write_bytes(data[:-5])
    with pytest.raises(ValueError, match="truncated or damaged"):
        mnist.read_idx(tmp_path / "cut")
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04" + data[4:])
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.read_idx(tmp_path / "bad")
