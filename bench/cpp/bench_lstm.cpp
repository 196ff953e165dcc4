// LSTM forward and backward at the side-by-side benchmark's shapes, plus the stacked
// LSTM's small layers (N=32, U=50, T=50, I=50 and I=1).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "dlcore/lstm.hpp"
#include "dlcore/parallel.hpp"

namespace {

template <typename T>
std::vector<T> uniform(size_t n, float scale, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(gen));
  return v;
}

// Inputs, weights and every buffer of one forward and backward; zero initial states.
template <typename T>
struct Problem {
  dlcore::LstmShape s;
  std::vector<T> x, kernel, rec, bias, dy, y, h_n, c_n, gates, cells;
  std::vector<T> dx, dh0, dc0, dweights, dbias;

  explicit Problem(const benchmark::State& state)
      : s{state.range(0), state.range(3), state.range(1), state.range(2)} {
    const int64_t N = s.N, TT = s.T, I = s.I, U = s.U;
    const float scale = 1.0f / std::sqrt(float(U));
    x = uniform<T>(N * TT * I, 1.0f, 1);
    kernel = uniform<T>(I * 4 * U, scale, 2);
    rec = uniform<T>(U * 4 * U, scale, 3);
    bias = uniform<T>(4 * U, scale, 4);
    dy = uniform<T>(N * TT * U, 1.0f, 5);
    y.resize(N * TT * U);
    h_n.resize(N * U);
    c_n.resize(N * U);
    gates.resize(N * TT * 4 * U);
    cells.resize(N * TT * U);
    dx.resize(N * TT * I);
    dh0.resize(N * U);
    dc0.resize(N * U);
    dweights.resize((I + U) * 4 * U);
    dbias.resize(4 * U);
    dlcore::set_num_threads(static_cast<int>(state.range(4)));
  }

  void forward() {
    dlcore::lstm_forward<T>(y.data(), h_n.data(), c_n.data(), gates.data(), cells.data(), x.data(),
                            nullptr, nullptr, kernel.data(), rec.data(), bias.data(), s);
  }

  void backward() {
    dlcore::lstm_backward<T>(dx.data(), dh0.data(), dc0.data(), dweights.data(), dbias.data(),
                             gates.data(), cells.data(), y.data(), x.data(), nullptr, nullptr,
                             kernel.data(), rec.data(), dy.data(), nullptr, nullptr, s);
  }

  void zero_gradients() {  // the backward accumulates into zeroed buffers
    for (auto* g : {&dx, &dh0, &dc0, &dweights, &dbias}) std::fill(g->begin(), g->end(), T(0));
  }

  double flops() const { return 2.0 * s.N * s.T * 4 * s.U * (s.I + s.U); }
};

benchmark::Counter gflops(double flops_per_iteration) {
  return benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate,
                            benchmark::Counter::kIs1000);
}

template <typename T>
void BM_lstm_forward(benchmark::State& state) {
  Problem<T> p(state);
  for (auto _ : state) {
    p.forward();
    benchmark::DoNotOptimize(p.y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = gflops(p.flops());
}

// The backward alone: each iteration re-runs the forward (its state serves one backward)
// with the timer paused.
template <typename T>
void BM_lstm_backward(benchmark::State& state) {
  Problem<T> p(state);
  for (auto _ : state) {
    state.PauseTiming();
    p.forward();
    p.zero_gradients();
    state.ResumeTiming();
    p.backward();
    benchmark::DoNotOptimize(p.dweights.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = gflops(2 * p.flops());
}

// Arguments: N, I, U, T, threads.
void shapes(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    b->Args({64, 128, 256, 50, threads});
    b->Args({1, 128, 256, 50, threads});
    b->Args({32, 512, 512, 20, threads});
    b->Args({32, 50, 50, 50, threads});
    b->Args({32, 1, 50, 50, threads});
  }
  b->ArgNames({"N", "I", "U", "T", "threads"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_lstm_forward<float>)->Apply(shapes);
BENCHMARK(BM_lstm_backward<float>)->Apply(shapes);
BENCHMARK(BM_lstm_forward<double>)
    ->Args({64, 128, 256, 50, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
