#include "dlcore/conv2d.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/packed_panels.hpp"
#include "common/simd.hpp"
#include "common/workspace.hpp"
#include "conv2d_winograd.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/gemm.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {

Conv2dShape::Conv2dShape(const char* fn, const int64_t (&x)[4], const int64_t (&k)[4],
                         const Conv2dParams& params)
    : N(x[0]), H(x[1]), W(x[2]), C(x[3]), KH(k[0]), KW(k[1]), OC(k[3]), p(params) {
  const std::vector<int64_t> xs(x, x + 4), ks(k, k + 4);
  if (k[2] != C) {
    fail(fn, ": kernel has shape ", shape_str(ks), " with ", k[2], " input channels but x ",
         "has shape ", shape_str(xs), " with ", C, "; expected kernel (KH, KW, ", C, ", OC)");
  }
  if (KH < 1 || KW < 1) {
    fail(fn, ": kernel has shape ", shape_str(ks), "; expected KH >= 1 and KW >= 1");
  }
  p.check(fn);
  OH = p.out_h(fn, H, KH);
  OW = p.out_w(fn, W, KW);
  checked_numel({N, OH, OW, OC}, fn);
  checked_numel({KH, KW, C, OC}, fn);
  checked_numel({N, OH, OW, KH, KW, C}, fn);  // im2col indices of every pixel
}

bool Conv2dShape::is_winograd() const {
  return KH == 3 && KW == 3 && p.unit_stride() && p.undilated();
}

bool Conv2dShape::is_pointwise() const {
  return KH == 1 && KW == 1 && p.unit_stride() && p.unpadded();
}

// K = KH*KW*C up to which the direct kernels run instead of im2col + GEMM. Measured at
// K = 9 (64x28x28x1->32, 2 threads: forward 0.53 -> 0.31 ms, dkernel+dbias 0.59 -> 0.38);
// an RGB 3x3 layer (K = 27) is as shallow a product, so the limit sits just above it.
constexpr int64_t kDirectMaxK = 32;

// Winograd F(2x2, 3x3) against im2col + GEMM, 2 threads, float32, 32x28x28xC->OC with
// padding 1, as the im2col time over the Winograd time, forward / dx / dkernel:
//   C = 4:  OC = 8 0.95 / 1.09 / 1.34, OC = 16 0.75 / 0.93 / 1.27, OC = 64 0.64 / 0.68 / 0.88
//   C = 8:  OC = 8 1.32 / 1.28 / 1.38, OC = 64 0.94 / 0.89 / 1.07, OC = 128 0.92 / 1.01 / 0.95
//   C = 12: OC = 12 1.02 / 0.92 / 1.26, OC = 64 1.06 / 0.97 / 1.15
//   C = 16: OC = 1 1.20 / 1.48 / 1.31, OC = 16 1.45 / 1.47 / 1.34, OC = 128 1.21 / 1.31 / 1.21
//   C = 32: OC = 1 1.31 / 1.02 / 1.33, OC = 8 1.77 / 1.66 / 1.34, OC = 64 1.56 / 1.51 / -
// Measured when Eigen's GEMM ran the products (it stored its accumulators every C steps,
// too shallow below 16); they now run on packed panels (conv2d_winograd.cpp), whose tiles
// also start and store their accumulators once per C steps. dx's products have width C
// where im2col's have 9C.
constexpr int64_t kWinogradMinC = 16;

// Winograd computes an out_h x out_w grid in 2x2 tiles, 16 products a tile, where the
// im2col path multiplies 9 times per pixel of y. It runs where im2col multiplies at least
// min_ratio times as much: 1 for y and dx, 1.5 for dkernel, whose reduction over the
// threads' partials is a fixed cost. Measured (2 threads, im2col time / Winograd time):
//   y 1x1, one tile for 1 pixel (ratio 0.56): forward 0.47
//   dx of an unpadded conv on a small x, whose grid is larger than y (0.14 to 0.56): 0.27
//     to 0.79
//   y 3x3 or 1xW (1.13 to 1.27): forward 1.02 to 1.26, dkernel 0.77 to 1.08
//   y 5x5 or 7x7 (1.56 to 1.72): forward 1.35 to 1.62, dkernel 1.11 to 1.44
//   y 4x4 to 14x14 (2.25): forward 1.77 to 1.85, dkernel 1.38 to 1.53
bool winograd_pays(const Conv2dShape& s, int64_t out_h, int64_t out_w, double min_ratio) {
  // ceil(n / 2) written so that it cannot overflow: conv2d_plan takes shapes whose
  // dimensions reach INT64_MAX when the batch is empty.
  const double tiles =
      static_cast<double>(out_h / 2 + out_h % 2) * static_cast<double>(out_w / 2 + out_w % 2);
  const double pixels = static_cast<double>(s.OH) * static_cast<double>(s.OW);
  return s.is_winograd() && s.C >= kWinogradMinC && 9 * pixels >= min_ratio * 16 * tiles;
}

// Outputs per row from which the row views' one GEMM per row beats pixel tiles of
// several rows (a Conv1D's rows are whole sequences; a 1x7 layer's 17 outputs are not).
constexpr int64_t kRowViewsMinOW = 32;

// A 1-high, undilated window that pads no row: output row (n, oh)'s windows lie along
// input row oh*stride_h, each stride_w*C after the last (dx also needs stride_w = 1).
bool row_views_fit(const Conv2dShape& s, Conv2dPass pass) {
  return s.KH == 1 && s.p.dilation_w == 1 && s.p.pad_top == 0 && s.p.pad_bottom == 0 &&
         s.OW >= kRowViewsMinOW && (pass != Conv2dPass::input_grad || s.p.stride_w == 1);
}

Conv2dPlan conv2d_plan(const Conv2dShape& s, Conv2dPass pass) {
  if (s.is_pointwise()) return Conv2dPlan::pointwise;
  if (pass != Conv2dPass::input_grad && s.K() <= kDirectMaxK) return Conv2dPlan::direct;
  if (row_views_fit(s, pass)) return Conv2dPlan::row_views;
  switch (pass) {
    case Conv2dPass::forward:
      return winograd_pays(s, s.OH, s.OW, 1) ? Conv2dPlan::winograd : Conv2dPlan::pixel_tiles;
    case Conv2dPass::input_grad:
      return winograd_pays(s, s.H, s.W, 1) ? Conv2dPlan::winograd : Conv2dPlan::pixel_tiles;
    case Conv2dPass::weight_grads:
      return winograd_pays(s, s.OH, s.OW, 1.5) ? Conv2dPlan::winograd : Conv2dPlan::pixel_tiles;
  }
  return Conv2dPlan::pixel_tiles;
}

namespace {

constexpr int64_t kDirectTileRows = 256;  // a y or dy tile of 256 x 32 floats: 32 KB (128: slower)

// out[i] += sum over threads t, in order, of partials[t][offset + i].
template <typename T>
void reduce_partials(T* out, T* const* partials, int64_t offset, int64_t count, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    T sum = partials[0][offset + i];
    for (int t = 1; t < threads; ++t) sum += partials[t][offset + i];
    out[i] += sum;
  }
}

