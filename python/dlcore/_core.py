"""dlcore's C++ kernels (Eigen + OpenMP). Use them through :mod:`dlcore.ops`.

The extension is built once per instruction-set level (``dlcore._core_avx2``,
``dlcore._core_baseline``, ...). This module imports the one chosen for this CPU
(:mod:`dlcore._isa`; ``DLCORE_ISA`` forces a level) and re-exports its names, so
``dlcore._core`` reads as one module whichever level runs; ``_core.pyi`` describes it.
"""

from dlcore import _isa

_extension, _info = _isa.load()
globals().update(
    (name, value)
    for name, value in vars(_extension).items()
    if not name.startswith("__") or name == "__version__"
)
#: What this build was made with, and the level in use: a plain dict here, and as
#: ``dlcore.build_info`` a dict that also answers a call.
build_info = dict(_info)
_build_info = _isa.BuildInfo(_info)
