// Conv2D forward and backward at the side-by-side benchmark's shapes (3x3, float).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "dlcore/conv2d.hpp"
#include "dlcore/parallel.hpp"

namespace {

struct Layer {
  int64_t N, H, W, C, OC, pad;
  bool need_dx;  // the 1-channel layer is a first layer: no dx
};
const Layer kLayers[] = {
    {64, 28, 28, 1, 32, 0, false},
    {64, 26, 26, 32, 64, 0, true},
    {32, 56, 56, 64, 64, 1, true},
    {16, 28, 28, 128, 128, 1, true},
};

std::vector<float> random_vector(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

dlcore::Conv2dShape shape_of(const Layer& l) {
  dlcore::Conv2dParams p;
  p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = l.pad;
  return dlcore::Conv2dShape("bench", {l.N, l.H, l.W, l.C}, {3, 3, l.C, l.OC}, p);
}

double forward_flops(const dlcore::Conv2dShape& s) { return 2.0 * s.pixels() * s.K() * s.OC; }

void set_rate(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// Arguments: layer index, threads.
void BM_conv2d_forward(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  dlcore::set_num_threads(static_cast<int>(state.range(1)));
  const auto s = shape_of(l);
  auto x = random_vector(s.N * s.H * s.W * s.C, 1), k = random_vector(s.K() * s.OC, 2);
  auto b = random_vector(s.OC, 3);
  std::vector<float> y(s.pixels() * s.OC);
  for (auto _ : state) {
    dlcore::conv2d_forward<float>(y.data(), x.data(), k.data(), b.data(), s);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, forward_flops(s));
}

// All gradients the layer needs (dkernel, dbias, and dx unless it is the first layer).
void BM_conv2d_backward(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  dlcore::set_num_threads(static_cast<int>(state.range(1)));
  const auto s = shape_of(l);
  auto x = random_vector(s.N * s.H * s.W * s.C, 1), k = random_vector(s.K() * s.OC, 2);
  auto dy = random_vector(s.pixels() * s.OC, 3);
  std::vector<float> dx(x.size()), dk(k.size()), db(s.OC);
  for (auto _ : state) {
    std::fill(dx.begin(), dx.end(), 0.f);
    std::fill(dk.begin(), dk.end(), 0.f);
    std::fill(db.begin(), db.end(), 0.f);
    dlcore::conv2d_backward<float>(l.need_dx ? dx.data() : nullptr, dk.data(), db.data(), dy.data(),
                                   x.data(), k.data(), s);
    benchmark::DoNotOptimize(dk.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, forward_flops(s) * (l.need_dx ? 2 : 1));
}

void layers(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int layer = 0; layer < 4; ++layer) b->Args({layer, threads});
  b->ArgNames({"layer", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_conv2d_forward)->Apply(layers);
BENCHMARK(BM_conv2d_backward)->Apply(layers);
