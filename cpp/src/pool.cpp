#include "dlcore/pool.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/simd.hpp"
#include "common/workspace.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {

namespace {

// An x_shape a backward allocates dx from: sizes >= 0 (`expected` says how many, and
// which), and bytes (float64 at most) that are addressable, or NumPy refuses the
// allocation with a message that names no argument.
void check_x_shape(const char* fn, const std::vector<int64_t>& xs, const char* expected) {
  if (*std::min_element(xs.begin(), xs.end()) < 0) {
    fail(fn, ": argument 'x_shape' is ", shape_str(xs), "; expected ", expected);
  }
  if (checked_numel(xs, fn) > PTRDIFF_MAX / int64_t(sizeof(double))) {
    fail(fn, ": argument 'x_shape' is ", shape_str(xs), ", ", checked_numel(xs, fn),
         " elements; expected at most ", PTRDIFF_MAX / int64_t(sizeof(double)),
         " (the gradient's bytes must fit in memory)");
  }
}

constexpr const char* kFourSizes = "4 sizes >= 0 (N, H, W, C)";

// x_shape itself, once checked as above.
using Shape4 = int64_t[4];
const Shape4& checked_x_shape(const char* fn, const Shape4& x) {
  check_x_shape(fn, std::vector<int64_t>(x, x + 4), kFourSizes);
  return x;
}

}  // namespace

Pool2dShape::Pool2dShape(const char* fn, const int64_t (&x)[4], const Pool2dParams& params)
    : N(x[0]), H(x[1]), W(x[2]), C(x[3]), p(params) {
  check_at_least_one(fn, "pool_size", p.pool_h, p.pool_w);
  if (!p.undilated()) {
    fail(fn, ": dilation must be (1, 1) for pooling, got (", p.dilation_h, ", ", p.dilation_w, ")");
  }
  p.check(fn);
  // Padding smaller than the window on every side keeps an input cell in every window,
  // so padding never has to stand for a maximum.
  if (std::max({p.pad_top, p.pad_bottom}) >= p.pool_h ||
      std::max({p.pad_left, p.pad_right}) >= p.pool_w) {
    fail(fn, ": padding ((", p.pad_top, ", ", p.pad_bottom, "), (", p.pad_left, ", ", p.pad_right,
         ")) must be smaller than pool_size (", p.pool_h, ", ", p.pool_w, ") on every side");
  }
  OH = p.out_h(fn, H, p.pool_h);
  OW = p.out_w(fn, W, p.pool_w);
  checked_numel({N, OH, OW, C}, fn);
}

Pool2dShape::Pool2dShape(const char* fn, const int64_t (&x)[4], const int64_t (&dy)[4])
    : N(x[0]), H(x[1]), W(x[2]), C(x[3]), OH(dy[1]), OW(dy[2]), p() {
  const std::vector<int64_t> xs(x, x + 4), dys(dy, dy + 4);
  check_x_shape(fn, xs, kFourSizes);
  if (dy[0] != N || dy[3] != C) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dys), " but x_shape is ", shape_str(xs),
         "; expected dy (", N, ", OH, OW, ", C, ")");
  }
}

Pool2dShape::Pool2dShape(const char* fn, const int64_t (&x)[4], const Pool2dParams& params,
                         const int64_t (&dy)[4])
    : Pool2dShape(fn, checked_x_shape(fn, x), params) {
  const std::vector<int64_t> dys(dy, dy + 4);
  if (dys != std::vector<int64_t>{N, OH, OW, C}) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dys), " but x_shape ", shape_str({N, H, W, C}),
         " pooled with this window gives y of shape ", shape_str({N, OH, OW, C}),
         "; expected dy of that shape");
  }
}

GlobalPoolShape::GlobalPoolShape(const char* fn, const std::vector<int64_t>& xs) {
  if (xs.size() < 3) {
    fail(fn, ": argument 'x_shape' is ", shape_str(xs), "; expected at least 3 sizes (N, ..., C)");
  }
  check_x_shape(fn, xs, "sizes >= 0 (N, ..., C)");
  N = xs.front(), C = xs.back();
  L = checked_numel(std::vector<int64_t>(xs.begin() + 1, xs.end() - 1), fn);
}

namespace {

// One window for the channels c .. c+L-1 (y and argmax offset to channel c), a packet
// of them. The position of the max is kept as an offset from the window's first cell
// in integer lanes as wide as T (simd::IntLanes), so the compare's mask selects it
// directly (an int64 select for float lanes spilled to the stack: 2.4x slower).
// Strictly greater replaces, so ties keep the first cell in (kh, kw) order; the first
// NaN wins and stays.
template <typename T>
struct WindowMax {
  using P = simd::Packet<T>;
  static constexpr int L = simd::kLanes<T>;