// Rows of an im2col tile: about 96 KB, so that it stays in L2 with the packed kernel
// and the output rows, but at least 192 rows, below which Eigen's products lose more
// than the cache saves (measured, 2 threads, 128-channel layer: 16 rows 127 GFLOP/s,
// 128 rows 157, 192 rows 159; the dx products gain the same way).
int64_t tile_rows(const Conv2dShape& s, size_t elem) {
  if (conv2d_plan(s) == Conv2dPlan::direct) return kDirectTileRows;
  const int64_t row_bytes = std::max<int64_t>(s.K(), 1) * static_cast<int64_t>(elem);
  return std::clamp<int64_t>((96 << 10) / row_bytes, 192, 1024);
}

// Rows of at most `rows` that cut P pixel rows into a count of tiles the threads share
// evenly (a multiple of 8, the direct kernels' pixel blocks). A batch of one 26x26 image
// in 256-row tiles was 3 tiles: 2 on one thread and 1 on the other.
int64_t balanced_rows(int64_t rows, int64_t P, int threads) {
  const int64_t tiles = P / rows + (P % rows != 0);
  if (tiles == 0 || threads <= 1 || tiles % threads == 0) return rows;
  const int64_t even = (tiles / threads + 1) * threads;
  const int64_t per = P / even + (P % even != 0);
  return std::min(rows, std::max<int64_t>(8, (per + 7) / 8 * 8));
}

// The outputs ow in [lo, hi) of a row segment whose input lies inside x.
struct Span {
  int64_t lo, hi;
};

// The walk that im2col, its transpose and col2im share. For each output-row segment of
// the pixel rows p0 .. p0+rows-1 (within a segment only the column bounds change) and
// each kernel tap (kh, kw), calls f(r, tap, ow_begin, ow_end, in, at): r is the
// segment's first row in the tile, tap = kh*KW + kw, `in` the outputs whose input cell
// is inside x (empty when the input row is not), and `at` the offset in x of the input
// cell of output in.lo (channel 0), which is only meaningful when `in` is not empty:
// an offset rather than a pointer until then. The next output's cell is stride_w*C on.
// The outputs ow in [0, OW) whose input column ow*stride_w + iw0 lies in [0, W), for
// kernel column kw: iw0 = kw*dilation_w - pad_left.
Span inside_row(const Conv2dShape& s, int64_t kw) {
  const int64_t iw0 = kw * s.p.dilation_w - s.p.pad_left, sw = s.p.stride_w;
  const int64_t first = iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw;
  const int64_t last = s.W - 1 - iw0 >= 0 ? (s.W - 1 - iw0) / sw + 1 : 0;
  return {std::min(first, s.OW), std::clamp(last, std::min(first, s.OW), s.OW)};
}

// The offset in x from one output's input cell to the next one's, stride_w*C, for a
// segment whose inside outputs are `in`: only when it holds two or more, which puts both
// cells inside x, so the product fits however large the stride (a stride of 2**62 over
// two channels would overflow it); 0 otherwise, where no step is taken.
int64_t cell_step(const Conv2dShape& s, Span in) {
  return in.hi - in.lo > 1 ? s.p.stride_w * s.C : 0;
}

template <typename F>
void for_each_tap(const Conv2dShape& s, int64_t p0, int64_t rows, F&& f) {
  // The divisions in inside_row, once per kernel column rather than per segment and
  // tap, were worth 5-8% of the direct kernels (64x28x28x1->32).
  constexpr int64_t kCachedKW = 16;
  Span row_inside[kCachedKW];
  for (int64_t kw = 0; kw < std::min(s.KW, kCachedKW); ++kw) row_inside[kw] = inside_row(s, kw);
  const int64_t sw = s.p.stride_w;
  for (int64_t p = p0, end = p0 + rows; p < end;) {
    const int64_t ow_begin = p % s.OW, ow_end = std::min(s.OW, ow_begin + (end - p));
    const int64_t n = p / (s.OH * s.OW), oh = p / s.OW % s.OH;
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t ih = oh * s.p.stride_h - s.p.pad_top + kh * s.p.dilation_h;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const Span row = kw < kCachedKW ? row_inside[kw] : inside_row(s, kw);
        Span in{std::clamp(row.lo, ow_begin, ow_end), 0};
        in.hi = std::clamp(row.hi, in.lo, ow_end);
        if (ih < 0 || ih >= s.H) in = {ow_end, ow_end};
        const int64_t iw0 = kw * s.p.dilation_w - s.p.pad_left;
        // (in.lo * sw overflows for an empty `in` past a huge stride: 0 then, unused)
        const int64_t at = in.lo < in.hi ? ((n * s.H + ih) * s.W + in.lo * sw + iw0) * s.C : 0;
        f(p - p0, kh * s.KW + kw, ow_begin, ow_end, in, at);
      }
    }
    p += ow_end - ow_begin;
  }
}

// Rows p0 .. p0+rows-1 of the im2col matrix (N*OH*OW, KH*KW*C): row p holds the
// receptive field of output pixel p, channels-last, zeros where it hangs over the edge.
// Taps outside and pixels inside, so the inner loop is a strided copy (a single load and
// store when C = 1).
// With a tap range [tap0, tap1), only those taps' columns: rows of (tap1 - tap0) * C.
template <typename T>
void im2col(T* col, const T* x, const Conv2dShape& s, int64_t p0, int64_t rows, int64_t tap0 = 0,
            int64_t tap1 = -1) {
  if (tap1 < 0) tap1 = s.KH * s.KW;
  const int64_t C = s.C, K = (tap1 - tap0) * C;
  for_each_tap(s, p0, rows,
               [&](int64_t r, int64_t tap, int64_t ow_begin, int64_t ow_end, Span in, int64_t at) {
                 if (tap < tap0 || tap >= tap1) return;
                 const int64_t step = cell_step(s, in);
                 T* dst = col + r * K + (tap - tap0) * C;
                 for (int64_t ow = ow_begin; ow < in.lo; ++ow, dst += K) std::fill_n(dst, C, T(0));
                 if (C == 1) {
                   for (int64_t ow = in.lo, i = at; ow < in.hi; ++ow, dst += K, i += step)
                     *dst = x[i];
                 } else {
                   for (int64_t ow = in.lo, i = at; ow < in.hi; ++ow, dst += K, i += step) {
                     std::memcpy(dst, x + i, C * sizeof(T));
                   }
                 }
                 for (int64_t ow = in.hi; ow < ow_end; ++ow, dst += K) std::fill_n(dst, C, T(0));
               });
}

