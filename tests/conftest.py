import os
import sys

import numpy as np
import pytest

# Shared test helpers (gradcheck.py, reference.py) live beside the tests.
sys.path.insert(0, os.path.dirname(__file__))

from dlcore import ops

# True under tools/sanitize.sh: AddressSanitizer reserves terabytes of address space for
# its shadow memory at start-up, so a child process cannot be held under an
# address-space cap (RLIMIT_AS) there.
SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def threads():
    """Restores the kernels' thread count after a test changes it."""
    before = ops.get_num_threads()
    yield
    ops.set_num_threads(before)


MNIST_DIR = os.environ.get("DLCORE_TEST_MNIST") or os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data", "mnist"
)


@pytest.fixture(scope="session")
def mnist_dir():
    """The project's MNIST copy (../shared/data/mnist beside the repository)."""
    path = os.path.abspath(MNIST_DIR)
    if not os.path.isdir(path):
        pytest.fail(f"MNIST test data not found at {path}; set DLCORE_TEST_MNIST to its directory")
    return path
