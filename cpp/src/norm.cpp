#include "dlcore/norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "common/simd.hpp"
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
// Wide rows added to the per-channel sums per update (the loops below spell out four).
constexpr int64_t kRowGroup = 4;

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

struct NormTotals {};

template <typename T>
T* call_scratch(int64_t count) {
  return kept_buffer<NormScratch>().get<T>(static_cast<size_t>(count));
}

// Per-channel totals in double, beside call_scratch's buffer.
double* call_totals(int64_t count) {
  return kept_buffer<NormTotals>().get<double>(static_cast<size_t>(count));
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

// y[i - begin] = x[i] * scale[i % P] + shift[i % P] for i in [begin, end): elements of
// wide rows, written from y.
template <typename T>
void affine_range(T* y, const T* x, const T* scale, const T* shift, int64_t begin, int64_t end,
                  int64_t P) {
  for (int64_t i = begin, j0 = begin % P; i < end; j0 = 0) {
    const int64_t width = std::min(P - j0, end - i);
    const T *xs = x + i, *sc = scale + j0, *sh = shift + j0;
    T* ys = y + (i - begin);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) ys[j] = xs[j] * sc[j] + sh[j];
    i += width;
  }
}

template <typename T>
void affine_chunks(T* y, const T* x, const T* scale, const T* shift, const NormShape& s,
                   const Chunks& ch, int threads) {
  const bool stream = simd::stream_pays(2 * size_t(s.M * s.C) * sizeof(T));  // x, y
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    const int64_t off = ch.first(i) * s.C, end = off + ch.size(i, s.M) * s.C;
    simd::write_streamed(y, off, end, stream, [&](T* out, int64_t b, int64_t e) {
      affine_range(out, x, scale, shift, b, e, ch.P);
    });
    if (stream) simd::stream_fence();
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
// spread of 0.1) costs the float sums no precision. The sums live in memory (P is any
// size), so each pass adds kRowGroup wide rows to them at a time: one load and store of
// a sum per four rows, not per row.
template <typename T>
void chunk_moments(T* k, T* d, T* m2, const T* x, int64_t n, const Chunks& ch, int64_t C) {
  const int64_t P = ch.P, len = n * C;
  std::copy(x, x + C, k);
  widen(k, C, P);
  std::fill(d, d + P, T(0));
  std::fill(m2, m2 + P, T(0));
  int64_t off = 0;
  for (; off + kRowGroup * P <= len; off += kRowGroup * P) {
    const T *r0 = x + off, *r1 = r0 + P, *r2 = r1 + P, *r3 = r2 + P;
#pragma omp simd
    for (int64_t j = 0; j < P; ++j) {
      d[j] += ((r0[j] - k[j]) + (r1[j] - k[j])) + ((r2[j] - k[j]) + (r3[j] - k[j]));
    }
  }
  for (; off < len; off += P) {
    const T* row = x + off;
    const int64_t width = std::min(P, len - off);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) d[j] += row[j] - k[j];
  }
  fold_groups(d, ch.group, C);
  for (int64_t c = 0; c < C; ++c) d[c] /= T(n);
  widen(d, C, P);
  for (off = 0; off + kRowGroup * P <= len; off += kRowGroup * P) {
    const T *r0 = x + off, *r1 = r0 + P, *r2 = r1 + P, *r3 = r2 + P;
#pragma omp simd
    for (int64_t j = 0; j < P; ++j) {
      const T e0 = (r0[j] - k[j]) - d[j], e1 = (r1[j] - k[j]) - d[j];
      const T e2 = (r2[j] - k[j]) - d[j], e3 = (r3[j] - k[j]) - d[j];
      m2[j] += (e0 * e0 + e1 * e1) + (e2 * e2 + e3 * e3);
    }
  }
  for (; off < len; off += P) {
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

// Every channel's mean and biased variance from the chunks' moments, merged in chunk
// order (Chan, Golub and LeVeque) in double: a chunk's weights are the same for all
// channels, which go side by side. NaN for an empty batch.
template <typename T>
void merged_moments(double* mean, double* variance, const T* k, const T* d, const T* m2,
                    const Chunks& ch, int64_t M, int64_t C) {
  std::fill(mean, mean + C, 0.0);
  std::fill(variance, variance + C, 0.0);  // the merged M2 until the end
  double n_a = 0;
  for (int64_t i = 0; i < ch.count; ++i) {
    const double n_b = double(ch.size(i, M)), n = n_a + n_b;
    const double w_mean = n_b / n, w_m2 = n_a * n_b / n;
    const T *ki = k + i * ch.P, *di = d + i * ch.P, *m2i = m2 + i * ch.P;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const double delta = double(ki[c]) + double(di[c]) - mean[c];
      mean[c] += delta * w_mean;
      variance[c] += double(m2i[c]) + delta * delta * w_m2;
    }
    n_a = n;
  }
  if (M == 0) {
    std::fill(mean, mean + C, std::nan(""));
    std::fill(variance, variance + C, std::nan(""));
    return;
  }
  for (int64_t c = 0; c < C; ++c) variance[c] /= double(M);
}

// totals[c] = parts[i * stride + c] added over the chunks i in chunk order, in double;
// blocks of channels on several threads when there are many (layer norm's C of 4096 over
// 256 chunks).
template <typename T>
void chunk_totals(double* totals, const T* parts, int64_t stride, const Chunks& ch, int64_t C) {
  constexpr int64_t kBlock = 512;
  const int threads = C * ch.count >= kParallelMin ? get_num_threads() : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t c1 = std::min(C, c0 + kBlock);
    std::fill(totals + c0, totals + c1, 0.0);
    for (int64_t i = 0; i < ch.count; ++i) {
      const T* pi = parts + i * stride;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) totals[c] += double(pi[c]);
    }
  }
}