// The adjoint of im2col for rows p0 .. p0+rows-1: dx[pixel under row p] += dcol[p].
template <typename T>
void col2im(T* dx, const T* dcol, const Conv2dShape& s, int64_t p0, int64_t rows) {
  const int64_t C = s.C, K = s.K();
  for_each_tap(s, p0, rows,
               [&](int64_t r, int64_t tap, int64_t ow_begin, int64_t, Span in, int64_t at) {
                 const int64_t step = cell_step(s, in);
                 const T* src = dcol + (r + in.lo - ow_begin) * K + tap * C;
                 for (int64_t ow = in.lo, i = at; ow < in.hi; ++ow, src += K, i += step) {
                   for (int64_t c = 0; c < C; ++c) dx[i + c] += src[c];
                 }
               });
}

// y rows (rows, OC) = bias, or 0: the GEMMs accumulate on top.
template <typename T>
void fill_bias(T* y, const T* bias, int64_t rows, int64_t OC) {
  for (int64_t r = 0; r < rows; ++r, y += OC) {
    if (bias) {
      std::copy_n(bias, OC, y);
    } else {
      std::fill_n(y, OC, T(0));
    }
  }
}

// dbias (OC) += column sums of dy rows (rows, OC).
template <typename T>
void sum_rows(T* dbias, const T* dy, int64_t rows, int64_t OC) {
  for (int64_t r = 0; r < rows; ++r, dy += OC) {
    for (int64_t c = 0; c < OC; ++c) dbias[c] += dy[c];
  }
}

// y rows (P, OC) = bias, or 0, in parallel.
template <typename T>
void fill_bias_rows(T* y, const T* bias, int64_t P, int64_t OC) {
  constexpr int64_t rows = 1024;
#pragma omp parallel for num_threads(get_num_threads()) schedule(static)
  for (int64_t p0 = 0; p0 < P; p0 += rows) {
    fill_bias(y + p0 * OC, bias, std::min(rows, P - p0), OC);
  }
}

// out (C) += the column sums of rows (R, C): each thread sums a fixed, contiguous range
// of rows (static schedule) into its own partial, added in thread order, so runs are
// bit-identical for a thread count.
template <typename T>
void column_sums(T* out, const T* rows, int64_t R, int64_t C) {
  constexpr int64_t chunk = 256;
  const int threads = get_num_threads();
  T* const* partials = thread_workspace<T>(C, threads);
  for (int t = 0; t < threads; ++t) std::fill_n(partials[t], C, T(0));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t r0 = 0; r0 < R; r0 += chunk) {
    sum_rows(partials[thread_index()], rows + r0 * C, std::min(chunk, R - r0), C);
  }
  reduce_partials(out, partials, 0, C, threads);
}

// ------------------------------------------------------------------ pointwise
// A 1x1 stride-1 unpadded conv is a GEMM over x seen as (N*H*W, C): no im2col, and one
// product big enough for Eigen's own threading.

template <typename T>
void forward_pointwise(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s,
                       bool accumulate) {
  const int64_t P = s.pixels(), OC = s.OC;
  if (!accumulate) fill_bias_rows(y, bias, P, OC);
  gemm_accumulate<T>({y, OC, false}, {x, s.C, false}, {kernel, OC, false}, P, OC, s.C);
}

// ------------------------------------------------------------------ direct (small K)
// A first layer has K = KH*KW*C of 9 to 27: too shallow for a GEMM to pay for packing
// its operands, and its im2col was 30% of the time. Here the tile of x is gathered
// k-major, colT (K, m), where for C = 1 and stride 1 each (kh, kw) row is a straight
// copy of an input row, and the products run on vector accumulators over OC.

