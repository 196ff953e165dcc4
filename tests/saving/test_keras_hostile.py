"""Keras files made to hurt: zip members and HDF5 datasets whose declared sizes lie,
decompression bombs, and architectures that ask for more weights than the file holds.
Each is refused with a clear error, and none costs more than a small amount of memory:
the loads run in a child process under an address-space cap, which reports how far its
resident memory rose per file."""

import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import pytest

from conftest import SANITIZED
from dlcore import layers, models

h5py = pytest.importorskip("h5py")
MEMORY_RISE_MB = 64  # the hostile files are small; this is the readers' own overhead
WORKER = os.path.join(os.path.dirname(__file__), os.pardir, "_hostile_worker.py")


def small():
    """The model _hostile_worker.py loads weights into."""
    return models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])


def deflated_zeros(count_mib):
    """A raw deflate stream of ``count_mib`` MiB of zeros, made in milliseconds: a full
    flush makes each MiB's block independent, so one block is repeated."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(bytes(1 << 20)) + co.flush(zlib.Z_FULL_FLUSH)
    return block * count_mib + co.flush()


def zeros_crc(count_mib):
    crc, block = 0, bytes(1 << 20)
    for _ in range(count_mib):
        crc = zlib.crc32(block, crc)
    return crc


def write_zip(path, members):
    """A zip of (name, raw bytes, method, crc, declared size), written by hand so the
    sizes are whatever the test says."""
    out, central = bytearray(), bytearray()
    for name, raw, method, crc, size in members:
        offset = len(out)
        encoded = name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(raw), size,
                           len(encoded), 0) + encoded + raw  # fmt: skip
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc,
                               len(raw), size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded  # fmt: skip
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                      len(out), 0)  # fmt: skip
    path.write_bytes(bytes(out + central + end))
    return path


def stored(name, data):
    return (name, data, 0, zlib.crc32(data), len(data))


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A real archive of the small model: its members."""
    path = tmp_path_factory.mktemp("real") / "small.keras"
    small().save(path)
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def archive(path, real, **replace):
    return write_zip(path, [stored(n, replace.get(n.replace(".", "_"), data))
                            for n, data in real.items()])  # fmt: skip


def shape_bomb(path, group="layers/dense/vars/0"):
    """A weights file whose first kernel declares 16 GiB (chunked, compressed, empty)."""
    small().save_weights(path)
    with h5py.File(path, "a") as f:
        del f[group]
        f.create_dataset(group, shape=(1 << 20, 4096), dtype="f4", chunks=(256, 256),
                         compression="gzip")  # fmt: skip
    return path


def hostile_files(tmp_path, real):
    """name -> (path, how to load it)."""
    bomb, bomb_crc = deflated_zeros(256), zeros_crc(256)
    others = {name: [stored(n, d) for n, d in real.items() if n != name] for name in real}
    inner = shape_bomb(tmp_path / "inner.weights.h5")
    blob = archive(tmp_path / "whole.keras", real).read_bytes()
    (tmp_path / "t.keras").write_bytes(blob[: len(blob) * 2 // 3])
    return {
        "config-declares-256MiB": (write_zip(tmp_path / "a.keras", [
            ("config.json", bomb, 8, bomb_crc, 256 << 20), *others["config.json"]]), "load_model"),
        "weights-deflate-bomb": (write_zip(tmp_path / "b.keras", [
            *others["model.weights.h5"], ("model.weights.h5", bomb, 8, bomb_crc, 256 << 20)]),
            "load_model"),
        "config-lies-small": (write_zip(tmp_path / "c.keras", [
            ("config.json", bomb, 8, 0, 1000), *others["config.json"]]), "load_model"),
        "h5-shape-bomb": (shape_bomb(tmp_path / "s.weights.h5"), "load_weights"),
        "h5-shape-bomb-in-archive": (archive(tmp_path / "d.keras", real,
                                             model_weights_h5=inner.read_bytes()), "load_model"),
        "truncated": (tmp_path / "t.keras", "load_model"),
    }  # fmt: skip


EXPECTED = {
    "config-declares-256MiB": r"config\.json declares 268435456 bytes",
    "weights-deflate-bomb": r"model\.weights\.h5 declares 268435456 bytes",
    "config-lies-small": r"config\.json (is damaged|is not the size)",
    "h5-shape-bomb": r"\(1048576, 4096\) in the file but \(3, 4\) in the model",
    "h5-shape-bomb-in-archive": r"\(1048576, 4096\) in the file but \(3, 4\) in the model",
    "truncated": r"not a readable Keras archive|is damaged",
}


@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer's shadow memory defeats the cap")
def test_hostile_keras_files_are_refused_in_bounded_memory(tmp_path, real):
    import re

    cases = hostile_files(tmp_path, real)
    assert sorted(cases) == sorted(EXPECTED)
    arg = json.dumps([[name, kind, str(path)] for name, (path, kind) in cases.items()])
    proc = subprocess.run([sys.executable, WORKER, arg], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, pattern in EXPECTED.items():
        got = results[name]
        assert got["error"] == "KerasFormatError", f"{name}: {got}"
        assert re.search(pattern, got["message"]), f"{name}: {got['message']}"
        assert got["grew_mb"] < MEMORY_RISE_MB, f"{name}: memory rose {got['grew_mb']:.1f} MB"


def test_an_architecture_larger_than_its_file_is_refused(tmp_path, real):
    config = json.loads(real["config.json"])
    config["config"]["layers"][-1]["config"]["units"] = 1 << 30
    path = archive(tmp_path / "huge.keras", real, config_json=json.dumps(config).encode())
    with pytest.raises(ValueError, match=r"asks for a weight of shape \(4, 1073741824\)"):
        models.load_model(path)
