// Depthwise 2-D convolution, channels-last: every input channel convolved with its own
// M filters. There is no sum over channels, so no GEMM: each output row is a few
// element-wise multiply-adds over the C (or C*M) channels, which the compiler vectorises.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/simd.hpp"
#include "common/workspace.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/conv2d.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {

DepthwiseConv2dShape::DepthwiseConv2dShape(const char* fn, const int64_t (&x)[4],
                                           const int64_t (&k)[4], const Conv2dParams& params)
    : N(x[0]), H(x[1]), W(x[2]), C(x[3]), KH(k[0]), KW(k[1]), M(k[3]), p(params) {
  const std::vector<int64_t> xs(x, x + 4), ks(k, k + 4);
  if (k[2] != C) {
    fail(fn, ": kernel has shape ", shape_str(ks), " with ", k[2], " input channels but x ",
         "has shape ", shape_str(xs), " with ", C, "; expected kernel (KH, KW, ", C, ", M)");
  }
  if (KH < 1 || KW < 1 || M < 1) {
    fail(fn, ": kernel has shape ", shape_str(ks),
         "; expected KH >= 1, KW >= 1 and a depth multiplier M >= 1");
  }
  p.check(fn);
  OH = p.out_h(fn, H, KH);
  OW = p.out_w(fn, W, KW);
  OC = checked_numel({C, M}, fn);
  checked_numel({N, OH, OW, OC}, fn);
  checked_numel({KH, KW, OC}, fn);
}

namespace {

// The taps [begin, end) of output o's window along one axis whose input position
// at(k) = o * stride - pad + k * dilation falls inside [0, in): a contiguous range.
struct TapRange {
  int64_t begin, end;
  int64_t first, dilation;  // at(k) = first + k * dilation

  int64_t at(int64_t k) const { return first + k * dilation; }
};
TapRange taps_inside(int64_t o, int64_t stride, int64_t pad, int64_t dilation, int64_t window,
                     int64_t in) {
  const int64_t first = o * stride - pad;  // input position of tap 0
  // first + k * dilation >= 0  <=>  k >= ceil(-first / dilation)
  const int64_t begin = std::min(first >= 0 ? 0 : (-first + dilation - 1) / dilation, window);
  // first + k * dilation < in  <=>  k < ceil((in - first) / dilation)
  const int64_t end = in - first <= 0 ? 0 : (in - first + dilation - 1) / dilation;
  return {begin, std::clamp<int64_t>(end, begin, window), first, dilation};
}

// The output position o whose tap k reads input position i (o * stride - pad + k *
// dilation == i), or -1 when no o in [0, out) does.
int64_t output_of_tap(int64_t i, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                      int64_t out) {
  const int64_t t = i + pad - k * dilation;
  if (t < 0 || t % stride != 0 || t / stride >= out) return -1;
  return t / stride;
}

// Entries a TapTable may hold: enough for any real window (a 7x7 kernel over 1e5 rows);
// beyond it (a kernel as tall as a tall input) the pairs are found per pixel instead, so
// memory stays within the inputs' own.
constexpr int64_t kMaxTableEntries = int64_t(1) << 20;

// For each input position i along one axis, the (tap, output) pairs whose window reads
// it, tap ascending: tap/out[i * window + j] for j < count[i]. The input gradient
// gathers over them; built once per call (the divisions stay out of the pixel loops).
// Empty (built false) when in * window exceeds kMaxTableEntries.
struct TapTable {
  std::vector<int64_t> tap, out, count;
  bool built;

