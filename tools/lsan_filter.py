"""Reads LeakSanitizer logs and fails on leaks allocated through dlcore's own code.

Python (and NumPy) keep some allocations alive until the process ends, and LSan lists
them; a leak is ours when its allocation stack passes through the extension module or
the kernels (frames in dlcore's sources or in _core*.so)."""

import re
import sys

OURS = re.compile(r"(/cpp/(src|bindings|include)/|_core\.cpython|dlcore::)")


def leaks(text):
    for block in re.split(r"\n(?=(?:Direct|Indirect) leak of )", text):
        if block.startswith(("Direct leak", "Indirect leak")):
            yield block


def main(paths):
    ours, total = [], 0
    for path in paths:
        with open(path, errors="replace") as f:
            for block in leaks(f.read()):
                total += 1
                if OURS.search(block):
                    ours.append(block)
    print(f"LeakSanitizer: {total} leak reports, {len(ours)} through dlcore's code")
    for block in ours[:10]:
        print(block)
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
