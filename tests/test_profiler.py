import os
import subprocess
import sys

import numpy as np

import dlcore
from dlcore import _core, layers, models, ops


def test_counts_calls_time_and_flops(rng):
    a = rng.standard_normal((30, 40)).astype(np.float32)
    b = rng.standard_normal((40, 50)).astype(np.float32)
    with dlcore.profile(print_table=False) as prof:
        for _ in range(3):
            ops.gemm(a, b)
        ops.gemm(b, a, trans_a=True, trans_b=True)
        ops.gemm_backward(np.ones((30, 50), np.float32), a, b, need_da=False)
    calls, seconds, flops = prof.stats["gemm"]
    assert calls == 4 and seconds > 0
    assert flops == 3 * 2 * 30 * 40 * 50 + 2 * 40 * 30 * 50
    assert prof.stats["gemm_backward"][2] == 2 * 30 * 40 * 50  # one gradient of two
    table = prof.table()
    # Sorted by time, slowest first: the order of the rows follows the recorded seconds
    # (which kernel is slower depends on the machine's load, so no name is assumed).
    by_time = sorted(prof.stats, key=lambda k: -prof.stats[k][1])
    assert [line.split()[0] for line in table.splitlines()[2:4]] == by_time
    assert "kernels:" in table and "% of" in table
    by_calls = prof.table(sort_by="calls").splitlines()
    assert by_calls[2].split()[:2] == ["gemm", "4"] and by_calls[3].split()[:2] == [
        "gemm_backward",
        "1",
    ]


def test_off_by_default_and_restored_afterwards(rng):
    assert ops.gemm is _core.gemm  # no wrapper at all when off
    with dlcore.profile(print_table=False):
        assert ops.gemm is not _core.gemm
        with dlcore.profile(print_table=False) as inner:  # profiles nest
            ops.gemm(np.ones((2, 2)), np.ones((2, 2)))
        assert ops.gemm is not _core.gemm
    assert ops.gemm is _core.gemm
    assert inner.stats["gemm"][0] == 1


def test_sees_the_kernels_a_training_step_calls(capsys):
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    m = models.Sequential([layers.Dense(4, activation="relu", input_shape=(8,)), layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    with dlcore.profile():
        m.fit(x, x[:, :1], batch_size=32, epochs=1, verbose=0)
    out = capsys.readouterr().out
    assert "gemm_backward" in out and "adam_update" in out
    assert out.splitlines()[0].split()[:3] == ["kernel", "calls", "total"]


def test_environment_variable_profiles_the_whole_process():
    code = (
        "import numpy as np, dlcore; "
        "[dlcore.ops.gemm(np.ones((8, 8)), np.ones((8, 8))) for _ in range(5)]"
    )
    env = dict(os.environ, DLCORE_PROFILE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    line = next(l for l in out.stderr.splitlines() if l.startswith("gemm "))
    assert line.split()[1] == "5"