// dst[0 .. n) = src[0 .. n) for the gather's short rows (OW elements, ~15k rows a call
// at 64x28x28x1): inline, as GCC would otherwise turn the loop back into a memmove call.
#if defined(__GNUC__) && !defined(__clang__)
#define DLCORE_NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define DLCORE_NO_LIBCALLS
#endif
template <typename T>
DLCORE_NO_LIBCALLS void copy_short(T* __restrict dst, const T* __restrict src, int64_t n) {
  constexpr int L = simd::kLanes<T>;
  int64_t i = 0;
  for (; i + L <= n; i += L) simd::store(dst + i, simd::load(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

// colT (K, m) = the transpose of im2col rows p0 .. p0+m-1.
template <typename T>
DLCORE_NO_LIBCALLS void im2col_transposed(T* colT, const T* x, const Conv2dShape& s, int64_t p0,
                                          int64_t m) {
  const int64_t C = s.C;
  for_each_tap(s, p0, m,
               [&](int64_t r, int64_t tap, int64_t ow_begin, int64_t ow_end, Span in, int64_t at) {
                 const int64_t step = cell_step(s, in);
                 for (int64_t c = 0; c < C; ++c) {
                   T* dst = colT + (tap * C + c) * m + r - ow_begin;  // dst[ow]: output ow's column
                   for (int64_t ow = ow_begin; ow < in.lo; ++ow) dst[ow] = T(0);
                   if (step == 1 && in.lo < in.hi) {
                     copy_short(dst + in.lo, x + at + c, in.hi - in.lo);
                   } else {
                     for (int64_t ow = in.lo, i = at + c; ow < in.hi; ++ow, i += step)
                       dst[ow] = x[i];
                   }
                   for (int64_t ow = in.hi; ow < ow_end; ++ow) dst[ow] = T(0);
                 }
               });
}

// Independent FMA chains the direct kernels keep going at once: FMA latency (4 cycles)
// times its throughput (2 a cycle). With fewer, each step waits on the one before; at
// the avx512 level a 32-channel layer is only V = 2 vectors wide, and two pixels (or
// kernel rows) of those left the first layer slower than at the avx2 level.
constexpr int kChains = 8;

// y (m, OC) columns oc0 .. oc0+V*lanes-1 = bias + colT^T @ kernel (y + colT^T @ kernel
// when accumulating), V vectors per pixel, PB = kChains / V pixels at a time.
template <int V, typename T>
void direct_forward_columns(T* y, const T* colT, const T* kernel, const T* bias, int64_t m,
                            int64_t K, int64_t OC, int64_t oc0, bool accumulate) {
  using Vec = simd::Vec<T>;
  constexpr int L = simd::kLanes<T>, PB = std::max(2, kChains / V);
  Vec b[V];
  for (int i = 0; i < V; ++i) b[i] = bias ? Vec::load(bias + oc0 + i * L) : Vec::zero();
  const auto block = [&](int64_t p, auto pixels) {
    constexpr int n = decltype(pixels)::value;
    Vec a[n][V];
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < V; ++i)
        a[j][i] = accumulate ? Vec::load(y + (p + j) * OC + oc0 + i * L) : b[i];
    for (int64_t k = 0; k < K; ++k) {
      Vec w[V];
      for (int i = 0; i < V; ++i) w[i] = Vec::load(kernel + k * OC + oc0 + i * L);
      for (int j = 0; j < n; ++j) {
        const Vec v = Vec::broadcast(colT[k * m + p + j]);
        for (int i = 0; i < V; ++i) a[j][i] = simd::madd(v, w[i], a[j][i]);
      }
    }
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < V; ++i) a[j][i].store(y + (p + j) * OC + oc0 + i * L);
  };
  int64_t p = 0;
  for (; p + PB <= m; p += PB) block(p, std::integral_constant<int, PB>{});
  for (; p < m; ++p) block(p, std::integral_constant<int, 1>{});
}

template <typename T>
void direct_forward_tile(T* y, const T* colT, const T* kernel, const T* bias, int64_t m, int64_t K,
                         int64_t OC, bool accumulate) {
  constexpr int L = simd::kLanes<T>;
  int64_t oc0 = 0;
  for (; oc0 + 4 * L <= OC; oc0 += 4 * L)
    direct_forward_columns<4>(y, colT, kernel, bias, m, K, OC, oc0, accumulate);
  for (; oc0 + 2 * L <= OC; oc0 += 2 * L)
    direct_forward_columns<2>(y, colT, kernel, bias, m, K, OC, oc0, accumulate);
  for (; oc0 + L <= OC; oc0 += L)
    direct_forward_columns<1>(y, colT, kernel, bias, m, K, OC, oc0, accumulate);
  for (; oc0 < OC; ++oc0) {
    for (int64_t p = 0; p < m; ++p) {
      T acc = accumulate ? y[p * OC + oc0] : bias ? bias[oc0] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += colT[k * m + p] * kernel[k * OC + oc0];
      y[p * OC + oc0] = acc;
    }
  }
}

// dkernel rows k .. k+KB-1, columns oc0 .. oc0+V*lanes-1, += colT @ dy over a tile.
// KB rows at once share the dy loads and give KB*V independent FMA chains.
template <int V, int KB, typename T>
void direct_dkernel_rows(T* dk, const T* colT, const T* dy, int64_t m, int64_t k, int64_t OC,
                         int64_t oc0) {
  using Vec = simd::Vec<T>;
  constexpr int L = simd::kLanes<T>;
  Vec acc[KB][V];
  for (int j = 0; j < KB; ++j)
    for (int i = 0; i < V; ++i) acc[j][i] = Vec::zero();
  for (int64_t p = 0; p < m; ++p) {
    Vec d[V];
    for (int i = 0; i < V; ++i) d[i] = Vec::load(dy + p * OC + oc0 + i * L);
    for (int j = 0; j < KB; ++j) {
      const Vec v = Vec::broadcast(colT[(k + j) * m + p]);
      for (int i = 0; i < V; ++i) acc[j][i] = simd::madd(v, d[i], acc[j][i]);
    }
  }
  for (int j = 0; j < KB; ++j) {
    for (int i = 0; i < V; ++i) {
      T* at = dk + (k + j) * OC + oc0 + i * L;
      (Vec::load(at) + acc[j][i]).store(at);
    }
  }
}

// dkernel (K, OC) += colT @ dy and dbias += column sums of dy over a tile, columns
// oc0 .. oc0+V*lanes-1; either may be null.
template <int V, typename T>
void direct_weight_columns(T* dk, T* db, const T* colT, const T* dy, int64_t m, int64_t K,
                           int64_t OC, int64_t oc0) {
  constexpr int L = simd::kLanes<T>;
  constexpr int KB = std::max(2, kChains / V);
  int64_t k = 0;
  for (; dk && k + KB <= K; k += KB) direct_dkernel_rows<V, KB>(dk, colT, dy, m, k, OC, oc0);
  for (; dk && k + 2 <= K; k += 2) direct_dkernel_rows<V, 2>(dk, colT, dy, m, k, OC, oc0);
  for (; dk && k < K; ++k) direct_dkernel_rows<V, 1>(dk, colT, dy, m, k, OC, oc0);
  if (!db) return;
  using Vec = simd::Vec<T>;
  Vec acc[V];
  for (int i = 0; i < V; ++i) acc[i] = Vec::zero();
  for (int64_t p = 0; p < m; ++p) {
    for (int i = 0; i < V; ++i) acc[i] += Vec::load(dy + p * OC + oc0 + i * L);
  }
  for (int i = 0; i < V; ++i) (Vec::load(db + oc0 + i * L) + acc[i]).store(db + oc0 + i * L);
}

template <typename T>
void direct_weight_tile(T* dk, T* db, const T* colT, const T* dy, int64_t m, int64_t K,
                        int64_t OC) {
  constexpr int L = simd::kLanes<T>;
  int64_t oc0 = 0;
  for (; oc0 + 4 * L <= OC; oc0 += 4 * L) direct_weight_columns<4>(dk, db, colT, dy, m, K, OC, oc0);
  for (; oc0 + 2 * L <= OC; oc0 += 2 * L) direct_weight_columns<2>(dk, db, colT, dy, m, K, OC, oc0);
  for (; oc0 + L <= OC; oc0 += L) direct_weight_columns<1>(dk, db, colT, dy, m, K, OC, oc0);
  for (; oc0 < OC; ++oc0) {
    for (int64_t p = 0; p < m; ++p) {
      for (int64_t k = 0; dk && k < K; ++k) dk[k * OC + oc0] += colT[k * m + p] * dy[p * OC + oc0];
      if (db) db[oc0] += dy[p * OC + oc0];
    }
  }
}

// ------------------------------------------------------------------ pixel tiles

// The im2col products on packed panels: the constant operand, the kernel, is packed
// once per call into panels (common/packed_panels.hpp), in chunks of at most
// kPanelChunkBytes of each row of the other operand, and each pixel tile's product runs
// chunk after chunk, each adding to what the last left. Eigen's GEMM packed the kernel
// again for every tile of 192+ rows. A row of the product is a sum in a fixed order
// over the chunks, whatever the tile or the thread: the same bits at any thread count.
// A chunk of 6 rows of the tile stays in L1 while a panel streams from L2. Measured for
// the forward (2 threads, float32, one process alternating, medians of 12 rounds,
// Eigen / panels with chunks of 3, 4 and 2.5 KB): the DCGAN layer's dx (K = 1024) 3.52
// / 3.00, 2.97, 3.06 ms; 3x3 stride 2 32x28x28x32 -> 64 1.11 / 0.90, 0.90, 0.91; 5x5
// 32x14x14x64 -> 64 6.31 / 4.65, 4.56, 4.68; 3x3 stride 2 16x56x56x64 -> 128 7.41 /
// 6.36, 6.15, 6.22; 3x3 stride 2 8x14x14x256 -> 256 (K = 2304) 3.50 / 3.14, 3.09, 3.08.
// Unchunked, the K = 2304 layer was 17-30% slower than Eigen.
constexpr int64_t kPanelChunkBytes = 4096;

// dx's tiles go to the threads a group of samples at a time when there are at least this
// many groups a thread; with fewer, each tile's columns are shared out.
constexpr int64_t kGroupsPerThread = 4;

struct PackedKernelScratch {};

// b (D, N), b(k, n) = b[k * ldk + n * ldn], packed as chunks of the depth D.
template <typename T>
class PanelChunks {
 public:
  PanelChunks(int64_t D, int64_t N, int64_t ldk, int64_t ldn)
      : D_(D),
        N_(N),
        ldk_(ldk),
        ldn_(ldn),
        count_(std::max<int64_t>(1, (D * int64_t(sizeof(T)) + kPanelChunkBytes - 1) /
                                        kPanelChunkBytes)),  // one, of depth 0, for D = 0
        depth_((D + count_ - 1) / count_),
        stride_(Panels<T>{depth_, 1, 0, 0, N}.size()) {}

  // b packed, in the calling thread's kept buffer.
  const T* pack(const T* b, int threads) const {
    T* packed = buffer();
    const int64_t per = panels_for<T>(N_);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < count_ * per; ++i) {
      const int64_t c = i / per;
      pack_panels(packed + c * stride_, b + c * depth_ * ldk_, ldk_, ldn_, chunk(c), i % per,
                  i % per + 1);
    }
    return packed;
  }

  // Only the columns of `slice` (whole panels: column_slice), packed by the calling
  // thread, which then has them in its own cache for product(..., slice).
  void pack(T* packed, const T* b, ColumnSlice slice) const {
    const int64_t first = slice.begin / kPanel<T>, last = first + panels_for<T>(slice.size());
    for (int64_t c = 0; c < count_; ++c) {
      pack_panels(packed + c * stride_, b + c * depth_ * ldk_, ldk_, ldn_, chunk(c), first, last);
    }
  }

  // c (m, N) = init + a (m, D) @ b, where init is null (zeros), c itself or a row
  // repeated (ldi = 0, a bias); or only the columns of `slice`. Single-threaded.
  void product(T* c, const T* init, int64_t ldi, const T* a, int64_t lda, int64_t m,
               const T* packed, ColumnSlice slice = {0, -1}) const {
    if (slice.end < 0) slice.end = N_;
    const int64_t first = slice.begin / kPanel<T>;
    for (int64_t q = 0; q < count_; ++q) {
      const Panels<T> L = chunk(q, slice);
      panel_product(c, N_, q ? c : init, q ? N_ : ldi, a + q * depth_, lda, m,
                    packed + q * stride_ + first * L.K * kPanel<T>, L);
    }
  }

  T* buffer() const { return kept_buffer<PackedKernelScratch>().get<T>(count_ * stride_); }

 private:
  // Chunk q's depth, over the columns of `slice` (all of them by default).
  Panels<T> chunk(int64_t q, ColumnSlice slice = {0, -1}) const {
    return {std::min(depth_, D_ - q * depth_), 1, 0, slice.begin,
            slice.end < 0 ? N_ : slice.size()};
  }
  int64_t D_, N_, ldk_, ldn_, count_, depth_, stride_;
};

