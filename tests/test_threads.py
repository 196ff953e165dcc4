import os
import subprocess
import sys

import pytest

import dlcore
from dlcore import ops


def test_set_and_get_num_threads(threads):
    ops.set_num_threads(1)
    assert ops.get_num_threads() == 1
    ops.set_num_threads(3)
    assert ops.get_num_threads() == (3 if dlcore.build_info["openmp"] else 1)


@pytest.mark.parametrize("n", [0, -2])
def test_set_num_threads_rejects_non_positive(n):
    with pytest.raises(ValueError, match=rf"n must be >= 1, got {n}"):
        ops.set_num_threads(n)


def test_omp_num_threads_is_the_default():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", "from dlcore import ops; print(ops.get_num_threads())"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "1"


def test_peak_probe_reports_a_rate():
    assert ops.peak_gflops(1, 0.01) > 0.5  # any real CPU does more than 0.5 GFLOP/s
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        ops.peak_gflops(0)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        ops.peak_gflops(1, -1.0)
