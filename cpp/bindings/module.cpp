#include "module.hpp"

#include <pybind11/pybind11.h>

#include "dlcore/parallel.hpp"
#include "dlcore/probe.hpp"
#include "dlcore/streaming.hpp"

namespace py = pybind11;

// DLCORE_MODULE_NAME is _core_<level>: CMake builds this module once per instruction-set
// level (cmake/DlcoreIsa.cmake), and dlcore._core re-exports the one the CPU runs best.
PYBIND11_MODULE(DLCORE_MODULE_NAME, m) {
  m.doc() = "dlcore's C++ kernels (Eigen + OpenMP), built for the " DLCORE_ISA_LEVEL_STRING
            " instruction-set level. Use them through dlcore.ops.";
  m.attr("__version__") = DLCORE_VERSION_STRING;

  m.def("set_num_threads", &dlcore::set_num_threads, py::arg("n"),
        "Sets the number of threads every kernel uses from now on (1 <= n <= 1024), "
        "process-wide.");
  m.def("get_num_threads", &dlcore::get_num_threads,
        "Number of threads the kernels use: OMP_NUM_THREADS when set, else the number of "
        "cores, until set_num_threads changes it. Always 1 in a build without OpenMP.");

  m.def(
      "peak_gflops",
      [](int threads, double seconds) {
        py::gil_scoped_release release;
        return dlcore::peak_gflops(threads, seconds);
      },
      py::arg("threads") = 1, py::arg("seconds") = 0.2,
      "Measured fp32 FMA throughput (GFLOP/s) of `threads` threads: the machine's ceiling "
      "that benchmark tables express their figures against.");

  // Private: tests and benchmarks move the size from which results bypass the caches.
  m.def("_set_stream_min_bytes", &dlcore::set_stream_min_bytes, py::arg("bytes"),
        "From now on a pass whose working set is at least `bytes` bytes writes its result "
        "past the caches; returns the previous threshold.");

  py::dict info;
  info["version"] = DLCORE_VERSION_STRING;
  info["openmp"] = dlcore::has_openmp();
  info["arch"] = DLCORE_ISA_LEVEL_STRING;  // the level of this module
  info["arch_flags"] = DLCORE_ARCH_FLAGS_STRING;
  info["eigen"] = DLCORE_EIGEN_STRING;
  info["stream_min_bytes"] = dlcore::stream_min_bytes();  // the default: nothing set it yet
  py::list isa;
#ifdef __SSE4_2__
  isa.append("sse4.2");
#endif
#ifdef __AVX__
  isa.append("avx");
#endif
#ifdef __AVX2__
  isa.append("avx2");
#endif
#ifdef __FMA__
  isa.append("fma");
#endif
#ifdef __AVX512F__
  isa.append("avx512f");
#endif
  info["isa"] = isa;
#if defined(__clang__)
  info["compiler"] = "clang " __clang_version__;
#elif defined(__GNUC__)
  info["compiler"] = "gcc " __VERSION__;
#else
  info["compiler"] = "unknown";
#endif
  m.attr("build_info") = info;

  dlcore::bind::register_array_cache(m);
  dlcore::bind::register_gemm(m);
  dlcore::bind::register_optim(m);
  dlcore::bind::register_eltwise(m);
  dlcore::bind::register_conv2d(m);
  dlcore::bind::register_pool(m);
  dlcore::bind::register_lstm(m);
  dlcore::bind::register_activation(m);
  dlcore::bind::register_norm(m);
  dlcore::bind::register_embedding(m);
  dlcore::bind::register_gru(m);
  dlcore::bind::register_simple_rnn(m);
  dlcore::bind::register_softmax(m);
}