// Pixel tiles with the direct kernels (small K) or im2col and the packed kernel.
template <typename T>
void forward_pixel_tiles(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s,
                         bool accumulate) {
  const int64_t K = s.K(), OC = s.OC, P = s.pixels();
  const bool direct = conv2d_plan(s) == Conv2dPlan::direct;
  const int threads = get_num_threads();
  // Each pixel's values are computed alone, in an order that follows the shape only, so
  // the tiles' size changes no bits: they are shared evenly among the threads.
  const int64_t rows = balanced_rows(tile_rows(s, sizeof(T)), P, threads);
  T* const* cols = thread_workspace<T>(rows * K, threads);
  const PanelChunks<T> chunks(K, OC, OC, 1);  // the kernel (K, OC)
  const T* packed = direct ? nullptr : chunks.pack(kernel, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t p0 = 0; p0 < P; p0 += rows) {
    T* col = cols[thread_index()];
    const int64_t m = std::min(rows, P - p0);
    if (direct) {
      im2col_transposed(col, x, s, p0, m);
      direct_forward_tile(y + p0 * OC, col, kernel, bias, m, K, OC, accumulate);
    } else {
      im2col(col, x, s, p0, m);
      T* yt = y + p0 * OC;
      chunks.product(yt, accumulate ? yt : bias, accumulate ? OC : 0, col, K, m, packed);
    }
  }
}

// dkernel (K, OC) += im2col(x)^T @ dy, dbias += column sums of dy, over pixel tiles.
// Each thread sums its tiles (a fixed, contiguous range: static schedule) into its own
// partials, which are then added in thread order: bit-identical runs for a thread count.
template <typename T>
void weight_grads_pixel_tiles(T* dkernel, T* dbias, const T* dy, const T* x, const Conv2dShape& s) {
  const int64_t K = s.K(), OC = s.OC, P = s.pixels(), rows = tile_rows(s, sizeof(T));
  const int64_t partial = K * OC + OC;  // dkernel then dbias
  const bool direct = conv2d_plan(s, Conv2dPass::weight_grads) == Conv2dPlan::direct;
  const int threads = get_num_threads();
  T* const* bufs = thread_workspace<T>(rows * K + partial, threads);
  for (int t = 0; t < threads; ++t) std::fill_n(bufs[t] + rows * K, partial, T(0));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t p0 = 0; p0 < P; p0 += rows) {
    T* col = bufs[thread_index()];
    T* dk = col + rows * K;
    const int64_t m = std::min(rows, P - p0);
    if (direct) {
      if (dkernel) im2col_transposed(col, x, s, p0, m);
      direct_weight_tile(dkernel ? dk : nullptr, dbias ? dk + K * OC : nullptr, col, dy + p0 * OC,
                         m, K, OC);
      continue;
    }
    if (dkernel) {
      im2col(col, x, s, p0, m);
      // im2col^T without a transposed copy: the row-major tile read column-major.
      gemm_accumulate<T>({dk, OC, false}, {col, K, true}, {dy + p0 * OC, OC, false}, K, OC, m);
    }
    if (dbias) sum_rows(dk + K * OC, dy + p0 * OC, m, OC);
  }
  if (dkernel) reduce_partials(dkernel, bufs, rows * K, K * OC, threads);
  if (dbias) reduce_partials(dbias, bufs, rows * K + K * OC, OC, threads);
}

// Kernel gradients of at least this many bytes are summed tap by tap. Measured (2
// threads, float32, dkernel + dbias): the DCGAN layer's 1024 x 128 (512 KB) 2.95 -> 2.50
// ms; a 5x5 64->64 layer's 400 KB 2% slower, a 3x3 15->64 layer's 34 KB 17% slower.
constexpr size_t kTapSplitBytes = size_t(512) << 10;

bool splits_taps(const Conv2dShape& s, size_t elem) {
  return s.KH * s.KW > 1 && static_cast<size_t>(s.K() * s.OC) * elem >= kTapSplitBytes;
}

