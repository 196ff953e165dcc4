// Max-pool 2x2 (stride 2) forward and backward at the side-by-side benchmark's shapes.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "dlcore/parallel.hpp"
#include "dlcore/pool.hpp"

namespace {

const int64_t kShapes[][4] = {{64, 26, 26, 32}, {64, 11, 11, 64}};  // (N, H, W, C)

dlcore::Pool2dShape shape_of(int64_t index) {
  const int64_t* d = kShapes[index];
  return dlcore::Pool2dShape("bench", {d[0], d[1], d[2], d[3]}, dlcore::Pool2dParams{});
}

std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// Bytes each call must move: x read, y written and argmax (int64) written; backward:
// dy and argmax read, dx written (the zeroing is the caller's).
void set_bandwidth(benchmark::State& state, double bytes) {
  state.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

// Arguments: shape index, threads.
void BM_maxpool2d_forward(benchmark::State& state) {
  dlcore::set_num_threads(static_cast<int>(state.range(1)));
  const auto s = shape_of(state.range(0));
  const int64_t in = s.N * s.H * s.W * s.C, out = s.N * s.OH * s.OW * s.C;
  auto x = random_vector(in, 1);
  std::vector<float> y(out);
  std::vector<int64_t> argmax(out);
  for (auto _ : state) {
    dlcore::maxpool2d_forward<float>(y.data(), argmax.data(), x.data(), s);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_bandwidth(state, 4.0 * in + 12.0 * out);
}

void BM_maxpool2d_backward(benchmark::State& state) {
  dlcore::set_num_threads(static_cast<int>(state.range(1)));
  const auto s = shape_of(state.range(0));
  const int64_t in = s.N * s.H * s.W * s.C, out = s.N * s.OH * s.OW * s.C;
  auto x = random_vector(in, 1), dy = random_vector(out, 2);
  std::vector<float> y(out), dx(in);
  std::vector<int64_t> argmax(out);
  dlcore::maxpool2d_forward<float>(y.data(), argmax.data(), x.data(), s);
  for (auto _ : state) {
    std::fill(dx.begin(), dx.end(), 0.f);
    dlcore::maxpool2d_backward<float>(dx.data(), dy.data(), argmax.data(), s);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_bandwidth(state, 4.0 * in + 12.0 * out);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int shape = 0; shape < 2; ++shape) b->Args({shape, threads});
  b->ArgNames({"shape", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_maxpool2d_forward)->Apply(shapes);
BENCHMARK(BM_maxpool2d_backward)->Apply(shapes);
