#include "dlcore/norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "common/workspace.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {

NormShape::NormShape(const char* fn, const std::vector<int64_t>& x_shape) {
  if (x_shape.empty()) {
    fail(fn, ": argument 'x' is 0-D; expected an array of at least one axis, the last one ",
         "holding the channels");
  }
  if (*std::min_element(x_shape.begin(), x_shape.end()) < 0) {
    fail(fn, ": argument 'x' has shape ", shape_str(x_shape), "; expected sizes >= 0");
  }
  C = x_shape.back();
  M = checked_numel(std::vector<int64_t>(x_shape.begin(), x_shape.end() - 1), fn);
  checked_mul(M, C, fn);
}

void check_epsilon(const char* fn, double epsilon) {
  if (!(std::isfinite(epsilon) && epsilon >= 0)) {
    fail(fn, ": epsilon is ", epsilon, "; expected a finite number >= 0");
  }
}

namespace {

// Below this many elements one thread is faster than waking a second.
constexpr int64_t kParallelMin = 1 << 15;
// A chunk of rows (64 KB of float) stays in L2 between the passes made over it.
constexpr int64_t kChunkElements = 1 << 14;
// More chunks only grow the partial sums; 256 keep any thread count busy.
constexpr int64_t kMaxChunks = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int threads_for(const NormShape& s) { return s.M * s.C >= kParallelMin ? get_num_threads() : 1; }

// The rows in fixed chunks, the same at any thread count: partial sums made per chunk
// and added in chunk order give the same bits however the chunks are shared out. Inside
// a chunk, `group` rows are read as one wide row of P = group * C elements, a multiple of
// 8, so that the per-channel loops vectorise for any C (C = 3: 8 rows of 24); element j
// of a wide row is channel j % C, and the chunk's last wide row may be short.
struct Chunks {
  int64_t group, P, rows, count;

  explicit Chunks(const NormShape& s, bool grouped) {
    const int64_t C = std::max<int64_t>(s.C, 1);
    group = grouped ? 8 / std::gcd(C, int64_t(8)) : 1;
    P = group * C;
    rows = std::max({ceil_div(kChunkElements, C), ceil_div(s.M, kMaxChunks), int64_t(1)});
    rows = ceil_div(rows, group) * group;
    count = ceil_div(s.M, rows);
  }
  int64_t first(int64_t i) const { return i * rows; }
  int64_t size(int64_t i, int64_t M) const { return std::min(rows, M - i * rows); }
};

// Scratch for one call, kept by the calling thread (several Python threads may call at
// once) and taken before any parallel region.
struct NormScratch {};

template <typename T>
T* call_scratch(int64_t count) {
  return kept_buffer<NormScratch>().get<T>(static_cast<size_t>(count));
}

// fold_groups adds the groups of a wide row of sums into acc[0, C); widen repeats a[0, C)
// over the groups.
template <typename T>
void fold_groups(T* acc, int64_t group, int64_t C) {
  for (int64_t g = 1; g < group; ++g) {
    for (int64_t c = 0; c < C; ++c) acc[c] += acc[g * C + c];
  }
}

template <typename T>
void widen(T* a, int64_t C, int64_t P) {
  for (int64_t j = C; j < P; ++j) a[j] = a[j - C];
}

// y = x * scale + shift over n elements of wide rows.
template <typename T>
void affine_wide_rows(T* y, const T* x, const T* scale, const T* shift, int64_t n, int64_t P) {
  for (int64_t off = 0; off < n; off += P) {
    const int64_t width = std::min(P, n - off);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) y[off + j] = x[off + j] * scale[j] + shift[j];
  }
}

template <typename T>
void affine_chunks(T* y, const T* x, const T* scale, const T* shift, const NormShape& s,
                   const Chunks& ch, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    const int64_t off = ch.first(i) * s.C;
    affine_wide_rows(y + off, x + off, scale, shift, ch.size(i, s.M) * s.C, ch.P);
  }
}

// Per-channel scale and shift of y = x * scale + shift, widened to P.
template <typename T>
void set_affine(T* scale, T* shift, int64_t c, double mean, double inv_std, const T* gamma,
                const T* beta) {
  const double sc = inv_std * (gamma ? double(gamma[c]) : 1.0);
  scale[c] = T(sc);
  shift[c] = T((beta ? double(beta[c]) : 0.0) - mean * sc);
}