// dkernel (K, OC) += im2col(x)^T @ dy with the kernel's taps shared out among the
// threads: each gathers only its taps' columns of every pixel tile and adds its
// products straight into its own rows of dkernel. Where the kernel gradient is large
// (the DCGAN layer's 1024 x 128), this keeps a thread's rows and its tile in L2 and
// leaves no per-thread partials to add up. dbias is separate.
template <typename T>
void weight_grads_tap_split(T* dkernel, const T* dy, const T* x, const Conv2dShape& s) {
  const int64_t C = s.C, OC = s.OC, P = s.pixels(), taps = s.KH * s.KW;
  const int64_t rows = tile_rows(s, sizeof(T));
  const int threads = static_cast<int>(std::min<int64_t>(get_num_threads(), taps));
  T* const* cols = thread_workspace<T>(rows * ((taps + threads - 1) / threads) * C, threads);
  // The taps are shared out in `threads` shares, whatever team the runtime starts (it
  // may start fewer: OMP_THREAD_LIMIT, OMP_DYNAMIC); a thread then takes several shares,
  // each within its buffer's ceil(taps / threads) taps.
#pragma omp parallel num_threads(threads)
  for (int u = thread_index(); u < threads; u += team_size()) {
    T* col = cols[thread_index()];
    const int64_t tap0 = taps * u / threads, tap1 = taps * (u + 1) / threads;
    const int64_t Kt = (tap1 - tap0) * C;
    for (int64_t p0 = 0; p0 < P && Kt > 0; p0 += rows) {
      const int64_t m = std::min(rows, P - p0);
      im2col(col, x, s, p0, m, tap0, tap1);
      gemm_accumulate<T>({dkernel + tap0 * C * OC, OC, false}, {col, Kt, true},
                         {dy + p0 * OC, OC, false}, Kt, OC, m);
    }
  }
}

// dx += col2im(dy @ kernel^T) over samples [n0, n1), in tiles of `rows` pixels that may
// span samples: threads that own whole samples write disjoint memory. kernel^T is
// packed once per call (chunks).
template <typename T>
void input_grad_samples(T* dx, T* dcol, const T* dy, const PanelChunks<T>& chunks, const T* packed,
                        const Conv2dShape& s, int64_t n0, int64_t n1, int64_t rows) {
  const int64_t OC = s.OC, per_sample = s.OH * s.OW;
  for (int64_t p0 = n0 * per_sample, end = n1 * per_sample; p0 < end; p0 += rows) {
    const int64_t m = std::min(rows, end - p0);
    chunks.product(dcol, nullptr, 0, dy + p0 * OC, OC, m, packed);
    col2im(dx, dcol, s, p0, m);
  }
}

// The same with the columns of each tile's product shared out among the team: each
// thread packs its own panels of kernel^T and keeps them in its cache. A tile is
// `group` whole samples, whose col2im the threads share a sample each; a sample larger
// than a tile goes in tiles of `rows` pixels, each added into dx on one thread. With a
// few samples a thread, a sample a thread read half of the packed kernel from the other
// core's cache. The DCGAN layer's transposed forward at 2 threads, batch 1 / 2 / 4, one
// process alternating: Eigen's products 77 / 117 / 238 us, a sample a thread 134 / 158 /
// 262 us, columns 68 / 108 / 208 us (345 us at batch 4 with each tile's col2im on one
// thread).
template <typename T>
void input_grad_columns(T* dx, T* dcol, const T* dy, const T* kernel, const PanelChunks<T>& chunks,
                        const Conv2dShape& s, int64_t group, int64_t rows, int threads) {
  const int64_t K = s.K(), OC = s.OC, P = s.pixels(), per_sample = s.OH * s.OW;
  T* packed = chunks.buffer();
#pragma omp parallel num_threads(threads)
  {
    const ColumnSlice slice = column_slice<T>(K, team_size(), thread_index());
    chunks.pack(packed, kernel, slice);
    if (per_sample <= rows) {
      for (int64_t n0 = 0; n0 < s.N; n0 += group) {
        const int64_t n1 = std::min(s.N, n0 + group), p0 = n0 * per_sample;
        if (slice.size() > 0) {
          chunks.product(dcol, nullptr, 0, dy + p0 * OC, OC, (n1 - n0) * per_sample, packed, slice);
        }
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t n = n0; n < n1; ++n) {
          col2im(dx, dcol + (n - n0) * per_sample * K, s, n * per_sample, per_sample);
        }  // the implicit barrier: dcol is free again
      }
    } else {
      for (int64_t p0 = 0; p0 < P; p0 += rows) {
        const int64_t m = std::min(rows, P - p0);
        if (slice.size() > 0) {
          chunks.product(dcol, nullptr, 0, dy + p0 * OC, OC, m, packed, slice);
        }
#pragma omp barrier
#pragma omp single
        col2im(dx, dcol, s, p0, m);
      }
    }
  }
}

template <typename T>
void input_grad_pixel_tiles(T* dx, const T* dy, const T* kernel, const Conv2dShape& s) {
  const int64_t rows = tile_rows(s, sizeof(T)), per_sample = s.OH * s.OW;
  // Samples smaller than a tile share one, so that the products are a tile deep: the
  // DCGAN layer's 7x7 y took 49-row products (its transposed forward: 2.6 -> 2.2 ms).
  // The groups follow the shape alone, and there are at least kMinGroups where the
  // batch allows (one sample a group below that).
  constexpr int64_t kMinGroups = 8;
  const int64_t group = std::clamp<int64_t>(rows / std::max<int64_t>(per_sample, 1), 1,
                                            std::max<int64_t>(s.N / kMinGroups, 1));
  const int64_t groups = (s.N + group - 1) / group;
  const int threads = get_num_threads();
  // kernel^T (OC, K) without a transposed copy: the (K, OC) row-major kernel packed
  // column by column.
  const PanelChunks<T> chunks(s.OC, s.K(), 1, s.OC);
  if (groups < kGroupsPerThread * threads) {
    // whole samples a tile where one fits: a thread's col2im each
    const int64_t whole = std::max<int64_t>(rows / std::max<int64_t>(per_sample, 1), 1);
    const int64_t tile = per_sample <= rows ? whole * per_sample : rows;
    T* dcol = thread_workspace<T>(tile * s.K(), 1)[0];
    return input_grad_columns(dx, dcol, dy, kernel, chunks, s, whole, rows, threads);
  }
  T* const* dcols = thread_workspace<T>(rows * s.K(), threads);
  const T* packed = chunks.pack(kernel, threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    input_grad_samples(dx, dcols[thread_index()], dy, chunks, packed, s, g * group,
                       std::min(s.N, (g + 1) * group), rows);
  }
}

// ------------------------------------------------------------------ row views
// With a 1-high window (every Conv1D) and no dilation, the im2col rows of output row
// (n, oh) are x's input row itself, read with a row stride of stride_w*C: consecutive
// windows overlap in memory, and the GEMMs read them in place. Only the few outputs
// whose window hangs over a padded edge go through im2col. At stride 1, dx is the full
// correlation of dy with the kernel flipped: the same in-place reading, of a copy of
// dy's row with zeros around it, and no col2im.

