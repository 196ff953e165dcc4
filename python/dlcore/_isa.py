"""Chooses the instruction-set level of the kernels, once, when dlcore is imported.

The C++ kernels, their bindings and the Eigen code inside them are built once per level,
each as an extension module of its own (``dlcore._core_avx2``, ``dlcore._core_baseline``;
one ``dlcore._core_default`` on other architectures). ``dlcore._cpu``, built without any
instruction-set flag, reports the CPU's features; the best level this CPU can run is
imported, and :mod:`dlcore._core` re-exports its names.

``DLCORE_ISA=<level>`` forces a level (``auto``, or unset, chooses). A level that this
build does not have, or that the CPU cannot run, raises ImportError naming what is
missing: importing a module that would use unsupported instructions would crash the
process on its first kernel call.
"""

import importlib
import os

from dlcore import _cpu

ENV = "DLCORE_ISA"


def _parse(spec):
    levels = []
    for item in filter(None, spec.split("|")):
        name, _, needs = item.partition(":")
        levels.append((name, tuple(filter(None, needs.split(",")))))
    return levels


#: (level, CPU features it needs) for every level of this build, best first.
LEVELS = _parse(_cpu.levels_spec)
#: The CPU's instruction-set extensions (and the OS's support of their registers).
FEATURES = _cpu.features()


def missing(level):
    """The CPU features that ``level`` needs and this CPU (or its OS) lacks."""
    needs = dict(LEVELS)[level]
    return [f for f in needs if not FEATURES.get(f, False)]


def choose(requested=None):
    """(level, how it was chosen) for a DLCORE_ISA value (None, "" or "auto": the best)."""
    built = [name for name, _ in LEVELS]
    requested = (requested or "").strip().lower()
    if requested in ("", "auto"):
        runnable = [name for name in built if not missing(name)]
        if not runnable:
            lowest = built[-1]
            raise ImportError(
                f"dlcore cannot run on this CPU: its lowest instruction-set level, "
                f"{lowest!r}, needs {', '.join(missing(lowest))}, which this CPU or its "
                f"OS lacks"
            )
        return runnable[0], "the best level this CPU supports"
    if requested not in built:
        raise ImportError(
            f"{ENV}={requested!r}: this build of dlcore has the levels "
            f"{', '.join(built)} (or 'auto')"
        )
    lacking = missing(requested)
    if lacking:
        can = [name for name in built if not missing(name)]
        raise ImportError(
            f"{ENV}={requested!r}: this CPU or its OS lacks {', '.join(lacking)}, which the "
            f"{requested!r} level needs; the levels it can run: {', '.join(can) or 'none'}"
        )
    return requested, f"forced by {ENV}"


class BuildInfo(dict):
    """What this build of dlcore was made with, and the instruction-set level in use.

    A dict (``dlcore.build_info["openmp"]``) that also answers a call
    (``dlcore.build_info()``), returning itself.
    """

    def __call__(self):
        return self


def load():
    """Imports the chosen level's extension module; returns (module, build_info)."""
    level, reason = choose(os.environ.get(ENV))
    module = importlib.import_module(f"dlcore._core_{level}")
    info = dict(module.build_info)
    info.update(
        isa_level=level,
        isa_chosen=reason,
        isa_levels_built=[name for name, _ in LEVELS],
        isa_levels_runnable=[name for name, _ in LEVELS if not missing(name)],
        cpu_features=sorted(name for name, present in FEATURES.items() if present),
    )
    return module, info