// Layer norm streams its rows one at a time: a row shorter than this would leave most of
// it, and the line it shares with the next row, to plain copies.
constexpr int64_t kStreamRowMin = 1024;

// `arrays`: how many arrays of x's size the pass reads and writes.
template <typename T>
bool stream_rows(const NormShape& s, int arrays) {
  return s.C * int64_t(sizeof(T)) >= kStreamRowMin &&
         simd::stream_pays(size_t(arrays) * size_t(s.M * s.C) * sizeof(T));
}

// One chunk's sums of dy and of dy * (x - mean), folded into [0, C); kRowGroup wide rows
// per update of the sums, as chunk_moments.
template <typename T>
void chunk_grad_sums(T* sum_dy, T* sum_dyx, const T* dy, const T* x, const T* mean_w, int64_t len,
                     const Chunks& ch, int64_t C) {
  const int64_t P = ch.P;
  std::fill(sum_dy, sum_dy + P, T(0));
  std::fill(sum_dyx, sum_dyx + P, T(0));
  int64_t off = 0;
  for (; off + kRowGroup * P <= len; off += kRowGroup * P) {
    const T *y0 = dy + off, *y1 = y0 + P, *y2 = y1 + P, *y3 = y2 + P;
    const T *x0 = x + off, *x1 = x0 + P, *x2 = x1 + P, *x3 = x2 + P;
#pragma omp simd
    for (int64_t j = 0; j < P; ++j) {
      const T m = mean_w[j];
      sum_dy[j] += (y0[j] + y1[j]) + (y2[j] + y3[j]);
      sum_dyx[j] +=
          (y0[j] * (x0[j] - m) + y1[j] * (x1[j] - m)) + (y2[j] * (x2[j] - m) + y3[j] * (x3[j] - m));
    }
  }
  for (; off < len; off += P) {
    const T *dyw = dy + off, *xw = x + off;
    const int64_t width = std::min(P, len - off);
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) {
      sum_dy[j] += dyw[j];
      sum_dyx[j] += dyw[j] * (xw[j] - mean_w[j]);
    }
  }
  fold_groups(sum_dy, ch.group, C);
  fold_groups(sum_dyx, ch.group, C);
}