// One chunk's statistics per channel, folded into [0, C) of P-long slots: the shift k (the
// chunk's first row), the mean's offset d from it, and M2 = sum ((x - k) - d)^2. Two
// passes over n rows still in cache; working on x - k, a mean far from zero (1e4 with a
// spread of 0.1) costs the float sums no precision.
template <typename T>
void chunk_moments(T* k, T* d, T* m2, const T* x, int64_t n, const Chunks& ch, int64_t C) {
  const int64_t P = ch.P, len = n * C;
  std::copy(x, x + C, k);
  widen(k, C, P);
  std::fill(d, d + P, T(0));
  std::fill(m2, m2 + P, T(0));
  for (int64_t off = 0; off < len; off += P) {
    const T* row = x + off;
    const int64_t width = std::min(P, len - off);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) d[j] += row[j] - k[j];
  }
  fold_groups(d, ch.group, C);
  for (int64_t c = 0; c < C; ++c) d[c] /= T(n);
  widen(d, C, P);
  for (int64_t off = 0; off < len; off += P) {
    const T* row = x + off;
    const int64_t width = std::min(P, len - off);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) {
      const T dev = (row[j] - k[j]) - d[j];
      m2[j] += dev * dev;
    }
  }
  fold_groups(m2, ch.group, C);
}

// Channel c's mean and biased variance from the chunks' moments, merged in chunk order
// (Chan, Golub and LeVeque) in double; NaN for an empty batch.
template <typename T>
std::pair<double, double> merged_moments(const T* k, const T* d, const T* m2, int64_t c,
                                         const Chunks& ch, int64_t M) {
  double n_a = 0, mean_a = 0, m2_a = 0;
  for (int64_t i = 0; i < ch.count; ++i) {
    const int64_t at = i * ch.P + c;
    const double n_b = double(ch.size(i, M)), n = n_a + n_b;
    const double delta = double(k[at]) + double(d[at]) - mean_a;
    mean_a += delta * (n_b / n);
    m2_a += double(m2[at]) + delta * delta * (n_a * n_b / n);
    n_a = n;
  }
  if (M == 0) return {std::nan(""), std::nan("")};
  return {mean_a, m2_a / double(M)};
}

// parts[i * stride + c] added over the chunks i in chunk order, in double.
template <typename T>
double chunk_total(const T* parts, int64_t stride, int64_t c, const Chunks& ch) {
  double total = 0;
  for (int64_t i = 0; i < ch.count; ++i) total += double(parts[i * stride + c]);
  return total;
}

// One chunk's sums of dy and of dy * (x - mean), folded into [0, C).
template <typename T>
void chunk_grad_sums(T* sum_dy, T* sum_dyx, const T* dy, const T* x, const T* mean_w, int64_t len,
                     const Chunks& ch, int64_t C) {
  std::fill(sum_dy, sum_dy + ch.P, T(0));
  std::fill(sum_dyx, sum_dyx + ch.P, T(0));
  for (int64_t off = 0; off < len; off += ch.P) {
    const T *dyw = dy + off, *xw = x + off;
    const int64_t width = std::min(ch.P, len - off);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) {
      sum_dy[j] += dyw[j];
      sum_dyx[j] += dyw[j] * (xw[j] - mean_w[j]);
    }
  }
  fold_groups(sum_dy, ch.group, C);
  fold_groups(sum_dyx, ch.group, C);
}

// dx = a dy + b + c (x - mean) over len elements of wide rows (b = c = null: dx = a dy).
template <typename T>
void dx_wide_rows(T* dx, const T* dy, const T* x, const T* a, const T* b, const T* c,
                  const T* mean_w, int64_t len, int64_t P) {
  for (int64_t off = 0; off < len; off += P) {
    const T *dyw = dy + off, *xw = x + off;
    T* dxw = dx + off;
    const int64_t width = std::min(P, len - off);
    if (!b) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) dxw[j] = a[j] * dyw[j];
      continue;
    }
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) dxw[j] = a[j] * dyw[j] + b[j] + c[j] * (xw[j] - mean_w[j]);
  }
}

}  // namespace

template <typename T>
void batch_norm_forward(T* y, T* mean, T* variance, T* inv_std, const T* x, const T* gamma,
                        const T* beta, const NormShape& s, double epsilon) {
  const int64_t M = s.M, C = s.C;
  if (C == 0) return;
  const Chunks ch(s, true);
  const int64_t P = ch.P;
  T* shifts = call_scratch<T>((3 * ch.count + 2) * P);  // per chunk: k, d, m2
  T* offsets = shifts + ch.count * P;
  T* m2s = offsets + ch.count * P;
  T* scale = m2s + ch.count * P;
  T* shift = scale + P;
  const int threads = threads_for(s);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    chunk_moments(shifts + i * P, offsets + i * P, m2s + i * P, x + ch.first(i) * C, ch.size(i, M),
                  ch, C);
  }
  // One thread merges: C x (at most kMaxChunks) steps cost less than a team's barrier.
  for (int64_t c = 0; c < C; ++c) {
    const auto [mu, var] = merged_moments(shifts, offsets, m2s, c, ch, M);
    const double is = 1.0 / std::sqrt(var + epsilon);
    mean[c] = T(mu), variance[c] = T(var), inv_std[c] = T(is);
    set_affine(scale, shift, c, mu, is, gamma, beta);
  }
  widen(scale, C, P);
  widen(shift, C, P);
  affine_chunks(y, x, scale, shift, s, ch, threads);
}

