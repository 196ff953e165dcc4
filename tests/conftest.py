import os
import sys

import numpy as np
import pytest

# Shared test helpers (gradcheck.py, reference.py) live beside the tests.
sys.path.insert(0, os.path.dirname(__file__))

from dlcore import ops  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restores the kernels' thread count after a test changes it."""
    before = ops.get_num_threads()
    yield
    ops.set_num_threads(before)
