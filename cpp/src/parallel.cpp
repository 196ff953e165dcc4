#include "dlcore/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore {
namespace {

int default_num_threads() {
#ifdef _OPENMP
  return std::min(omp_get_max_threads(), kMaxThreads);  // OMP_NUM_THREADS may ask for more
#else
  return 1;
#endif
}

// Eigen keeps its own thread count in a global, so it is set together with ours;
// omp_set_num_threads would only reach the calling thread, so every parallel region
// in the kernels passes num_threads(get_num_threads()) explicitly instead.
std::atomic<int>& thread_count() {
  static std::atomic<int> count{[] {
    const int n = default_num_threads();
    Eigen::setNbThreads(n);
    return n;
  }()};
  return count;
}

}  // namespace

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads) {
    throw std::invalid_argument("set_num_threads: n must be >= 1 and <= " +
                                std::to_string(kMaxThreads) + ", got " + std::to_string(n));
  }
#ifdef _OPENMP
  thread_count().store(n, std::memory_order_relaxed);
  Eigen::setNbThreads(n);
#else
  (void)thread_count();  // a serial build stays at one thread whatever is asked
#endif
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace dlcore