  // Offsets inside a window (clipped to the image, so this cannot overflow) fit a lane.
  static bool offsets_fit(const Pool2dShape& s) {
    const int64_t rows = std::min(s.p.pool_h, s.H), cols = std::min(s.p.pool_w, s.W);
    return sizeof(T) == 8 || (rows * s.W + cols) * s.C < (int64_t(1) << 31);
  }

  // The lanes where v replaces best: v > best, or v is the first NaN (v != v while
  // best == best).
  static auto takes(const P& best, const P& v) {
    return simd::mask_or(simd::lt(best, v), simd::mask_and(simd::ne(v, v), simd::eq(best, best)));
  }

  static void run(T* y, int64_t* argmax, const T* x, int64_t c, int64_t h_begin, int64_t h_end,
                  int64_t w_begin, int64_t w_end, int64_t row0, int64_t W, int64_t C) {
    const int64_t first = ((row0 + h_begin) * W + w_begin) * C + c;
    P best = simd::load(x + first);
    simd::IntLanes<T> at = simd::int_lanes<T>(0);
    for (int64_t ih = h_begin; ih < h_end; ++ih) {
      for (int64_t iw = (ih == h_begin ? w_begin + 1 : w_begin); iw < w_end; ++iw) {
        const int64_t cell = ((row0 + ih) * W + iw) * C + c;
        const P v = simd::load(x + cell);
        const auto take = takes(best, v);
        best = simd::select(take, v, best);
        at =
            simd::select(take, simd::int_lanes<T>(static_cast<simd::IntLane<T>>(cell - first)), at);
      }
    }
    simd::store(y, best);
    simd::store_offsets<T>(argmax, at, first);
  }

  // A whole 2x2 window (the common MaxPooling2D): the same scan as run() over its four
  // cells, first + {0, C, W*C, W*C + C}, in straight-line code for every packet of
  // channels of an output cell (the general loop's bounds and index arithmetic cost
  // more than the compares here). argmax null: the max alone.
  static void run_2x2(T* y, int64_t* argmax, const T* x, int64_t first, int64_t W, int64_t C) {
    const int64_t off[4] = {0, C, W * C, W * C + C};
    int64_t c = 0;
    for (; c + L <= C; c += L) {
      const T* cell = x + first + c;
      P best = simd::load(cell);
      if (!argmax) {
        for (int k = 1; k < 4; ++k) {
          const P v = simd::load(cell + off[k]);
          best = simd::select(takes(best, v), v, best);
        }
        simd::store(y + c, best);
        continue;
      }
      simd::IntLanes<T> at = simd::int_lanes<T>(0);
      for (int k = 1; k < 4; ++k) {
        const P v = simd::load(cell + off[k]);
        const auto take = takes(best, v);
        best = simd::select(take, v, best);
        at = simd::select(take, simd::int_lanes<T>(static_cast<simd::IntLane<T>>(off[k])), at);
      }
      simd::store(y + c, best);
      simd::store_offsets<T>(argmax + c, at, first + c);
    }
    for (; c < C; ++c) {  // the channels after the last packet
      int64_t at = first + c;
      T best = x[at];
      for (int k = 1; k < 4; ++k) {
        const T v = x[first + c + off[k]];
        if (v > best || (v != v && best == best)) best = v, at = first + c + off[k];
      }
      y[c] = best;
      if (argmax) argmax[c] = at;
    }
  }

  // The max alone, for inference: no position to keep, so one max per cell.
  static void run_values(T* y, const T* x, int64_t c, int64_t h_begin, int64_t h_end,
                         int64_t w_begin, int64_t w_end, int64_t row0, int64_t W, int64_t C) {
    const int64_t first = ((row0 + h_begin) * W + w_begin) * C + c;
    P best = simd::load(x + first);
    for (int64_t ih = h_begin; ih < h_end; ++ih) {
      for (int64_t iw = (ih == h_begin ? w_begin + 1 : w_begin); iw < w_end; ++iw) {
        const P v = simd::load(x + ((row0 + ih) * W + iw) * C + c);
        best = simd::select(takes(best, v), v, best);
      }
    }
    simd::store(y, best);
  }
};

// The same for one channel, for the channels left over after the vectors.
template <typename T>
void window_max_scalar(T* y, int64_t* argmax, const T* x, int64_t c, int64_t h_begin, int64_t h_end,
                       int64_t w_begin, int64_t w_end, int64_t row0, int64_t W, int64_t C) {
  int64_t at = ((row0 + h_begin) * W + w_begin) * C + c;
  T best = x[at];
  for (int64_t ih = h_begin; ih < h_end; ++ih) {
    for (int64_t iw = (ih == h_begin ? w_begin + 1 : w_begin); iw < w_end; ++iw) {
      const int64_t cell = ((row0 + ih) * W + iw) * C + c;
      const T v = x[cell];
      if (v > best || (v != v && best == best)) best = v, at = cell;
    }
  }
  *y = best;
  if (argmax) *argmax = at;
}

}  // namespace