template <typename T>
void batch_norm_inference(T* y, const T* x, const T* mean, const T* variance, const T* gamma,
                          const T* beta, const NormShape& s, double epsilon) {
  const int64_t C = s.C;
  if (C == 0) return;
  const Chunks ch(s, true);
  T* scale = call_scratch<T>(2 * ch.P);
  T* shift = scale + ch.P;
  for (int64_t c = 0; c < C; ++c) {
    set_affine(scale, shift, c, double(mean[c]), 1.0 / std::sqrt(double(variance[c]) + epsilon),
               gamma, beta);
  }
  widen(scale, C, ch.P);
  widen(shift, C, ch.P);
  affine_chunks(y, x, scale, shift, s, ch, threads_for(s));
}

template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                         const T* mean, const T* inv_std, const NormShape& s, bool training) {
  const int64_t M = s.M, C = s.C;
  if (C == 0) return;
  const Chunks ch(s, true);
  const int64_t P = ch.P;
  const bool sums = dgamma || dbeta || (dx && training);
  const bool dx_now = dx && !training;  // constant statistics: dx = gamma inv_std dy
  T* sum_dy = call_scratch<T>((2 * ch.count + 4) * P);
  T* sum_dyx = sum_dy + ch.count * P;
  T* mean_w = sum_dyx + ch.count * P;
  T* a = mean_w + P;  // dx = a dy + b + c (x - mean)
  T* b = a + P;
  T* c_ = b + P;
  for (int64_t c = 0; c < C; ++c) {
    mean_w[c] = mean[c];
    a[c] = T(double(gamma ? gamma[c] : T(1)) * double(inv_std[c]));
  }
  widen(mean_w, C, P);
  widen(a, C, P);
  const int threads = threads_for(s);
  if (sums || dx_now) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < ch.count; ++i) {
      const int64_t off = ch.first(i) * C, len = ch.size(i, M) * C;
      if (sums)
        chunk_grad_sums(sum_dy + i * P, sum_dyx + i * P, dy + off, x + off, mean_w, len, ch, C);
      if (dx_now) dx_wide_rows<T>(dx + off, dy + off, x + off, a, nullptr, nullptr, mean_w, len, P);
    }
  }
  if (!sums) return;
  // dx = g is (dy - mean(dy) - xhat mean(dy xhat)) with xhat = (x - mean) is; the chunk
  // totals on one thread, as the forward's merge
  for (int64_t c = 0; c < C; ++c) {
    const double s_dy = chunk_total(sum_dy, P, c, ch), s_dyx = chunk_total(sum_dyx, P, c, ch);
    const double is = double(inv_std[c]);
    if (dbeta) dbeta[c] += T(s_dy);
    if (dgamma) dgamma[c] += T(M > 0 ? s_dyx * is : 0.0);  // is is NaN for M = 0
    const double k = double(gamma ? gamma[c] : T(1)) * is;
    b[c] = T(-k * s_dy / double(M));
    c_[c] = T(-k * is * is * s_dyx / double(M));
  }
  if (!(dx && training)) return;
  widen(b, C, P);
  widen(c_, C, P);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    const int64_t off = ch.first(i) * C;
    dx_wide_rows(dx + off, dy + off, x + off, a, b, c_, mean_w, ch.size(i, M) * C, P);
  }
}

namespace {

// Row reductions for layer norm, each in kLanes independent partial sums added in a fixed
// order: the single vector accumulator of an `omp simd reduction` waits on every add's
// latency, and these rows sit in L1. Plain loops: GCC keeps the partial sums in registers.
constexpr int64_t kLanes = 32;

// The kLanes partial sums added pairwise in a fixed tree (a sequential sum of them cost
// more than the row: 32 dependent scalar adds).
template <typename T>
T fold_lanes(T* acc) {
  for (int64_t width = kLanes / 2; width > 0; width /= 2) {
    for (int64_t j = 0; j < width; ++j) acc[j] += acc[j + width];
  }
  return acc[0];
}

// sum of x[c], and the sum of (x[c] - mu)^2
template <typename T>
T row_sum(const T* x, int64_t C) {
  T acc[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= C; c += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) acc[j] += x[c + j];
  }
  T tail = 0;
  for (; c < C; ++c) tail += x[c];
  return fold_lanes(acc) + tail;
}

template <typename T>
T row_squared_deviations(const T* x, T mu, int64_t C) {
  T acc[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= C; c += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const T d = x[c + j] - mu;
      acc[j] += d * d;
    }
  }
  T tail = 0;
  for (; c < C; ++c) tail += (x[c] - mu) * (x[c] - mu);
  return fold_lanes(acc) + tail;
}