// The outputs [lo, hi) of a row whose whole window lies inside x; the outputs before
// and after it are the edges.
Span whole_windows(const Conv2dShape& s) {
  const Span first = inside_row(s, 0), last = inside_row(s, s.KW - 1);
  const int64_t lo = std::max(first.lo, last.lo);
  return {lo, std::max(lo, std::min(first.hi, last.hi))};
}

int64_t edge_rows(const Conv2dShape& s, Span whole) {
  return std::max<int64_t>({whole.lo, s.OW - whole.hi, 1});
}

// The first element of output row r's first whole window in x.
template <typename T>
const T* window_row(const T* x, const Conv2dShape& s, int64_t r, Span whole) {
  const int64_t n = r / s.OH, ih = r % s.OH * s.p.stride_h;
  return x + ((n * s.H + ih) * s.W + whole.lo * s.p.stride_w - s.p.pad_left) * s.C;
}

// f(r) for every output row r: shared over the threads (a fixed, contiguous range each)
// when there are as many rows as threads, else one after another on the calling thread,
// outside any parallel region, where each GEMM is Eigen's threaded one (a batch-1
// Conv1D's single row). thread_index() is 0 there.
template <typename F>
void for_each_output_row(int64_t rows, int threads, F&& f) {
  if (rows >= threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) f(r);
  } else {
    for (int64_t r = 0; r < rows; ++r) f(r);
  }
}

template <typename T>
void forward_row_views(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s,
                       bool accumulate) {
  const int64_t K = s.K(), OC = s.OC, OW = s.OW, lda = s.p.stride_w * s.C;
  const Span whole = whole_windows(s);
  const int threads = get_num_threads();
  T* const* cols = thread_workspace<T>(edge_rows(s, whole) * K, threads);
  for_each_output_row(s.N * s.OH, threads, [&](int64_t r) {
    T* yr = y + r * OW * OC;
    if (!accumulate) fill_bias(yr, bias, OW, OC);
    if (whole.hi > whole.lo) {
      gemm_accumulate<T>({yr + whole.lo * OC, OC, false}, {window_row(x, s, r, whole), lda, false},
                         {kernel, OC, false}, whole.hi - whole.lo, OC, K);
    }
    for (const Span e : {Span{0, whole.lo}, Span{whole.hi, OW}}) {
      if (e.hi == e.lo) continue;
      T* col = cols[thread_index()];
      im2col(col, x, s, r * OW + e.lo, e.hi - e.lo);
      gemm_accumulate<T>({yr + e.lo * OC, OC, false}, {col, K, false}, {kernel, OC, false},
                         e.hi - e.lo, OC, K);
    }
  });
}

// dkernel += the windows^T @ dy and dbias += the column sums of dy, row by row. Each
// thread sums its rows (a fixed, contiguous range: static schedule) into its own
// partials, added in thread order: bit-identical runs for a thread count.
template <typename T>
void weight_grads_row_views(T* dkernel, T* dbias, const T* dy, const T* x, const Conv2dShape& s) {
  const int64_t K = s.K(), OC = s.OC, OW = s.OW, lda = s.p.stride_w * s.C;
  const Span whole = whole_windows(s);
  const int64_t edge = edge_rows(s, whole) * K, partial = K * OC + OC;  // dkernel then dbias
  const int threads = get_num_threads();
  T* const* bufs = thread_workspace<T>(edge + partial, threads);
  for (int t = 0; t < threads; ++t) std::fill_n(bufs[t] + edge, partial, T(0));
  for_each_output_row(s.N * s.OH, threads, [&](int64_t r) {
    T* col = bufs[thread_index()];
    T* dk = col + edge;
    const T* dyr = dy + r * OW * OC;
    if (dbias) sum_rows(dk + K * OC, dyr, OW, OC);
    if (!dkernel) return;
    if (whole.hi > whole.lo) {
      // the windows^T: the in-place rows read column-major
      gemm_accumulate<T>({dk, OC, false}, {window_row(x, s, r, whole), lda, true},
                         {dyr + whole.lo * OC, OC, false}, K, OC, whole.hi - whole.lo);
    }
    for (const Span e : {Span{0, whole.lo}, Span{whole.hi, OW}}) {
      if (e.hi == e.lo) continue;
      im2col(col, x, s, r * OW + e.lo, e.hi - e.lo);
      gemm_accumulate<T>({dk, OC, false}, {col, K, true}, {dyr + e.lo * OC, OC, false}, K, OC,
                         e.hi - e.lo);
    }
  });
  if (dkernel) reduce_partials(dkernel, bufs, edge, K * OC, threads);
  if (dbias) reduce_partials(dbias, bufs, edge + K * OC, OC, threads);
}

// Rows of dy's zero-padded copy that dx's stride-1 windows read: dy sits after KW - 1
// zeros, and input column w's window starts at row w + pad_left.
int64_t padded_dy_rows(const Conv2dShape& s) { return s.W + s.p.pad_left + s.KW - 1; }

struct FlippedKernelScratch {};

// dx row (W, C) += the padded dy row read in place, (W, KW*OC) with a row stride of OC,
// @ the kernel flipped and transposed, (KW*OC, C): dx[w] = sum over j of
// dy_padded[w + pad_left + j] @ kernel[KW - 1 - j]^T. One row of dx per output row: threads
// write disjoint rows (rows of x that stride_h skips keep their zeros).
template <typename T>
void input_grad_row_views(T* dx, const T* dy, const T* kernel, const Conv2dShape& s) {
  const int64_t C = s.C, OC = s.OC, OW = s.OW, KW = s.KW, lead = KW - 1;
  const int64_t rows = padded_dy_rows(s), copied = std::clamp<int64_t>(rows - lead, 0, OW);
  T* flipped = kept_buffer<FlippedKernelScratch>().get<T>(static_cast<size_t>(KW * OC * C));
  for (int64_t j = 0; j < KW; ++j) {
    const T* tap = kernel + (KW - 1 - j) * C * OC;  // (C, OC)
    for (int64_t o = 0; o < OC; ++o) {
      for (int64_t c = 0; c < C; ++c) flipped[(j * OC + o) * C + c] = tap[c * OC + o];
    }
  }
  const int threads = get_num_threads();
  T* const* pads = thread_workspace<T>(rows * OC, threads);
  for_each_output_row(s.N * s.OH, threads, [&](int64_t r) {
    T* pad = pads[thread_index()];
    std::fill_n(pad, lead * OC, T(0));
    std::copy_n(dy + r * OW * OC, copied * OC, pad + lead * OC);
    std::fill(pad + (lead + copied) * OC, pad + rows * OC, T(0));
    const int64_t n = r / s.OH, ih = r % s.OH * s.p.stride_h;
    gemm_accumulate<T>({dx + (n * s.H + ih) * s.W * C, C, false},
                       {pad + s.p.pad_left * OC, OC, false}, {flipped, C, false}, s.W, C, KW * OC);
  });
}

