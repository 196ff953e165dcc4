"""Every single-bit flip and every truncation of a checkpoint either raises
CheckpointError or loads exactly what was saved (a flip in a byte no reader uses, such
as a zip timestamp) — never another exception, never different weights."""

import json
import os

import numpy as np
import pytest

from dlcore import layers, models, optimizers
from dlcore.saving import CheckpointError, read_checkpoint

# One flipped bit every STRIDE bytes (the bit rotates with the position); set
# DLCORE_TEST_FLIP_STRIDE=1 to flip one bit in every byte of the file.
STRIDE = int(os.environ.get("DLCORE_TEST_FLIP_STRIDE", "7"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    m = models.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.Dense(2)])
    m.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    m.fit(rng.standard_normal((8, 3)), rng.standard_normal((8, 2)), epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("ckpt") / "m.dlc"
    m.save(path)
    header, arrays = read_checkpoint(path)
    return path.read_bytes(), header, arrays


def load_bytes(blob, path):
    path.write_bytes(blob)
    try:
        return read_checkpoint(path)
    except CheckpointError as e:
        assert str(e), "a CheckpointError without a message"
        return None


def same(got, header, arrays):
    h, a = got
    return (
        json.dumps(h, sort_keys=True) == json.dumps(header, sort_keys=True)
        and a.keys() == arrays.keys()
        and all(a[k].dtype == arrays[k].dtype and np.array_equal(a[k], arrays[k]) for k in arrays)
    )


def test_bit_flips_are_refused_or_harmless(saved, tmp_path):
    blob, header, arrays = saved
    refused = harmless = 0
    for pos in range(0, len(blob), STRIDE):
        damaged = bytearray(blob)
        damaged[pos] ^= 1 << (pos % 8)
        got = load_bytes(bytes(damaged), tmp_path / "flip.dlc")
        if got is None:
            refused += 1
        else:
            assert same(got, header, arrays), f"a flip at byte {pos} loaded different contents"
            harmless += 1
    # the arrays and the header are most of the file: most flips must be caught
    assert refused > 3 * harmless, f"{refused} flips refused, {harmless} harmless"
    print(f"{refused + harmless} flips: {refused} refused, {harmless} in bytes no reader uses")


def test_every_truncation_is_refused(saved, tmp_path):
    blob, _, _ = saved
    for length in list(range(0, len(blob), STRIDE * 3)) + [len(blob) - 1]:
        assert load_bytes(blob[:length], tmp_path / "cut.dlc") is None, f"cut at {length} loaded"