  TapTable(int64_t in, int64_t out_size, int64_t stride, int64_t pad, int64_t dilation,
           int64_t window)
      : built(in <= kMaxTableEntries / std::max<int64_t>(window, 1)) {
    if (!built) return;
    tap.resize(static_cast<size_t>(in * window));
    out.resize(static_cast<size_t>(in * window));
    count.resize(static_cast<size_t>(in));
    for (int64_t i = 0; i < in; ++i) {
      int64_t n = 0;
      for (int64_t k = 0; k < window; ++k) {
        const int64_t o = output_of_tap(i, k, stride, pad, dilation, out_size);
        if (o < 0) continue;
        tap[i * window + n] = k, out[i * window + n] = o, ++n;
      }
      count[i] = n;
    }
  }
};

// Taps per pixel that the register-blocked sums take (a 8x8 window); wider windows
// take the row-at-a-time path.
constexpr int kMaxTaps = 64;

// out[0, C) = init[0, C) (zero when null; it may be out) + sum over t < taps of a[t][c] *
// b[t][c], in tap order. Four packets of channels at a time stay in registers across the
// taps. Which path an element takes depends on C alone, so the bits do not depend on the
// threads.
template <typename T>
void sum_of_products(T* out, const T* init, const T* const* a, const T* const* b, int taps,
                     int64_t C) {
  using P = simd::Packet<T>;
  constexpr int64_t L = simd::kLanes<T>;
  int64_t c = 0;
  for (; c + 4 * L <= C; c += 4 * L) {
    P s0 = init ? simd::load(init + c) : simd::zero<T>();
    P s1 = init ? simd::load(init + c + L) : simd::zero<T>();
    P s2 = init ? simd::load(init + c + 2 * L) : simd::zero<T>();
    P s3 = init ? simd::load(init + c + 3 * L) : simd::zero<T>();
    for (int t = 0; t < taps; ++t) {
      const T *at = a[t] + c, *bt = b[t] + c;
      s0 = simd::madd(simd::load(at), simd::load(bt), s0);
      s1 = simd::madd(simd::load(at + L), simd::load(bt + L), s1);
      s2 = simd::madd(simd::load(at + 2 * L), simd::load(bt + 2 * L), s2);
      s3 = simd::madd(simd::load(at + 3 * L), simd::load(bt + 3 * L), s3);
    }
    simd::store(out + c, s0);
    simd::store(out + c + L, s1);
    simd::store(out + c + 2 * L, s2);
    simd::store(out + c + 3 * L, s3);
  }
  for (; c + L <= C; c += L) {
    P s0 = init ? simd::load(init + c) : simd::zero<T>();
    for (int t = 0; t < taps; ++t) s0 = simd::madd(simd::load(a[t] + c), simd::load(b[t] + c), s0);
    simd::store(out + c, s0);
  }
  for (; c < C; ++c) {
    T sum = init ? init[c] : T(0);
    for (int t = 0; t < taps; ++t) sum += a[t][c] * b[t][c];
    out[c] = sum;
  }
}

// out[c*M + m] += a[c] * b[c*M + m] over the C channels: one input row through one tap's
// M filters each (M = 1: a plain element-wise multiply-add).
template <typename T>
void multiply_add_row(T* __restrict out, const T* __restrict a, const T* __restrict b, int64_t C,
                      int64_t M) {
  if (M == 1) {
    for (int64_t c = 0; c < C; ++c) out[c] += a[c] * b[c];
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const T v = a[c];
    for (int64_t m = 0; m < M; ++m) out[c * M + m] += v * b[c * M + m];
  }
}

// out[c] += sum_m a[c*M + m] * b[c*M + m]: dy's row through one tap's filters back to
// the C input channels.
template <typename T>
void reduce_multiply_add_row(T* __restrict out, const T* __restrict a, const T* __restrict b,
                             int64_t C, int64_t M) {
  for (int64_t c = 0; c < C; ++c) {
    T sum = out[c];
    for (int64_t m = 0; m < M; ++m) sum += a[c * M + m] * b[c * M + m];
    out[c] = sum;
  }
}

// The kernel and bias gradients sum over every output pixel. The pixels' rows (n, oh),
// taken in order, fall into chunks of a size set by the shape alone (about kChunkPixels
// pixels, and at most kMaxPartials partial sums in all); each chunk sums into its own
// partial gradients, and the chunks are then added in order. The work splits over the
// threads, every row of x and dy is read once, and the bits do not depend on the thread
// count.
constexpr int64_t kChunkPixels = 2048;
constexpr int64_t kMaxPartials = int64_t(1) << 22;

struct GradChunks {
  int64_t rows_per_chunk, count, width;  // width: one chunk's partials, KH*KW*OC + OC

