#include "dlcore/probe.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

// Independent multiply-add chains, enough to keep every FMA pipe busy: a pipe needs as
// many chains as the multiply-add's latency in cycles (4 on Zen 3/4, Skylake-X and
// Sapphire Rapids), and Intel's server cores have two 512-bit pipes. 12 vectors under
// AVX2 (16 registers, two of them for the constants) and 16 under AVX-512 (32
// registers): 4 zmm chains, as here before, timed one pipe of a Xeon's two, half its
// peak. The compiler turns the inner loop into vector FMAs at each instruction-set level.
#if defined(__AVX512F__)
constexpr int kLanes = 16 * 16;
#elif defined(__AVX__)
constexpr int kLanes = 12 * 8;
#else
constexpr int kLanes = 12 * 4;
#endif
constexpr double kMaxSeconds = 60;

float fma_chain(long iterations) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = 1.0f + j * 1e-3f;
  const float mul = 0.999999f, add = 1e-6f;  // one broadcast register each
  for (long i = 0; i < iterations; ++i) {
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) acc[j] = acc[j] * mul + add;
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