template <typename T>
void maxpool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dShape& s) {
  constexpr int L = WindowMax<T>::L;
  const int64_t C = s.C;
  const bool vectors = WindowMax<T>::offsets_fit(s);
#pragma omp parallel for collapse(2) num_threads(get_num_threads()) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const int64_t h0 = oh * s.p.stride_h - s.p.pad_top;
      const int64_t h_begin = std::max<int64_t>(h0, 0), h_end = std::min(h0 + s.p.pool_h, s.H);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const int64_t w0 = ow * s.p.stride_w - s.p.pad_left;
        const int64_t w_begin = std::max<int64_t>(w0, 0), w_end = std::min(w0 + s.p.pool_w, s.W);
        const int64_t out = ((n * s.OH + oh) * s.OW + ow) * C;
        if (vectors && h_end - h_begin == 2 && w_end - w_begin == 2) {
          WindowMax<T>::run_2x2(y + out, argmax ? argmax + out : nullptr, x,
                                ((n * s.H + h_begin) * s.W + w_begin) * C, s.W, C);
          continue;
        }
        int64_t c = 0;
        if (!argmax) {
          for (; c + L <= C; c += L) {
            WindowMax<T>::run_values(y + out + c, x, c, h_begin, h_end, w_begin, w_end, n * s.H,
                                     s.W, C);
          }
        }
        for (; argmax && vectors && c + L <= C; c += L) {
          WindowMax<T>::run(y + out + c, argmax + out + c, x, c, h_begin, h_end, w_begin, w_end,
                            n * s.H, s.W, C);
        }
        for (; c < C; ++c) {
          window_max_scalar(y + out + c, argmax ? argmax + out + c : nullptr, x, c, h_begin, h_end,
                            w_begin, w_end, n * s.H, s.W, C);
        }
      }
    }
  }
}

template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s) {
  const int64_t per_x = s.H * s.W * s.C, per_y = s.OH * s.OW * s.C;
  int64_t first_bad = std::numeric_limits<int64_t>::max();
  // One sample per iteration: a valid argmax stays inside its sample's part of dx.
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) reduction(min : first_bad)
  for (int64_t n = 0; n < s.N; ++n) {
    T* dxn = dx + n * per_x;
    std::fill_n(dxn, per_x, T(0));  // while the sample's part of dx is in cache
    const int64_t lo = n * per_x;
    for (int64_t i = n * per_y; i < (n + 1) * per_y; ++i) {
      const uint64_t at = static_cast<uint64_t>(argmax[i]) - static_cast<uint64_t>(lo);
      if (at >= static_cast<uint64_t>(per_x)) {  // also catches argmax < lo
        first_bad = std::min(first_bad, i);
        continue;
      }
      dxn[at] += dy[i];
    }
  }
  if (first_bad != std::numeric_limits<int64_t>::max()) {
    const int64_t n = first_bad / std::max<int64_t>(per_y, 1);
    fail("maxpool2d_backward: argmax holds ", argmax[first_bad], " at flat position ", first_bad,
         " (sample ", n, "); expected an index into that sample of x_shape ",
         shape_str({s.N, s.H, s.W, s.C}), ", in [", n * per_x, ", ", (n + 1) * per_x, ")");
  }
}

// ------------------------------------------------------------------ average pool