  explicit GradChunks(const DepthwiseConv2dShape& s) {
    const int64_t rows = s.N * s.OH;
    width = s.KH * s.KW * s.OC + s.OC;
    rows_per_chunk = std::max<int64_t>(1, kChunkPixels / std::max<int64_t>(s.OW, 1));
    // Fewer, longer chunks when the partials would be too many.
    const int64_t max_chunks = std::max<int64_t>(1, kMaxPartials / std::max<int64_t>(width, 1));
    rows_per_chunk = std::max(rows_per_chunk, (rows + max_chunks - 1) / max_chunks);
    count = rows == 0 ? 0 : (rows + rows_per_chunk - 1) / rows_per_chunk;
  }
};

struct DepthwiseScratch {};

}  // namespace

template <typename T>
void depthwise_conv2d_forward(T* y, const T* x, const T* kernel, const T* bias,
                              const DepthwiseConv2dShape& s) {
  const int64_t C = s.C, M = s.M, OC = s.OC;
  const Conv2dParams& p = s.p;
  if (s.N == 0 || C == 0) return;  // y is empty
#pragma omp parallel for collapse(2) num_threads(get_num_threads()) schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const TapRange kh = taps_inside(oh, p.stride_h, p.pad_top, p.dilation_h, s.KH, s.H);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const TapRange kw = taps_inside(ow, p.stride_w, p.pad_left, p.dilation_w, s.KW, s.W);
        T* out = y + ((n * s.OH + oh) * s.OW + ow) * OC;
        const int64_t taps = (kh.end - kh.begin) * (kw.end - kw.begin);
        if (M == 1 && taps <= kMaxTaps) {
          const T* a[kMaxTaps];
          const T* b[kMaxTaps];
          int t = 0;
          for (int64_t i = kh.begin; i < kh.end; ++i) {
            for (int64_t j = kw.begin; j < kw.end; ++j, ++t) {
              a[t] = x + ((n * s.H + kh.at(i)) * s.W + kw.at(j)) * C;
              b[t] = kernel + (i * s.KW + j) * OC;
            }
          }
          sum_of_products(out, bias, a, b, int(taps), C);
          continue;
        }
        if (bias) {
          std::copy_n(bias, OC, out);
        } else {
          std::fill_n(out, OC, T(0));
        }
        for (int64_t i = kh.begin; i < kh.end; ++i) {
          for (int64_t j = kw.begin; j < kw.end; ++j) {
            multiply_add_row(out, x + ((n * s.H + kh.at(i)) * s.W + kw.at(j)) * C,
                             kernel + (i * s.KW + j) * OC, C, M);
          }
        }
      }
    }
  }
}

