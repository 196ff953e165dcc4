#include "dlcore/parallel.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>
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

void check_threads_start(int n, const char* fn) {
  static std::mutex mutex;
  static int proven = 1;
  std::lock_guard<std::mutex> guard(mutex);
  if (n <= proven) return;
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::thread> started;
  started.reserve(static_cast<size_t>(n - 1));
  std::string refused;
  try {
    for (int i = 1; i < n; ++i) {
      started.emplace_back([&] {
        std::unique_lock<std::mutex> lock(m);
        cv.wait(lock, [&] { return release; });
      });
    }
  } catch (const std::system_error& e) {
    refused = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  const size_t got = started.size() + 1;
  for (auto& t : started) t.join();
  if (!refused.empty()) {
    throw std::invalid_argument(std::string(fn) + ": this process cannot run " + std::to_string(n) +
                                " threads at once (the system refused " + "thread " +
                                std::to_string(got + 1) + ": " + refused + "); ask for fewer");
  }
  proven = n;
}

int get_num_threads() { return thread_count().load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads) {
    throw std::invalid_argument("set_num_threads: n must be >= 1 and <= " +
                                std::to_string(kMaxThreads) + ", got " + std::to_string(n));
  }
#ifdef _OPENMP
  check_threads_start(n, "set_num_threads");
  thread_count().store(n, std::memory_order_relaxed);
  Eigen::setNbThreads(n);
#else
  (void)thread_count();  // a serial build stays at one thread whatever is asked
#endif
}

void parallel_zero(void* data, size_t bytes) {
  constexpr size_t kPerThreadMin = size_t(1) << 19;  // below 512 KiB a second thread costs more
  const int threads = int(std::clamp<size_t>(bytes / kPerThreadMin, 1, size_t(get_num_threads())));
  auto* p = static_cast<unsigned char*>(data);
  if (threads == 1) {
    std::memset(p, 0, bytes);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int i = 0; i < threads; ++i) {
    const size_t begin = bytes / threads * i,
                 end = i + 1 == threads ? bytes : begin + bytes / threads;
    std::memset(p + begin, 0, end - begin);
  }
}

bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace dlcore