namespace {

// The cells [begin, end) of x along one axis that output position o's window covers.
struct Span {
  int64_t begin, end;
};
Span window_span(int64_t o, int64_t stride, int64_t pad, int64_t size, int64_t in) {
  const int64_t first = o * stride - pad;
  return {std::max<int64_t>(first, 0), std::min(first + size, in)};
}

// 1 / the number of x's cells in each window, (OH, OW): every window holds one or more.
template <typename T>
std::vector<T> inverse_counts(const Pool2dShape& s) {
  std::vector<T> inv(static_cast<size_t>(s.OH * s.OW));
  for (int64_t oh = 0; oh < s.OH; ++oh) {
    const Span h = window_span(oh, s.p.stride_h, s.p.pad_top, s.p.pool_h, s.H);
    for (int64_t ow = 0; ow < s.OW; ++ow) {
      const Span w = window_span(ow, s.p.stride_w, s.p.pad_left, s.p.pool_w, s.W);
      inv[oh * s.OW + ow] = T(1) / static_cast<T>((h.end - h.begin) * (w.end - w.begin));
    }
  }
  return inv;
}

// out[0, C) = the sum over a rectangle of rows of C values, tap (i, j) at base + i * rs +
// j * C for i < hn, j < wn, each times its weight: `scale` alone, or with Weighted the
// weight table's entry wt[i * ws + j] (and scale 1). The sums stay in registers, four
// packets of channels at a time, and out is written once; an empty rectangle writes
// zeros. Every channel sums its taps in the same order, so the bits do not depend on C's
// blocking.
template <bool Weighted, typename T>
void window_sum(T* __restrict out, const T* base, int64_t rs, int64_t hn, int64_t wn, int64_t C,
                T scale, const T* wt = nullptr, int64_t ws = 0) {
  using namespace simd;
  using P = Packet<T>;
  constexpr int64_t L = kLanes<T>;
  const P sc = broadcast(scale);
  auto tap_weight = [&](int64_t i, int64_t j) { return broadcast(wt[i * ws + j]); };
  int64_t c = 0;
  for (; c + 4 * L <= C; c += 4 * L) {
    P a0 = zero<T>(), a1 = zero<T>(), a2 = zero<T>(), a3 = zero<T>();
    for (int64_t i = 0; i < hn; ++i) {
      for (int64_t j = 0; j < wn; ++j) {
        const T* r = base + i * rs + j * C + c;
        if constexpr (Weighted) {
          const P w = tap_weight(i, j);
          a0 = madd(load(r), w, a0), a1 = madd(load(r + L), w, a1);
          a2 = madd(load(r + 2 * L), w, a2), a3 = madd(load(r + 3 * L), w, a3);
        } else {
          a0 = ei::padd(a0, load(r)), a1 = ei::padd(a1, load(r + L));
          a2 = ei::padd(a2, load(r + 2 * L)), a3 = ei::padd(a3, load(r + 3 * L));
        }
      }
    }
    store(out + c, ei::pmul(a0, sc)), store(out + c + L, ei::pmul(a1, sc));
    store(out + c + 2 * L, ei::pmul(a2, sc)), store(out + c + 3 * L, ei::pmul(a3, sc));
  }
  for (; c < C; c += L) {
    const int64_t n = C - c;  // load_first / store_first take a whole packet when n >= L
    P a = zero<T>();
    for (int64_t i = 0; i < hn; ++i) {
      for (int64_t j = 0; j < wn; ++j) {
        const P v = load_first(base + i * rs + j * C + c, n);
        if constexpr (Weighted) {
          a = madd(v, tap_weight(i, j), a);
        } else {
          a = ei::padd(a, v);
        }
      }
    }
    store_first(out + c, ei::pmul(a, sc), n);
  }
}

}  // namespace

template <typename T>
void avgpool2d_forward(T* y, const T* x, const Pool2dShape& s) {
  const int64_t C = s.C;
  // Nothing to write; the (OH, OW) table is sized by the window grid, not the batch.
  if (s.N == 0 || C == 0) return;
  const std::vector<T> inv = inverse_counts<T>(s);
#pragma omp parallel for collapse(2) num_threads(get_num_threads()) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const Span h = window_span(oh, s.p.stride_h, s.p.pad_top, s.p.pool_h, s.H);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const Span w = window_span(ow, s.p.stride_w, s.p.pad_left, s.p.pool_w, s.W);
        window_sum<false>(y + ((n * s.OH + oh) * s.OW + ow) * C,
                          x + ((n * s.H + h.begin) * s.W + w.begin) * C, s.W * C, h.end - h.begin,
                          w.end - w.begin, C, inv[oh * s.OW + ow]);
      }
    }
  }
}

