"""Prints how this dlcore was built and which instruction-set level it runs.

python -m dlcore.show_config          # a readable summary
python -m dlcore.show_config --json   # dlcore.build_info() as JSON
"""

import json
import os
import sys

import dlcore
from dlcore import _isa, ops


def summary(info=None):
    """The text that ``python -m dlcore.show_config`` prints."""
    info = dict(info or dlcore.build_info())
    level = info["isa_level"]
    needs = dict(_isa.LEVELS)
    rows = [
        ("version", info["version"]),
        ("compiler", info["compiler"]),
        ("openmp", f"{info['openmp']} ({ops.get_num_threads()} threads)"),
        ("eigen", info["eigen"]),
        ("levels built", ", ".join(info["isa_levels_built"])),
        ("level in use", f"{level} ({info['isa_chosen']})"),
        ("  its flags", info["arch_flags"] or "(the compiler's defaults)"),
        ("  compiled for", " ".join(info["isa"]) or "-"),
        ("CPU can run", ", ".join(info["isa_levels_runnable"]) or "none"),
        (_isa.ENV, os.environ.get(_isa.ENV) or "(unset: auto)"),
        ("CPU features", " ".join(info["cpu_features"]) or "(not x86-64: none probed)"),
    ]
    for name in info["isa_levels_built"]:
        lacking = _isa.missing(name)
        if lacking:
            rows.append(
                (f"  {name} needs", f"{', '.join(needs[name])}; lacking {', '.join(lacking)}")
            )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--json" in argv:
        print(json.dumps(dlcore.build_info(), indent=1))
    else:
        print(summary())


if __name__ == "__main__":
    main()
