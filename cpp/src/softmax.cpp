// See the note in activation.cpp: GCC's default -ftrapping-math keeps the selects in the
// row loops below from vectorising. No kernel enables floating-point traps.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "dlcore/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "dlcore/checks.hpp"
#include "dlcore/parallel.hpp"
#include "fast_math.hpp"

namespace dlcore {

namespace {

// Below this many elements one thread is faster than waking a second (a classifier's
// batch of 32 x 10 logits stays on the calling thread).
constexpr int64_t kParallelMin = 1 << 14;

int threads_for(int64_t work) { return work >= kParallelMin ? get_num_threads() : 1; }

// Runs row(r) for every r in [0, R), each row on one thread.
template <typename F>
void for_each_row(int64_t R, int64_t C, F&& row) {
#pragma omp parallel for num_threads(threads_for(R* C)) schedule(static)
  for (int64_t r = 0; r < R; ++r) row(r);
}

// The row's largest logit. A NaN in the row makes the sum of the shifted exponentials
// NaN whichever value this returns, and so the row's results.
template <typename T>
T row_max(const T* x, int64_t C) {
  T m = x[0];
  for (int64_t c = 1; c < C; ++c) m = x[c] > m ? x[c] : m;
  return m;
}

// Row sums are accumulated in double: a float32 sum of a long row (a 20,000-word
// vocabulary) would drift by 1e-5 relative when the loop is not split into vector
// lanes, as in a sanitizer build.

// e[c] = exp(x[c] - m) for the row's max m; returns m and sum(e).
template <typename T>
std::pair<T, double> shifted_exp(T* e, const T* x, int64_t C) {
  const T m = row_max(x, C);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < C; ++c) {
    e[c] = fast_math::Math<T>::exp(x[c] - m);
    s += double(e[c]);
  }
  return {m, s};
}

// The row's max m and sum(exp(x[c] - m)), the exponentials not kept.
template <typename T>
std::pair<T, double> shifted_exp_sum(const T* x, int64_t C) {
  const T m = row_max(x, C);
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t c = 0; c < C; ++c) s += double(fast_math::Math<T>::exp(x[c] - m));
  return {m, s};
}

template <typename T>
void scale_row(T* y, int64_t C, T k) {
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) y[c] *= k;
}

}  // namespace

template <typename T>
void softmax_forward(T* y, const T* x, int64_t R, int64_t C) {
  if (C == 0) return;
  for_each_row(R, C, [&](int64_t r) {
    T* yr = y + r * C;
    const double s = shifted_exp(yr, x + r * C, C).second;
    scale_row(yr, C, T(1 / s));
  });
}

template <typename T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t R, int64_t C) {
  if (C == 0) return;
  for_each_row(R, C, [&](int64_t r) {
    const T *g = dy + r * C, *yr = y + r * C;
    T* d = dx + r * C;
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; ++c) sum += double(g[c] * yr[c]);
    const T dot = T(sum);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) d[c] = yr[c] * (g[c] - dot);
  });
}

template <typename T, typename I>
void sparse_softmax_cross_entropy(T* loss, T* grad, const T* logits, const I* labels, int64_t R,
                                  int64_t C, const char* fn) {
  // Each label is read once, where it is used: labels may be memory another Python
  // thread can write while the GIL is released, so a check made in a pass of its own
  // would not cover the read that indexes the row. A bad label's row is skipped and
  // the first such row is reported once the team is done.
  int64_t first_bad = R;
#pragma omp parallel for num_threads(threads_for(R* C)) schedule(static) reduction(min : first_bad)
  for (int64_t r = 0; r < R; ++r) {
    const I v = labels[r];
    if (index_outside(v, C)) {
      first_bad = std::min(first_bad, r);
      continue;
    }
    const T* x = logits + r * C;
    const auto label = static_cast<int64_t>(v);
    // The shifted exponentials go to the row's gradient when there is one; without,
    // only their sum is kept.
    if (grad) {
      T* g = grad + r * C;
      const auto [m, s] = shifted_exp(g, x, C);
      loss[r] = T(std::log(s) - double(x[label] - m));
      scale_row(g, C, T(1 / s));
      g[label] -= T(1);
    } else {
      const auto [m, s] = shifted_exp_sum(x, C);
      loss[r] = T(std::log(s) - double(x[label] - m));
    }
  }
  if (first_bad == R) return;
  fail(fn, ": argument 'labels' holds ", integer_str(labels[first_bad]), " at row ", first_bad,
       "; expected class indices in [0, ", C, "), the logits' last axis");
}

template <typename T>
void softmax_cross_entropy(T* loss, T* grad, const T* logits, const T* targets, int64_t R,
                           int64_t C) {
  for_each_row(R, C, [&](int64_t r) {
    const T *x = logits + r * C, *t = targets + r * C;
    // With a gradient, its row holds the shifted exponentials until they are scaled.
    T* g = grad ? grad + r * C : nullptr;
    const auto [m, s] = g ? shifted_exp(g, x, C) : shifted_exp_sum(x, C);
    const T log_s = T(std::log(s));
    double l = 0, total = 0;
#pragma omp simd reduction(+ : l, total)
    for (int64_t c = 0; c < C; ++c) {
      l += double(t[c] * (x[c] - m - log_s));
      total += double(t[c]);
    }
    loss[r] = T(-l);
    if (!g) return;
    const T k = T(total / s);
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) g[c] = g[c] * k - t[c];
  });
}

#define DLCORE_INSTANTIATE_SOFTMAX(T)                                          \
  template void softmax_forward<T>(T*, const T*, int64_t, int64_t);            \
  template void softmax_backward<T>(T*, const T*, const T*, int64_t, int64_t); \
  template void softmax_cross_entropy<T>(T*, T*, const T*, const T*, int64_t, int64_t);
DLCORE_INSTANTIATE_SOFTMAX(float)
DLCORE_INSTANTIATE_SOFTMAX(double)
#undef DLCORE_INSTANTIATE_SOFTMAX

#define DLCORE_INSTANTIATE_SPARSE_CE(T, I)                                                       \
  template void sparse_softmax_cross_entropy<T, I>(T*, T*, const T*, const I*, int64_t, int64_t, \
                                                   const char*);
#define DLCORE_INSTANTIATE_SPARSE_CE_FOR(I) \
  DLCORE_INSTANTIATE_SPARSE_CE(float, I)    \
  DLCORE_INSTANTIATE_SPARSE_CE(double, I)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(int8_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(int16_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(int32_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(int64_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(uint8_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(uint16_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(uint32_t)
DLCORE_INSTANTIATE_SPARSE_CE_FOR(uint64_t)
#undef DLCORE_INSTANTIATE_SPARSE_CE_FOR
#undef DLCORE_INSTANTIATE_SPARSE_CE

}  // namespace dlcore