namespace {

// The outputs [begin, end) whose windows cover input cell i along one axis: o * stride -
// pad <= i < o * stride - pad + size, within [0, out).
Span covering_windows(int64_t i, int64_t stride, int64_t pad, int64_t size, int64_t out) {
  const int64_t hi = i + pad;  // o * stride <= hi and o * stride > hi - size
  const int64_t first = hi - size < 0 ? 0 : (hi - size) / stride + 1;
  return {std::min(first, out), std::clamp<int64_t>(hi / stride + 1, std::min(first, out), out)};
}

}  // namespace

template <typename T>
void avgpool2d_backward(T* dx, const T* dy, const Pool2dShape& s) {
  const int64_t C = s.C;
  // Nothing to write; the (OH, OW) table is sized by the window grid, not the batch.
  if (s.N == 0 || C == 0) return;
  const std::vector<T> inv = inverse_counts<T>(s);
  // Each cell of dx gathers from the windows that cover it (none: a zero): threads
  // write disjoint rows, and every sum runs in the same order whatever the thread count.
#pragma omp parallel for collapse(2) num_threads(get_num_threads()) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t ih = 0; ih < s.H; ++ih) {
      const Span oh = covering_windows(ih, s.p.stride_h, s.p.pad_top, s.p.pool_h, s.OH);
      for (int64_t iw = 0; iw < s.W; ++iw) {
        const Span ow = covering_windows(iw, s.p.stride_w, s.p.pad_left, s.p.pool_w, s.OW);
        window_sum<true>(dx + ((n * s.H + ih) * s.W + iw) * C,
                         dy + ((n * s.OH + oh.begin) * s.OW + ow.begin) * C, s.OW * C,
                         oh.end - oh.begin, ow.end - ow.begin, C, T(1),
                         inv.data() + oh.begin * s.OW + ow.begin, s.OW);
      }
    }
  }
}

// ------------------------------------------------------------------ global average pool

namespace {

// acc[0, C) += row[0, C); a plain loop the compiler vectorises.
template <typename T>
void add_row(T* __restrict acc, const T* __restrict row, int64_t C) {
  for (int64_t c = 0; c < C; ++c) acc[c] += row[c];
}

int64_t kept_positions(const bool* mask, int64_t L) {
  return mask ? std::count(mask, mask + L, true) : L;
}

}  // namespace

template <typename T>
void global_avgpool_forward(T* y, const T* x, const bool* mask, const GlobalPoolShape& s) {
  const int64_t L = s.L, C = s.C;
#pragma omp parallel for num_threads(get_num_threads()) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    T* out = y + n * C;
    const bool* keep = mask ? mask + n * L : nullptr;
    std::fill_n(out, C, T(0));
    for (int64_t l = 0; l < L; ++l) {
      if (!keep || keep[l]) add_row(out, x + (n * L + l) * C, C);
    }
    // A division, as Keras' sum / count: a sample with no position kept gives 0 / 0.
    const T count = static_cast<T>(kept_positions(keep, L));
    for (int64_t c = 0; c < C; ++c) out[c] /= count;
  }
}

template <typename T>
void global_avgpool_backward(T* dx, const T* dy, const bool* mask, const GlobalPoolShape& s) {
  const int64_t L = s.L, C = s.C;
  const int threads = get_num_threads();
  T* const* rows = thread_workspace<T>(C, threads);  // dy / count of the sample at hand
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    const bool* keep = mask ? mask + n * L : nullptr;
    const T count = static_cast<T>(kept_positions(keep, L));
    T* share = rows[thread_index()];
    for (int64_t c = 0; c < C; ++c) share[c] = dy[n * C + c] / count;
    for (int64_t l = 0; l < L; ++l) {
      T* row = dx + (n * L + l) * C;
      if (!keep || keep[l]) {
        std::copy_n(share, C, row);
      } else {
        std::fill_n(row, C, T(0));
      }
    }
  }
}

#define DLCORE_INSTANTIATE_POOL(T)                                                            \
  template void maxpool2d_forward<T>(T*, int64_t*, const T*, const Pool2dShape&);             \
  template void maxpool2d_backward<T>(T*, const T*, const int64_t*, const Pool2dShape&);      \
  template void avgpool2d_forward<T>(T*, const T*, const Pool2dShape&);                       \
  template void avgpool2d_backward<T>(T*, const T*, const Pool2dShape&);                      \
  template void global_avgpool_forward<T>(T*, const T*, const bool*, const GlobalPoolShape&); \
  template void global_avgpool_backward<T>(T*, const T*, const bool*, const GlobalPoolShape&);
DLCORE_INSTANTIATE_POOL(float)
DLCORE_INSTANTIATE_POOL(double)
#undef DLCORE_INSTANTIATE_POOL

}  // namespace dlcore