// dx[i - begin] = a dy + b + c (x - mean) at i in [begin, end), elements of wide rows
// (b = c = null: dx = a dy).
template <typename T>
void dx_range(T* dx, const T* dy, const T* x, const T* a, const T* b, const T* c, const T* mean_w,
              int64_t begin, int64_t end, int64_t P) {
  for (int64_t i = begin, j0 = begin % P; i < end; j0 = 0) {
    const int64_t width = std::min(P - j0, end - i);
    const T *dyw = dy + i, *xw = x + i, *aw = a + j0;
    T* dxw = dx + (i - begin);
    i += width;
    if (!b) {
#pragma omp simd
      for (int64_t j = 0; j < width; ++j) dxw[j] = aw[j] * dyw[j];
      continue;
    }
    const T *bw = b + j0, *cw = c + j0, *mw = mean_w + j0;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) dxw[j] = aw[j] * dyw[j] + bw[j] + cw[j] * (xw[j] - mw[j]);
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
  double* mus = call_totals(2 * C);
  double* vars = mus + C;
  merged_moments(mus, vars, shifts, offsets, m2s, ch, M, C);
  for (int64_t c = 0; c < C; ++c) {
    const double mu = mus[c], var = vars[c];
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
      if (dx_now) dx_range<T>(dx + off, dy, x, a, nullptr, nullptr, mean_w, off, off + len, P);
    }
  }
  if (!sums) return;
  // dx = g is (dy - mean(dy) - xhat mean(dy xhat)) with xhat = (x - mean) is, from the
  // chunks' sums added in chunk order
  double* totals_dy = call_totals(2 * C);
  double* totals_dyx = totals_dy + C;
  chunk_totals(totals_dy, sum_dy, P, ch, C);
  chunk_totals(totals_dyx, sum_dyx, P, ch, C);
  for (int64_t c = 0; c < C; ++c) {
    const double s_dy = totals_dy[c], s_dyx = totals_dyx[c];
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
  const bool stream = simd::stream_pays(3 * size_t(M * C) * sizeof(T));  // dy, x, dx
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    const int64_t off = ch.first(i) * C, end = off + ch.size(i, M) * C;
    simd::write_streamed(dx, off, end, stream, [&](T* out, int64_t b_, int64_t e) {
      dx_range(out, dy, x, a, b, c_, mean_w, b_, e, P);
    });
    if (stream) simd::stream_fence();
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
  const bool stream = stream_rows<T>(s, 2);  // x, y
  const Chunks ch(s, false);
#pragma omp parallel for num_threads(threads_for(s)) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    for (int64_t r = ch.first(i); r < ch.first(i) + ch.size(i, M); ++r) {
      const T* xr = x + r * C;
      // two passes over a row in L1: the mean, then the squared deviations from it
      const T mu = row_sum(xr, C) / T(C);
      const T sq = row_squared_deviations(xr, mu, C);
      const T is = T(1) / std::sqrt(sq / T(C) + eps);
      mean[r] = mu, inv_std[r] = is;
      simd::write_streamed(y + r * C, 0, C, stream, [&](T* out, int64_t b, int64_t e) {
#pragma omp simd
        for (int64_t c = b; c < e; ++c) out[c - b] = (xr[c] - mu) * is * g[c] + bt[c];
      });
    }
    if (stream) simd::stream_fence();
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
  const bool stream = dx && stream_rows<T>(s, 3);  // dy, x, dx
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
      if (!dx) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          pg[c] += dyr[c] * ((xr[c] - mu) * is);
          pb[c] += dyr[c];
        }
        continue;
      }
      simd::write_streamed(dx + r * C, 0, C, stream, [&](T* out, int64_t b, int64_t e) {
        if (params) {
#pragma omp simd
          for (int64_t c = b; c < e; ++c) {
            const T xhat = (xr[c] - mu) * is;
            out[c - b] = is * (g[c] * dyr[c] - mean_g - xhat * mean_gx);
            pg[c] += dyr[c] * xhat;
            pb[c] += dyr[c];
          }
        } else {
#pragma omp simd
          for (int64_t c = b; c < e; ++c) {
            out[c - b] = is * (g[c] * dyr[c] - mean_g - (xr[c] - mu) * is * mean_gx);
          }
        }
      });
    }
    if (stream) simd::stream_fence();
  }
  if (!params) return;
  double* totals_dg = call_totals(2 * C);
  double* totals_db = totals_dg + C;
  if (dgamma) chunk_totals(totals_dg, part_dg, C, ch, C);
  if (dbeta) chunk_totals(totals_db, part_db, C, ch, C);
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma) dgamma[c] += T(totals_dg[c]);
    if (dbeta) dbeta[c] += T(totals_db[c]);
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
