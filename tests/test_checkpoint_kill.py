"""A process killed (SIGKILL) in the middle of model.save never damages the checkpoint:
the file always loads, intact, as one whole version."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dlcore import layers, models

KILLS = int(os.environ.get("DLCORE_TEST_KILLS", "25"))


def saves_begin(stdout, n):
    """Waits until the child has begun n more saves; returns the seconds the last whole
    save took (the time between the last two beginnings)."""
    times = []
    for _ in range(n):
        assert stdout.readline().strip() == "saving"
        times.append(time.perf_counter())
    return times[-1] - times[-2]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_saves_leave_a_loadable_checkpoint(tmp_path):
    path = str(tmp_path / "model.dlc")
    seed = models.Sequential([layers.Dense(1024, input_shape=(1024,)), layers.Dense(512)])
    seed.compile(optimizer="adam", loss="mse")
    seed.set_weights([np.zeros(w.shape, np.float32) for w in seed.weights])
    seed.save(path)
    child = os.path.join(os.path.dirname(__file__), "_save_forever.py")
    rng = np.random.default_rng(0)
    previous, mid_save = 0.0, 0
    for kill in range(KILLS):
        base = (kill + 1) * 10_000  # this child's versions: base + 1, ... (exact in float32)
        proc = subprocess.Popen(
            [sys.executable, child, path, str(base)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        # let a few saves finish, then kill at a random point of the next one
        one_save = saves_begin(proc.stdout, int(rng.integers(2, 5)))
        time.sleep(rng.uniform(0.0, one_save))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        leftovers = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
        mid_save += bool(leftovers)
        for name in leftovers:  # a killed writer cannot clean up after itself
            os.unlink(tmp_path / name)
        model = models.load_model(path)  # must not raise
        values = {float(v) for w in model.get_weights() for v in np.unique(w)}
        assert len(values) == 1, f"kill {kill}: a mix of versions {sorted(values)[:4]}"
        version = values.pop()
        # either no save finished (the previous version) or a whole newer one did
        assert version == previous or version > base, f"kill {kill}: version {version}"
        previous = version
    # the kills must really have landed inside save() for the test to mean anything
    assert mid_save >= KILLS // 4, f"only {mid_save} of {KILLS} kills hit a save in progress"
    print(f"{KILLS} kills, {mid_save} in the middle of a save; every checkpoint loaded intact")
