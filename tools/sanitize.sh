#!/usr/bin/env bash
# Builds dlcore with AddressSanitizer + UndefinedBehaviorSanitizer in a virtual
# environment of its own, runs the test suite under them, then runs the kernel tests
# again with LeakSanitizer. Any sanitizer report fails the run.
#
#   tools/sanitize.sh            # everything below (about 13 minutes on a 2-core Zen 3)
#   tools/sanitize.sh tests/test_gemm.py   # the ASan/UBSan pass over chosen tests only
#
# The whole suite runs under ASan/UBSan except the end-to-end programs (the examples,
# the MPI jobs, the tuning and benchmark runs, the kill-during-save loop): they train
# real models for minutes through the same kernels the kernel, layer and model tests
# already drive under the sanitizers, and the plain test run covers them.
#
# Python is not instrumented, so the sanitizer runtimes are preloaded; Python's own
# allocations that are still alive at exit are not leaks of ours, so the leak pass
# reports only leaks whose allocation stack passes through dlcore's code.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SANITIZE_VENV:-build/sanitize-venv}"
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
pip install -q --upgrade pip
pip install -q scikit-build-core pybind11 cmeel-eigen numpy pytest hypothesis scipy scikit-learn
# One instruction-set level, the best this machine runs (DLCORE_ISA_LEVELS=host): half
# the build time of every level, and the code that the normal build runs here. -O1 -g1:
# ASan's recommended optimisation level with line tables for the reports; instrumented
# Eigen code builds in a third of the time -O2 -g takes (7 minutes, not 19, on a 2-core
# Zen 3).
pip install -q --no-build-isolation -C build-dir=build/sanitize \
  -C cmake.build-type=RelWithDebInfo -C "cmake.define.CMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
  -C cmake.define.DLCORE_SANITIZE=address,undefined \
  -C cmake.define.DLCORE_ISA_LEVELS=host ".[test]"

# The runtimes are preloaded into Python only: set for the whole script they would also
# run inside mktemp, ls and the like, whose own leaks at exit would end the script.
runtimes="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)"
sanitized() {
  # PYTHONMALLOC=malloc: every allocation through malloc, so reports name real frames
  LD_PRELOAD="$runtimes" PYTHONMALLOC=malloc UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "$@"
}
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests --ignore=tests/test_examples.py --ignore=tests/test_distributed.py
  --ignore=tests/test_tuning.py --ignore=tests/test_bench.py --ignore=tests/test_checkpoint_kill.py)

echo "== AddressSanitizer + UndefinedBehaviorSanitizer: ${tests[*]}"
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:check_initialization_order=1:strict_string_checks=1:allocator_may_return_null=1" \
  sanitized python -m pytest -q -p no:cacheprovider -x "${tests[@]}"

[ $# -eq 0 ] || exit 0
echo "== LeakSanitizer: the kernel tests"
report="$(mktemp -d)"
kernel_tests=$(ls tests/test_gemm.py tests/test_optim_kernels.py tests/test_conv2d.py tests/test_eltwise.py \
  tests/test_pool.py tests/test_lstm.py tests/test_concurrency.py tests/test_conv2d_transpose.py \
  tests/test_gru.py tests/test_simple_rnn.py tests/test_norm.py tests/test_embedding.py \
  tests/test_activation.py tests/test_softmax.py 2>/dev/null)
ASAN_OPTIONS="detect_leaks=1:log_path=$report/lsan:exitcode=0:allocator_may_return_null=1" \
  sanitized python -m pytest -q -p no:cacheprovider $kernel_tests
python3 tools/lsan_filter.py "$report"/lsan.*