// y = conv(x, kernel) + bias, or with accumulate (and no bias) y += conv(x, kernel).
template <typename T>
void forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s,
             bool accumulate) {
  if (s.pixels() == 0 || s.OC == 0) return;
  switch (conv2d_plan(s)) {
    case Conv2dPlan::pointwise:
      return forward_pointwise(y, x, kernel, bias, s, accumulate);
    case Conv2dPlan::winograd:
      return winograd_forward(y, x, kernel, bias, s, accumulate);
    case Conv2dPlan::row_views:
      return forward_row_views(y, x, kernel, bias, s, accumulate);
    case Conv2dPlan::direct:
    case Conv2dPlan::pixel_tiles:
      return forward_pixel_tiles(y, x, kernel, bias, s, accumulate);
  }
}

}  // namespace

template <typename T>
void conv2d_forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s) {
  forward(y, x, kernel, bias, s, false);
}

template <typename T>
void conv2d_backward(T* dx, T* dkernel, T* dbias, const T* dy, const T* x, const T* kernel,
                     const Conv2dShape& s) {
  if (s.pixels() == 0 || s.OC == 0) return;
  const int64_t P = s.pixels(), OC = s.OC;
  if (conv2d_plan(s) == Conv2dPlan::pointwise) {
    if (dx) gemm_accumulate<T>({dx, s.C, false}, {dy, OC, false}, {kernel, OC, true}, P, s.C, OC);
    if (dkernel)
      gemm_accumulate<T>({dkernel, OC, false}, {x, s.C, true}, {dy, OC, false}, s.C, OC, P);
    if (dbias) column_sums(dbias, dy, P, OC);
    return;
  }
  const Conv2dPlan weights = conv2d_plan(s, Conv2dPass::weight_grads);
  if (dkernel && weights == Conv2dPlan::winograd) {
    winograd_kernel_grad(dkernel, dy, x, s);
    if (dbias) column_sums(dbias, dy, P, OC);
  } else if ((dkernel || dbias) && weights == Conv2dPlan::row_views) {
    weight_grads_row_views(dkernel, dbias, dy, x, s);
  } else if (dkernel && weights == Conv2dPlan::pixel_tiles && splits_taps(s, sizeof(T))) {
    weight_grads_tap_split(dkernel, dy, x, s);
    if (dbias) column_sums(dbias, dy, P, OC);
  } else if (dkernel || dbias) {
    weight_grads_pixel_tiles(dkernel, dbias, dy, x, s);
  }
  if (!dx) return;
  switch (conv2d_plan(s, Conv2dPass::input_grad)) {
    case Conv2dPlan::winograd:
      return winograd_input_grad(dx, dy, kernel, s);
    case Conv2dPlan::row_views:
      return input_grad_row_views(dx, dy, kernel, s);
    default:
      return input_grad_pixel_tiles(dx, dy, kernel, s);
  }
}

// ------------------------------------------------------------------ transposed

namespace {

// The convolution a transposed one is the adjoint of: x of y's shape (N, OH, OW, OC),
// the kernel as is, and y of x's shape.
Conv2dShape transposed_conv(const char* fn, const int64_t (&x)[4], const int64_t (&k)[4],
                            const Conv2dTransposeParams& p) {
  const std::vector<int64_t> xs(x, x + 4), ks(k, k + 4);
  if (k[3] != x[3]) {
    fail(fn, ": kernel has shape ", shape_str(ks), " with ", k[3], " input channels but x ",
         "has shape ", shape_str(xs), " with ", x[3], "; expected kernel (KH, KW, OC, ", x[3], ")");
  }
  if (k[0] < 1 || k[1] < 1) {
    fail(fn, ": kernel has shape ", shape_str(ks), "; expected KH >= 1 and KW >= 1");
  }
  p.check(fn);
  const int64_t y[4] = {x[0],
                        transposed_window_size(fn, "height", x[1], p.pad_top, p.pad_bottom, k[0],
                                               p.dilation_h, p.stride_h, p.output_pad_h),
                        transposed_window_size(fn, "width", x[2], p.pad_left, p.pad_right, k[1],
                                               p.dilation_w, p.stride_w, p.output_pad_w),
                        k[2]};
  return Conv2dShape(fn, y, k, p);
}

}  // namespace

Conv2dTransposeShape::Conv2dTransposeShape(const char* fn, const int64_t (&x)[4],
                                           const int64_t (&k)[4],
                                           const Conv2dTransposeParams& params)
    : N(x[0]),
      H(x[1]),
      W(x[2]),
      C(x[3]),
      KH(k[0]),
      KW(k[1]),
      OC(k[2]),
      OH(0),
      OW(0),
      conv(transposed_conv(fn, x, k, params)) {
  OH = conv.H, OW = conv.W;
  checked_numel({N, OH, OW, OC}, fn);  // y, which the convolution takes as its x
  // output_padding below the stride leaves the convolution's output size at x's.
  if (conv.OH != H || conv.OW != W) {
    fail(fn, ": internal error: y (", OH, ", ", OW, ") convolves back to (", conv.OH, ", ", conv.OW,
         "), not x's (", H, ", ", W, ")");
  }
}

template <typename T>
void conv2d_transpose_forward(T* y, const T* x, const T* kernel, const T* bias,
                              const Conv2dTransposeShape& s) {
  fill_bias_rows(y, bias, s.N * s.OH * s.OW, s.OC);
  // y += the convolution's input gradient for dy = x; x is not read.
  conv2d_backward<T>(y, nullptr, nullptr, x, nullptr, kernel, s.conv);
}

template <typename T>
void conv2d_transpose_backward(T* dx, T* dkernel, T* dbias, const T* dy, const T* x,
                               const T* kernel, const Conv2dTransposeShape& s) {
  if (dx) forward<T>(dx, dy, kernel, nullptr, s.conv, true);
  // The convolution's kernel gradient, with its x = dy and its dy = x.
  if (dkernel) conv2d_backward<T>(nullptr, dkernel, nullptr, x, dy, nullptr, s.conv);
  if (dbias) column_sums(dbias, dy, s.N * s.OH * s.OW, s.OC);
}

#define DLCORE_INSTANTIATE_CONV2D(T)                                                              \
  template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dShape&);          \
  template void conv2d_backward<T>(T*, T*, T*, const T*, const T*, const T*, const Conv2dShape&); \
  template void conv2d_transpose_forward<T>(T*, const T*, const T*, const T*,                     \
                                            const Conv2dTransposeShape&);                         \
  template void conv2d_transpose_backward<T>(T*, T*, T*, const T*, const T*, const T*,            \
                                             const Conv2dTransposeShape&);
DLCORE_INSTANTIATE_CONV2D(float)
DLCORE_INSTANTIATE_CONV2D(double)
#undef DLCORE_INSTANTIATE_CONV2D

}  // namespace dlcore
