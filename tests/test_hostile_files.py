"""Files made to hurt: checkpoints and MNIST files whose declared sizes, shapes, dtypes or
indices lie. Each is refused with a CheckpointError / ValueError naming the file; none
costs more than a small multiple of what it legitimately holds in memory (the loads
run in a child process under an address-space cap, which measures its peak resident
memory per file); and checkpoints are written with the mode ``open()`` would give
them, through symbolic links to their targets."""

import gzip
import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest

from conftest import SANITIZED
from dlcore import layers, models
from dlcore.datasets import mnist
from dlcore.saving import CheckpointError, read_checkpoint, write_checkpoint

MEMORY_CAP_MB = 64  # the hostile models are a few hundred bytes; the readers' own overhead


def small_model():
    m = models.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    m.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), epochs=1, verbose=0)
    return m


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real checkpoint of a small trained model: (path, header, arrays)."""
    path = tmp_path_factory.mktemp("ckpt") / "small.dlc"
    small_model().save(path)
    header, arrays = read_checkpoint(path)
    for key in ("format", "version", "checksums"):
        header.pop(key)
    return path, header, arrays


def crafted(path, header, arrays, **changes):
    """A checkpoint with valid checksums: ``header`` updated with ``changes``."""
    write_checkpoint(path, {**header, **changes}, arrays)
    return path


# ---------------------------------------------------------------- raw zips and gzips


def npy_header(shape, dtype):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": tuple(shape)}
    )
    return buf.getvalue()


def deflated_zeros(prefix, count_mib):
    """A raw deflate stream of ``prefix`` then ``count_mib`` MiB of zeros, made in
    milliseconds: a full flush makes each MiB's block independent, so one is repeated."""
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(bytes(1 << 20)) + co.flush(zlib.Z_FULL_FLUSH)
    return head + block * count_mib + co.flush()


def write_zip(path, members):
    """A zip of (name, raw bytes, method, crc, uncompressed size), written by hand so the
    sizes and CRCs are whatever the test says."""
    out, central = bytearray(), bytearray()
    for name, raw, method, crc, size in members:
        name = name.encode()
        fields = (20, 0, method, 0, 0x21, crc, len(raw), size, len(name))
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0,
                               len(out)) + name  # fmt: skip
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + name + raw
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                       len(out), 0)  # fmt: skip
    path.write_bytes(bytes(out + central + eocd))
    return path


def stored_members(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i), 0, i.CRC, i.file_size) for i in z.infolist()]


def write_gzip(path, deflate, isize):
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    path.write_bytes(header + deflate + struct.pack("<II", 0, isize % 2**32))
    return path


def idx_header(dims, code=0x08):
    return struct.pack(">BBBB", 0, 0, code, len(dims)) + struct.pack(f">{len(dims)}I", *dims)


# ---------------------------------------------------------------- memory: in a child


def zip_bomb(tmp, saved):
    """The small model's checkpoint with its first weight replaced by a 0.5 MiB member
    that inflates to 512 MiB (half the child's headroom: a reader that trusts it fills
    its memory rather than failing to allocate)."""
    path, _, _ = saved
    members = stored_members(path)
    hdr = npy_header((2**27,), np.float32)
    bomb = ("weights/0000.npy", deflated_zeros(hdr, 512), 8, 0, len(hdr) + 2**29)
    members = [bomb if m[0] == "weights/0000.npy" else m for m in members]
    return write_zip(tmp / "bomb.dlc", members)


def architecture_of(tmp, saved, name, config, build_shape=None):
    """A few hundred bytes of valid checkpoint whose architecture asks for gigabytes."""
    _, header, arrays = saved
    return crafted(
        tmp / f"{name}.dlc",
        header,
        arrays,
        model={"class_name": "Sequential", "config": {"name": "m", "layers": config}},
        build_input_shape=build_shape,
    )


def mnist_bomb(tmp, honest_trailer):
    """An IDX gzip declaring 10 images (7,840 bytes) followed by 400 MiB of zeros."""
    header = idx_header((10, 28, 28))
    body = deflated_zeros(header + bytes(7840), 400)
    total = len(header) + 7840 + (400 << 20)
    name = "honest" if honest_trailer else "lying"
    return write_gzip(tmp / f"{name}-images-idx3-ubyte.gz", body, total if honest_trailer else 7856)


def dense_of_16_gib(tmp, saved):
    layer = {"class_name": "Dense", "config": {"units": 65536, "input_shape": [65536]}}
    return architecture_of(tmp, saved, "dense", [layer])


def build_shape_of_16_gib(tmp, saved):
    layer = {"class_name": "Dense", "config": {"units": 4}}
    return architecture_of(tmp, saved, "shape", [layer], build_shape=[None, 10**9])


