"""dlcore: a small, fast deep-learning core for CPUs.

The kernels (GEMM, conv2d, max-pool, LSTM) are C++ on Eigen and OpenMP, reached through
:mod:`dlcore.ops`; everything else is a thin Python layer over them.
"""

import warnings as _warnings

from dlcore import ops
from dlcore._core import __version__, build_info

if not build_info["openmp"]:
    _warnings.warn(
        "dlcore was built without OpenMP: every kernel runs on one thread",
        RuntimeWarning,
        stacklevel=2,
    )

__all__ = ["__version__", "build_info", "ops"]