template <typename T>
void depthwise_conv2d_backward(T* dx, T* dkernel, T* dbias, const T* dy, const T* x,
                               const T* kernel, const DepthwiseConv2dShape& s) {
  const int64_t C = s.C, M = s.M, OC = s.OC;
  const Conv2dParams& p = s.p;
  const int threads = get_num_threads();
  // Nothing to add: every gradient is empty or stays zero (and the window, which no
  // array's size bounds when there is no channel, is never walked).
  if (s.N == 0 || C == 0) return;
  if (dx) {
    // Each cell of dx gathers from the taps that read it: threads write disjoint rows.
    const TapTable rows(s.H, s.OH, p.stride_h, p.pad_top, p.dilation_h, s.KH);
    const TapTable cols(s.W, s.OW, p.stride_w, p.pad_left, p.dilation_w, s.KW);
    const bool tables = rows.built && cols.built;
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
    for (int64_t n = 0; n < s.N; ++n) {
      for (int64_t ih = 0; ih < s.H; ++ih) {
        for (int64_t iw = 0; iw < s.W; ++iw) {
          T* cell = dx + ((n * s.H + ih) * s.W + iw) * C;
          if (!tables) {  // a window as large as the input: each tap checked here
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const int64_t oh = output_of_tap(ih, kh, p.stride_h, p.pad_top, p.dilation_h, s.OH);
              if (oh < 0) continue;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t ow =
                    output_of_tap(iw, kw, p.stride_w, p.pad_left, p.dilation_w, s.OW);
                if (ow < 0) continue;
                reduce_multiply_add_row(cell, dy + ((n * s.OH + oh) * s.OW + ow) * OC,
                                        kernel + (kh * s.KW + kw) * OC, C, M);
              }
            }
            continue;
          }
          const int64_t* row_tap = &rows.tap[ih * s.KH];
          const int64_t* row_out = &rows.out[ih * s.KH];
          const int64_t* col_tap = &cols.tap[iw * s.KW];
          const int64_t* col_out = &cols.out[iw * s.KW];
          const int64_t nh = rows.count[ih], nw = cols.count[iw];
          if (M == 1 && nh * nw <= kMaxTaps) {
            const T* a[kMaxTaps];
            const T* b[kMaxTaps];
            int t = 0;
            for (int64_t i = 0; i < nh; ++i) {
              for (int64_t j = 0; j < nw; ++j, ++t) {
                a[t] = dy + ((n * s.OH + row_out[i]) * s.OW + col_out[j]) * OC;
                b[t] = kernel + (row_tap[i] * s.KW + col_tap[j]) * OC;
              }
            }
            sum_of_products(cell, cell, a, b, t, C);
            continue;
          }
          for (int64_t i = 0; i < nh; ++i) {
            for (int64_t j = 0; j < nw; ++j) {
              reduce_multiply_add_row(cell, dy + ((n * s.OH + row_out[i]) * s.OW + col_out[j]) * OC,
                                      kernel + (row_tap[i] * s.KW + col_tap[j]) * OC, C, M);
            }
          }
        }
      }
    }
  }
  if (!dkernel && !dbias) return;
  const GradChunks ch(s);
  ScratchBuffer own;
  T* parts = static_cast<T*>(
      take_scratch(kept_buffer<DepthwiseScratch>(), own, size_t(ch.count * ch.width) * sizeof(T)));
  const int64_t rows = s.N * s.OH, taps_width = s.KH * s.KW * OC;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < ch.count; ++i) {
    T* dk = parts + i * ch.width;  // (KH, KW, OC), then dbias's OC
    T* db = dk + taps_width;
    std::fill_n(dk, ch.width, T(0));
    const int64_t r_end = std::min(rows, (i + 1) * ch.rows_per_chunk);
    for (int64_t r = i * ch.rows_per_chunk; r < r_end; ++r) {
      const int64_t n = r / s.OH, oh = r % s.OH;
      const TapRange kh = taps_inside(oh, p.stride_h, p.pad_top, p.dilation_h, s.KH, s.H);
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const T* g = dy + (r * s.OW + ow) * OC;
        if (dbias) {
          for (int64_t j = 0; j < OC; ++j) db[j] += g[j];
        }
        if (!dkernel) continue;
        const TapRange kw = taps_inside(ow, p.stride_w, p.pad_left, p.dilation_w, s.KW, s.W);
        for (int64_t a = kh.begin; a < kh.end; ++a) {
          for (int64_t b = kw.begin; b < kw.end; ++b) {
            multiply_add_row(dk + (a * s.KW + b) * OC,
                             x + ((n * s.H + kh.at(a)) * s.W + kw.at(b)) * C, g, C, M);
          }
        }
      }
    }
  }
  // The chunks' partials added in chunk order.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t j = 0; j < ch.width; ++j) {
    T* target = j < taps_width ? (dkernel ? dkernel + j : nullptr)
                               : (dbias ? dbias + (j - taps_width) : nullptr);
    if (!target) continue;
    T sum = 0;
    for (int64_t i = 0; i < ch.count; ++i) sum += parts[i * ch.width + j];
    *target += sum;
  }
}

#define DLCORE_INSTANTIATE_DEPTHWISE(T)                                                \
  template void depthwise_conv2d_forward<T>(T*, const T*, const T*, const T*,          \
                                            const DepthwiseConv2dShape&);              \
  template void depthwise_conv2d_backward<T>(T*, T*, T*, const T*, const T*, const T*, \
                                             const DepthwiseConv2dShape&);
DLCORE_INSTANTIATE_DEPTHWISE(float)
DLCORE_INSTANTIATE_DEPTHWISE(double)
#undef DLCORE_INSTANTIATE_DEPTHWISE

}  // namespace dlcore