def lstm_of_6_gib(tmp, saved):
    layer = {"class_name": "LSTM", "config": {"units": 20000, "input_shape": [5, 3]}}
    return architecture_of(tmp, saved, "lstm", [layer])


MEMORY_CASES = {
    # name: (how the child opens it, how the file is made)
    "zip_bomb_load_model": ("load_model", zip_bomb),
    "zip_bomb_load_weights": ("load_weights", zip_bomb),
    "zip_bomb_read_checkpoint": ("read_checkpoint", zip_bomb),
    "dense_of_16_gib": ("load_model", dense_of_16_gib),
    "build_shape_of_16_gib": ("load_model", build_shape_of_16_gib),
    "lstm_of_6_gib": ("load_model", lstm_of_6_gib),
    "mnist_gzip_bomb_honest_trailer": ("read_idx", lambda tmp, _: mnist_bomb(tmp, True)),
    "mnist_gzip_bomb_lying_trailer": ("read_idx", lambda tmp, _: mnist_bomb(tmp, False)),
}


@pytest.fixture(scope="module")
def outcomes(saved, tmp_path_factory):
    if sys.platform != "linux" or SANITIZED:
        pytest.skip("needs /proc and RLIMIT_AS, which the sanitizers' shadow memory exceeds")
    tmp = tmp_path_factory.mktemp("hostile")
    cases = [[name, kind, str(make(tmp, saved))] for name, (kind, make) in MEMORY_CASES.items()]
    worker = os.path.join(os.path.dirname(__file__), "_hostile_worker.py")
    done = subprocess.run(
        [sys.executable, worker, json.dumps(cases)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", sorted(MEMORY_CASES))
def test_a_hostile_file_is_refused_within_a_small_memory_cap(outcomes, name):
    got = outcomes[name]
    assert got["value_error"], f"{name}: ended with {got['error']}: {got['message']}"
    assert "MemoryError" not in got["message"], f"{name}: tried to allocate what it declares"
    assert got["grew_mb"] < MEMORY_CAP_MB, f"{name}: peak memory grew {got['grew_mb']:.0f} MiB"
    print(f"{name}: {got['error']} after {got['grew_mb']:.1f} MiB: {got['message'][:160]}")


def test_the_allocation_limit_refuses_before_allocating():
    from dlcore import initializers

    with initializers.allocation_limit(100, "the test"):
        initializers.GlorotUniform()((5, 5))  # 100 bytes of float32: exactly the limit
        with pytest.raises(ValueError, match=r"the test asks for a weight of shape \(1,\)"):
            initializers.Zeros()((1,))
        with initializers.allocation_limit(10**12, "inner"):  # nests, and restores
            initializers.Zeros()((1000,))
    initializers.Zeros()((1000,))  # no limit outside


# ---------------------------------------------------------------- crafted checkpoints


def test_a_compressed_checkpoint_still_loads(saved, tmp_path):
    path, _, arrays = saved
    packed = tmp_path / "deflated.dlc"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    got = models.load_model(packed)
    for w, i in zip(got.weights, range(len(got.weights))):
        np.testing.assert_array_equal(w.numpy(), arrays[f"weights/{i:04d}"])


def replace_array(saved, tmp_path, key, value, **header_changes):
    _, header, arrays = saved
    return crafted(tmp_path / "crafted.dlc", header, {**arrays, key: value}, **header_changes)


WRONG_ARRAYS = [
    # a scalar would broadcast into every entry of the weight
    ("weights/0000", np.float32(3.0), r"weight 0 \(.*\) is \(3, 4\) in its header but its array is \(\)"),
    ("weights/0000", np.ones((3, 4), bool), "holds weight 0 .* as bool; weights are floating"),
    ("weights/0002", np.ones((4, 2), np.int64), "holds weight 2 .* as int64"),
    ("weights/0001", np.ones((5,), np.float32), r"is \(4,\) in its header but its array is \(5,\)"),
]  # fmt: skip


@pytest.mark.parametrize("key,value,match", WRONG_ARRAYS)
@pytest.mark.parametrize("load", ["load_model", "load_weights"])
def test_weights_of_the_wrong_shape_or_dtype_are_refused(saved, tmp_path, key, value, match, load):
    path = replace_array(saved, tmp_path, key, value)
    model = small_model()
    before = model.get_weights()
    with pytest.raises(CheckpointError, match=match) as e:
        models.load_model(path) if load == "load_model" else model.load_weights(path)
    assert str(path) in str(e.value)
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)  # nothing was half-loaded


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("optimizer/0000", np.ones((3, 4), bool), "optimizer array optimizer/0000 is .* bool"),
        ("optimizer/0003", np.float32(0.0), r"optimizer array optimizer/0003 is \(\) float32"),
    ],
)
def test_optimizer_arrays_of_the_wrong_shape_or_dtype_are_refused(
    saved, tmp_path, key, value, match
):
    with pytest.raises(CheckpointError, match=match):
        models.load_model(replace_array(saved, tmp_path, key, value))


