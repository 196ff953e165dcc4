#include "dlcore/probe.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

// 8 vectors of 8 floats: with 2 FMA pipes of 4-cycle latency (Zen 3, Haswell and
// later) this keeps both pipes busy. The compiler turns each inner loop into vector
// FMAs under -mavx2 -mfma.
constexpr int kLanes = 64;
constexpr double kMaxSeconds = 60;

float fma_chain(long iterations) {
  float acc[kLanes], mul[kLanes], add[kLanes];
  for (int j = 0; j < kLanes; ++j) {
    acc[j] = 1.0f + j * 1e-3f;
    mul[j] = 0.999999f;
    add[j] = 1e-6f;
  }
  for (long i = 0; i < iterations; ++i) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) acc[j] = acc[j] * mul[j] + add[j];
  }
  float sum = 0;
  for (int j = 0; j < kLanes; ++j) sum += acc[j];
  return sum;
}

}  // namespace

double peak_gflops(int threads, double seconds) {
  if (threads < 1 || threads > kMaxThreads) {
    throw std::invalid_argument("peak_gflops: threads must be >= 1 and <= " +
                                std::to_string(kMaxThreads) + ", got " + std::to_string(threads));
  }
  // The bound keeps the run finite and the iteration count below long's range.
  if (!(seconds > 0 && seconds <= kMaxSeconds)) {
    throw std::invalid_argument(
        "peak_gflops: seconds must be > 0 and <= " + std::to_string(int(kMaxSeconds)) + ", got " +
        std::to_string(seconds));
  }
  check_threads_start(threads, "peak_gflops");
  using clock = std::chrono::steady_clock;
  long iterations = 1 << 16;
  volatile float sink = 0;
  for (;;) {  // grow the work until one run takes long enough to time
    const auto start = clock::now();
#pragma omp parallel num_threads(threads)
    {
      const float s = fma_chain(iterations);
#pragma omp atomic
      sink += s;
    }
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    if (elapsed >= seconds || iterations > (1L << 40)) {
      return 2.0 * kLanes * double(iterations) * threads / elapsed / 1e9;
    }
    iterations = static_cast<long>(iterations * std::max(2.0, 1.2 * seconds / (elapsed + 1e-9)));
  }
}

}  // namespace dlcore
