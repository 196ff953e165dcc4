"""Runs the tests against an installed dlcore at every instruction-set level this CPU runs:
first at the level dlcore chooses, then once more under DLCORE_ISA=<level> for each lower
level of the build (baseline on x86-64). Every test compares with its NumPy reference
within its own tolerance, so passing at every level means the levels agree.

    python tools/test_wheel.py            # the kernel tests, at every level
    python tools/test_wheel.py --all      # the whole suite at every level
    python tools/test_wheel.py --all --lower-only   # the whole suite, lower levels only

Run it from the source tree with dlcore installed (not editable) into the environment:
the tests come from tests/, dlcore from site-packages. cibuildwheel's test command and
.ci/run use it. Exits non-zero when any pass fails.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The kernels, called directly: each against its NumPy reference, its gradients, odd
# shapes and bad input; then every kernel from several threads, the fuzz table, and the
# dispatch itself.
KERNEL_TESTS = [
    "test_gemm.py",
    "test_optim_kernels.py",
    "test_conv2d.py",
    "test_eltwise.py",
    "test_pool.py",
    "test_lstm.py",
    "test_concurrency.py",
    "test_determinism.py",
    "test_isa.py",
    "test_package.py",
]


def levels():
    """(chosen level, lower levels this CPU runs) of the installed dlcore."""
    code = (
        "import json, dlcore; i = dlcore.build_info(); "
        "print(json.dumps([i['isa_level'], i['isa_levels_runnable']]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DLCORE_ISA"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    chosen, runnable = json.loads(out.stdout)
    return chosen, [name for name in runnable if name != chosen]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all", action="store_true", help="the whole suite, not the kernel tests")
    p.add_argument("--lower-only", action="store_true", help="skip the pass at the chosen level")
    p.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = p.parse_args()

    import dlcore  # the installed one: refuse to test a source tree by mistake

    where = os.path.dirname(os.path.abspath(dlcore.__file__))
    if where == os.path.join(ROOT, "python", "dlcore"):
        sys.exit(f"test_wheel: dlcore is imported from the source tree ({where}); install it")
    tests_dir = os.path.join(ROOT, "tests")
    targets = (
        [tests_dir]
        if args.all
        else [
            os.path.join(tests_dir, t)
            for t in KERNEL_TESTS
            if os.path.exists(os.path.join(tests_dir, t))
        ]
    )
    chosen, lower = levels()
    passes = ([] if args.lower_only else [None]) + lower
    if not passes:
        print(f"== test_wheel: this CPU runs no level below {chosen}: nothing to test")
    failed = []
    for level in passes:
        env = {k: v for k, v in os.environ.items() if k != "DLCORE_ISA"}
        if level is not None:
            env["DLCORE_ISA"] = level
        name = f"DLCORE_ISA={level}" if level else f"the chosen level ({chosen})"
        print(f"== test_wheel: {'the whole suite' if args.all else 'the kernel tests'} at {name}")
        start = time.monotonic()
        rc = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *targets]
            + args.pytest_args,
            env=env,
            cwd=ROOT,
        )
        print(f"== test_wheel: {name}: exit {rc} in {time.monotonic() - start:.0f} s")
        if rc != 0:
            failed.append(name)
    if failed:
        sys.exit(f"test_wheel: failed at {', '.join(failed)}")


if __name__ == "__main__":
    main()