@pytest.mark.parametrize(
    "state,match",
    [
        ({"iterations": 1, "params": [-1, -2, -3, -4]}, "names weights \\[-1"),
        ({"iterations": 1, "params": [0, 0, 1, 2]}, "expected distinct indices in \\[0, 4\\)"),
        ({"iterations": 1, "params": [0, 1, 2, 9]}, "expected distinct indices"),
        ({"iterations": 1, "params": [0, 1, 2, True]}, "expected distinct indices"),
        ({"iterations": -5, "params": [0, 1, 2, 3]}, "step count is -5"),
        ({"iterations": 1.5, "params": [0, 1, 2, 3]}, "step count is 1.5"),
        ({"iterations": 1, "params": [0, 1]}, "holds 8 optimizer arrays; its Adam needs 4"),
        ("nonsense", "names weights None"),
    ],
)
def test_optimizer_state_indices_are_validated(saved, tmp_path, state, match):
    _, header, arrays = saved
    path = crafted(tmp_path / "state.dlc", header, arrays, optimizer_state=state)
    with pytest.raises(CheckpointError, match=match):
        models.load_model(path)


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"weights": "all"}, "weight list is 'all'"),
        ({"weights": [{"name": "k", "shape": [3, -4]}]}, "weight 0 of its header"),
        ({"kind": "weights"}, "holds weights only"),
        ({"model": {"class_name": "Nope", "config": {}}}, "'Nope' model dlcore cannot rebuild"),
        ({"model": ["Sequential"]}, "cannot rebuild"),
        ({"compile": {"optimizer": {"class_name": "SGD", "config": {"momentum": 1.5}},
                      "loss": "mse", "metrics": []}}, "compile settings .* momentum"),
        ({"compile": {"optimizer": "adam", "loss": "nope", "metrics": []}}, "unknown loss"),
    ],
)  # fmt: skip
def test_a_malformed_header_is_a_checkpoint_error(saved, tmp_path, changes, match):
    _, header, arrays = saved
    path = crafted(tmp_path / "header.dlc", header, arrays, **changes)
    with pytest.raises(CheckpointError, match=match):
        models.load_model(path)


def with_header_text(path, out, text):
    """The checkpoint at ``path`` with its JSON header replaced by ``text``."""
    blob = npy_header((len(text),), np.uint8) + text
    members = [
        (m[0], blob, 0, zlib.crc32(blob), len(blob)) if m[0].startswith("__dlcore") else m
        for m in stored_members(path)
    ]
    return write_zip(out, members)


@pytest.mark.parametrize("depth", [320, 5000])
def test_a_deeply_nested_architecture_is_a_checkpoint_error(saved, tmp_path, depth):
    # 320: parses, but rebuilding it recurses too deep; 5000: too deep to parse
    path, _, _ = saved
    header = read_checkpoint(path)[0]
    deep = '{"class_name": "Sequential", "config": {"layers": [' * depth
    deep += '{"class_name": "Dense", "config": {"units": 1}}' + "]}}" * depth
    text = json.dumps({**header, "model": "@"}).replace('"@"', deep).encode()
    with pytest.raises(CheckpointError, match=r"cannot rebuild|not a readable"):
        models.load_model(with_header_text(path, tmp_path / "deep.dlc", text))


def test_an_array_declaring_more_than_its_member_holds_is_refused(saved, tmp_path):
    path, _, _ = saved
    members = stored_members(path)
    data = npy_header((2**34,), np.float32) + bytes(64)
    members = [
        (name, data, 0, zlib.crc32(data), len(data)) if name == "weights/0000.npy" else m
        for m in members
        for name in [m[0]]
    ]
    bad = write_zip(tmp_path / "liar.dlc", members)
    with pytest.raises(CheckpointError, match=r"declares shape \(17179869184,\) float32"):
        read_checkpoint(bad)


def test_a_header_that_is_not_json_is_a_checkpoint_error(saved, tmp_path):
    path, _, _ = saved
    for text in (b"\xff\xfe", b"[1, 2", b'"a string"', b"[]"):
        with pytest.raises(CheckpointError, match=r"not a readable|not a dlcore"):
            read_checkpoint(with_header_text(path, tmp_path / "text.dlc", text))


