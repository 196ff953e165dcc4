// GEMM forward and backward at the side-by-side benchmark's sizes.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "dlcore/gemm.hpp"
#include "dlcore/parallel.hpp"

namespace {

template <typename T>
std::vector<T> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

// Arguments: n (square size), threads.
template <typename T>
void BM_gemm_forward(benchmark::State& state) {
  const int64_t n = state.range(0);
  dlcore::set_num_threads(static_cast<int>(state.range(1)));
  auto a = random_vector<T>(n * n, 1), b = random_vector<T>(n * n, 2);
  std::vector<T> c(n * n);
  const dlcore::GemmShape s{n, n, n};
  for (auto _ : state) {
    dlcore::gemm_forward<T>({c.data(), n, false}, {a.data(), n, false}, {b.data(), n, false}, s);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

template <typename T>
void BM_gemm_backward(benchmark::State& state) {
  const int64_t n = state.range(0);
  dlcore::set_num_threads(static_cast<int>(state.range(1)));
  auto a = random_vector<T>(n * n, 1), b = random_vector<T>(n * n, 2),
       dc = random_vector<T>(n * n, 3);
  std::vector<T> da(n * n), db(n * n);
  const dlcore::GemmShape s{n, n, n};
  for (auto _ : state) {
    dlcore::gemm_backward<T>({da.data(), n, false}, {db.data(), n, false}, {dc.data(), n, false},
                             {a.data(), n, false}, {b.data(), n, false}, s);
    benchmark::DoNotOptimize(da.data());
    benchmark::DoNotOptimize(db.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      4.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int n : {256, 512, 1024, 2048}) b->Args({n, threads});
  b->ArgNames({"n", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_gemm_forward<float>)->Apply(sizes);
BENCHMARK(BM_gemm_forward<double>)->Apply(sizes);
BENCHMARK(BM_gemm_backward<float>)->Apply(sizes);