// sum of g dy and of g dy xhat over a row, xhat = (x - mu) is
template <typename T>
std::pair<T, T> row_gradient_sums(const T* g, const T* dy, const T* x, T mu, T is, int64_t C) {
  T a[kLanes] = {}, b[kLanes] = {};
  int64_t c = 0;
  for (; c + kLanes <= C; c += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const T gd = g[c + j] * dy[c + j];
      a[j] += gd;
      b[j] += gd * ((x[c + j] - mu) * is);
    }
  }
  T tail_a = 0, tail_b = 0;
  for (; c < C; ++c) {
    const T gd = g[c] * dy[c];
    tail_a += gd;
    tail_b += gd * ((x[c] - mu) * is);
  }
  return {fold_lanes(a) + tail_a, fold_lanes(b) + tail_b};
}

}  // namespace

template <typename T>
void layer_norm_forward(T* y, T* mean, T* inv_std, const T* x, const T* gamma, const T* beta,
                        const NormShape& s, double epsilon) {
  const int64_t M = s.M, C = s.C;
  T* ones = call_scratch<T>(2 * C);  // gamma and beta when absent
  T* zeros = ones + C;
  std::fill(ones, ones + C, T(1));
  std::fill(zeros, zeros + C, T(0));
  const T* g = gamma ? gamma : ones;
  const T* bt = beta ? beta : zeros;
  const T eps = T(epsilon);
#pragma omp parallel for num_threads(threads_for(s)) schedule(static)
  for (int64_t r = 0; r < M; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    // two passes over a row in L1: the mean, then the squared deviations from it
    const T mu = row_sum(xr, C) / T(C);
    const T sq = row_squared_deviations(xr, mu, C);
    const T is = T(1) / std::sqrt(sq / T(C) + eps);
    mean[r] = mu, inv_std[r] = is;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - mu) * is * g[c] + bt[c];
  }
}

template <typename T>
void layer_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                         const T* mean, const T* inv_std, const NormShape& s) {
  const int64_t M = s.M, C = s.C;
  const Chunks ch(s, false);
  const bool params = dgamma || dbeta;
  T* part_dg = call_scratch<T>((2 * ch.count + 1) * C);  // per chunk: sum of dy xhat, of dy
  T* part_db = part_dg + ch.count * C;
  T* ones = part_db + ch.count * C;
  std::fill(ones, ones + C, T(1));
  const T* g = gamma ? gamma : ones;
  const int threads = threads_for(s);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    T* pg = part_dg + i * C;
    T* pb = part_db + i * C;
    std::fill(pg, pg + C, T(0));
    std::fill(pb, pb + C, T(0));
    for (int64_t r = ch.first(i); r < ch.first(i) + ch.size(i, M); ++r) {
      const T *xr = x + r * C, *dyr = dy + r * C;
      const T mu = mean[r], is = inv_std[r];
      // dx = is (g dy - mean(g dy) - xhat mean(g dy xhat)), xhat = (x - mean) is
      const auto [sum_g, sum_gx] = row_gradient_sums(g, dyr, xr, mu, is, dx ? C : 0);
      const T mean_g = sum_g / T(C), mean_gx = sum_gx / T(C);
      T* dxr = dx ? dx + r * C : nullptr;
      if (dx && params) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const T xhat = (xr[c] - mu) * is;
          dxr[c] = is * (g[c] * dyr[c] - mean_g - xhat * mean_gx);
          pg[c] += dyr[c] * xhat;
          pb[c] += dyr[c];
        }
      } else if (dx) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          dxr[c] = is * (g[c] * dyr[c] - mean_g - (xr[c] - mu) * is * mean_gx);
        }
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          pg[c] += dyr[c] * ((xr[c] - mu) * is);
          pb[c] += dyr[c];
        }
      }
    }
  }
  if (!params) return;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma) dgamma[c] += T(chunk_total(part_dg, C, c, ch));
    if (dbeta) dbeta[c] += T(chunk_total(part_db, C, c, ch));
  }
}

#define DLCORE_INSTANTIATE_NORM(T)                                                                \
  template void batch_norm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*,               \
                                      const NormShape&, double);                                  \
  template void batch_norm_inference<T>(T*, const T*, const T*, const T*, const T*, const T*,     \
                                        const NormShape&, double);                                \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                       const T*, const NormShape&, bool);                         \
  template void layer_norm_forward<T>(T*, T*, T*, const T*, const T*, const T*, const NormShape&, \
                                      double);                                                    \
  template void layer_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                       const T*, const NormShape&);
DLCORE_INSTANTIATE_NORM(float)
DLCORE_INSTANTIATE_NORM(double)
#undef DLCORE_INSTANTIATE_NORM

}  // namespace dlcore