# ---------------------------------------------------------------- file modes and links


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_checkpoint_gets_the_mode_open_would_give(tmp_path, umask):
    m = small_model()
    old = os.umask(umask)
    try:
        m.save(tmp_path / "m.dlc")
        m.save_weights(tmp_path / "w.dlc")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert mode(tmp_path / "m.dlc") == mode(tmp_path / "w.dlc") == mode(tmp_path / "plain")
    assert mode(tmp_path / "m.dlc") == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_overwriting_a_checkpoint_keeps_its_mode(tmp_path):
    m = small_model()
    path = tmp_path / "m.dlc"
    m.save(path)
    for wanted in (0o644, 0o640, 0o604):
        os.chmod(path, wanted)
        m.save(path)
        assert mode(path) == wanted


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_saving_through_a_symbolic_link_writes_its_target(tmp_path):
    m = small_model()
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "model.dlc"
    link = tmp_path / "latest.dlc"
    os.symlink(os.path.join("store", "model.dlc"), link)  # relative, and dangling at first
    m.save(link)
    assert link.is_symlink() and target.is_file()
    os.chmod(target, 0o640)
    m.fit(np.ones((4, 3)), np.ones((4, 2)), epochs=1, verbose=0)
    m.save_weights(link)  # replaces the target again, atomically, keeping its mode
    assert link.is_symlink() and mode(target) == 0o640
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["model.dlc"]  # no leftovers
    fresh = small_model()
    fresh.load_weights(link)
    for a, b in zip(fresh.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- MNIST files


def write_idx(path, array, gz):
    data = idx_header(array.shape) + array.astype(np.uint8).tobytes()
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return data


@pytest.fixture
def idx_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28))
    plain = write_idx(tmp_path / "images-idx3-ubyte", images, gz=False)
    packed = write_idx(tmp_path / "images-idx3-ubyte.gz", images, gz=True)
    return tmp_path, images, plain, packed


def test_valid_idx_files_read_back(idx_files):
    tmp, images, _, _ = idx_files
    for name in ("images-idx3-ubyte", "images-idx3-ubyte.gz"):
        np.testing.assert_array_equal(mnist.read_idx(tmp / name), images)


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda plain, packed: ("a.gz", packed[: len(packed) // 2]), "truncated|disagree"),
        (lambda plain, packed: ("b.gz", packed[:12]), "not a readable gzipped IDX file"),
        (lambda plain, packed: ("c.gz", packed[:200] + bytes(b ^ 0x5A for b in packed[200:400])
                                + packed[400:]), "not a readable gzipped IDX file"),
        (lambda plain, packed: ("d.gz", b"\x1f\x8b" + bytes(30)), "not a readable gzipped"),
        (lambda plain, packed: ("e", plain[:-1]), "truncated or damaged"),
        (lambda plain, packed: ("f", plain + b"\x00"), "truncated or damaged"),
        (lambda plain, packed: ("g", plain[:6]), "truncated inside its header"),
        (lambda plain, packed: ("h", b"\x00\x00"), "bad magic number"),
        (lambda plain, packed: ("i", b"PK" + plain[2:]), "bad magic number"),
        (lambda plain, packed: ("j.gz", gzip.compress(idx_header((10**6, 28, 28)))),
         "more than a gzip file of"),
        (lambda plain, packed: ("k.gz", gzip.compress(plain + b"junk")), "disagree"),
    ],
)  # fmt: skip
def test_a_damaged_idx_file_is_a_value_error_naming_it(idx_files, damage, match):
    tmp, _, plain, packed = idx_files
    name, data = damage(plain, packed)
    (tmp / name).write_bytes(data)
    with pytest.raises(ValueError, match=match) as e:
        mnist.read_idx(tmp / name)
    assert str(tmp / name) in str(e.value)


def test_more_data_than_declared_with_a_matching_trailer_is_refused(tmp_path):
    header = idx_header((2, 28, 28))
    path = write_gzip(tmp_path / "x.gz", deflated_zeros(header + bytes(2 * 784), 2), 16 + 1568)
    with pytest.raises(ValueError, match="more data than its header declares"):
        mnist.read_idx(path)


def test_load_data_names_the_damaged_file_and_checks_the_shapes(idx_files):
    tmp, images, plain, packed = idx_files
    labels = np.arange(6, dtype=np.uint8)
    for stem in ("train", "t10k"):
        (tmp / f"{stem}-images-idx3-ubyte.gz").write_bytes(packed)
        write_idx(tmp / f"{stem}-labels-idx1-ubyte", labels, gz=False)
    (x, _), _ = mnist.load_data(tmp, download=False)
    np.testing.assert_array_equal(x, images)
    (tmp / "t10k-images-idx3-ubyte.gz").write_bytes(packed[:-30])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz"):
        mnist.load_data(tmp, download=False)
    write_idx(tmp / "t10k-images-idx3-ubyte.gz", np.zeros((2, 14, 14)), gz=True)
    with pytest.raises(ValueError, match=r"shape \(2, 14, 14\); expected \(None, 28, 28\)"):
        mnist.load_data(tmp, download=False)
