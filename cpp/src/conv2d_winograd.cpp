#include "conv2d_winograd.hpp"

#include <algorithm>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/packed_panels.hpp"
#include "common/simd.hpp"
#include "common/workspace.hpp"
#include "dlcore/gemm.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

// F(2x2, 3x3): a 4x4 input tile d and a 3x3 filter g give the 2x2 outputs
// A^T [(G g G^T) .* (B^T d B)] A: 16 products per channel pair where the direct
// convolution needs 36. Summed over input channels, each of the 16 transformed
// positions k is a GEMM, M_k (tiles, OC) = V_k (tiles, C) @ U_k (C, OC).
constexpr int kTaps = 16;

// A 3x3 stride-1 convolution as these kernels see it: the forward (x -> y), or the input
// gradient (dy -> dx) as the convolution of dy with the kernel rotated 180 degrees and
// its channel axes swapped.
struct WinogradGeometry {
  int64_t N, H, W, C;        // input (N,H,W,C)
  int64_t OH, OW, OC;        // output (N,OH,OW,OC)
  int64_t top, left;         // output (oh, ow) reads input rows oh-top .. oh-top+2 (cols alike)
  int64_t tiles_h, tiles_w;  // 2x2 output tiles of a sample, the last ones partial

  WinogradGeometry(int64_t n, int64_t h, int64_t w, int64_t c, int64_t oh, int64_t ow, int64_t oc,
                   int64_t t, int64_t l)
      : N(n),
        H(h),
        W(w),
        C(c),
        OH(oh),
        OW(ow),
        OC(oc),
        top(t),
        left(l),
        tiles_h((oh + 1) / 2),
        tiles_w((ow + 1) / 2) {}

  int64_t tiles() const { return N * tiles_h * tiles_w; }
};

WinogradGeometry forward_geometry(const Conv2dShape& s) {
  return {s.N, s.H, s.W, s.C, s.OH, s.OW, s.OC, s.p.pad_top, s.p.pad_left};
}

// dx (ih, iw) = sum over taps (a, b) of dy (ih - 2 + pad_top + a, ...) @ kernel (2-a, 2-b)^T;
// with padding over 2 the offset is negative, which the tile bounds handle like any other.
WinogradGeometry input_grad_geometry(const Conv2dShape& s) {
  return {s.N, s.OH, s.OW, s.OC, s.H, s.W, s.C, 2 - s.p.pad_top, 2 - s.p.pad_left};
}

// A block of tiles: its transformed inputs V (tiles, 16, Cin) and products M (tiles, 16,
// Cout) up to 1 MB, 32 to 128 tiles. Measured, 2 threads, GFLOP/s at 32 / 64 / 128 / 256
// tiles a block: 64x26x26x32->64 226 / 221 / 235 / 239, 32x56x56x64->64 274 / 283 / 293 /
// 295, 16x28x28x128->128 299 / 315 / 316 / 294, 8x14x14x256->256 266 / 251 / 250 / 238,
// 32x28x28x32->32 209 / 206 / 205 / 199 (+-5% run to run), with Eigen's GEMM for the
// products, which packed U_k again for every block. The products now read U_k packed
// once per call (packed_kernel), and blocks of 16-64 / 32-128 / 32-256 / 64-256 tiles
// (256 KB to 4 MB) measured the same within the noise on 1x13x13x32->64 and the shapes
// above, so the bounds stayed.
constexpr int64_t kBlockBytes = 1 << 20;

// Tiles of a block: as above, then evened out so that every thread gets as many blocks
// of the same size (a 14x14 sample alone is 49 tiles: one block would idle a thread).
int64_t block_tiles(int64_t tiles, int64_t in_channels, int64_t out_channels, size_t elem,
                    int threads) {
  const int64_t tile_bytes = kTaps * (in_channels + out_channels) * static_cast<int64_t>(elem);
  const int64_t most = std::clamp<int64_t>(kBlockBytes / tile_bytes, 32, 128);
  const int64_t blocks = ((tiles + most - 1) / most + threads - 1) / threads * threads;
  return std::max<int64_t>((tiles + blocks - 1) / blocks, 1);
}

// ------------------------------------------------------------------ the three transforms
// Written once for a vector of channels and for one channel (the tail): V is either.

// u (4x4) = G g G^T for a 3x3 filter g, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
template <typename V, typename T>
void filter_transform(V (&u)[kTaps], const V (&g)[9], T half) {
  V t[4][3];  // G g
  for (int j = 0; j < 3; ++j) {
    t[0][j] = g[j];
    t[1][j] = (g[j] + g[3 + j] + g[6 + j]) * half;
    t[2][j] = (g[j] - g[3 + j] + g[6 + j]) * half;
    t[3][j] = g[6 + j];
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = t[i][0];
    u[4 * i + 1] = (t[i][0] + t[i][1] + t[i][2]) * half;
    u[4 * i + 2] = (t[i][0] - t[i][1] + t[i][2]) * half;
    u[4 * i + 3] = t[i][2];
  }
}

// d (4x4) = B^T d B in place, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <typename V>
void input_transform(V (&d)[kTaps]) {
  for (int i = 0; i < 4; ++i) {  // rows: d B
    V* r = d + 4 * i;
    const V r0 = r[0] - r[2], r1 = r[1] + r[2], r2 = r[2] - r[1], r3 = r[1] - r[3];
    r[0] = r0, r[1] = r1, r[2] = r2, r[3] = r3;
  }
  for (int j = 0; j < 4; ++j) {  // columns: B^T (d B)
    const V c0 = d[j] - d[8 + j], c1 = d[4 + j] + d[8 + j];
    const V c2 = d[8 + j] - d[4 + j], c3 = d[4 + j] - d[12 + j];
    d[j] = c0, d[4 + j] = c1, d[8 + j] = c2, d[12 + j] = c3;
  }
}

// y (2x2) = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1].
template <typename V>
void output_transform(V (&y)[4], const V (&m)[kTaps]) {
  V r[2][4];  // A^T m
  for (int j = 0; j < 4; ++j) {
    r[0][j] = m[j] + m[4 + j] + m[8 + j];
    r[1][j] = m[4 + j] - m[8 + j] - m[12 + j];
  }
  for (int i = 0; i < 2; ++i) {
    y[2 * i] = r[i][0] + r[i][1] + r[i][2];
    y[2 * i + 1] = r[i][1] - r[i][2] - r[i][3];
  }
}

// The adjoints of the filter and output transforms, for the kernel gradient.

// g (3x3) = G^T u G for a 4x4 u: the gradient of G g G^T.
template <typename V, typename T>
void filter_transform_adjoint(V (&g)[9], const V (&u)[kTaps], T half) {
  V t[3][4];  // G^T u
  for (int j = 0; j < 4; ++j) {
    const V mid = (u[4 + j] + u[8 + j]) * half;
    t[0][j] = u[j] + mid;
    t[1][j] = (u[4 + j] - u[8 + j]) * half;
    t[2][j] = mid + u[12 + j];
  }
  for (int i = 0; i < 3; ++i) {
    const V mid = (t[i][1] + t[i][2]) * half;
    g[3 * i] = t[i][0] + mid;
    g[3 * i + 1] = (t[i][1] - t[i][2]) * half;
    g[3 * i + 2] = mid + t[i][3];
  }
}

// m (4x4) = A y A^T for a 2x2 y: the gradient of A^T m A.
template <typename V>
void output_transform_adjoint(V (&m)[kTaps], const V (&y)[4]) {
  const V r[4][2] = {
      {y[0], y[1]}, {y[0] + y[2], y[1] + y[3]}, {y[0] - y[2], y[1] - y[3]}, {-y[2], -y[3]}};  // A y
  for (int i = 0; i < 4; ++i) {
    m[4 * i] = r[i][0];
    m[4 * i + 1] = r[i][0] + r[i][1];
    m[4 * i + 2] = r[i][0] - r[i][1];
    m[4 * i + 3] = -r[i][1];
  }
}

// f(lanes, c) over the channels c in [0, n): a vector of them at a time (lanes a
// simd::Vec<T>), then one at a time (lanes a T).
template <typename T, typename F>
void over_channels(int64_t n, F&& f) {
  constexpr int L = simd::kLanes<T>;
  int64_t c = 0;
  for (; c + L <= n; c += L) f(simd::Vec<T>::zero(), c);
  for (; c < n; ++c) f(T{}, c);
}

// ------------------------------------------------------------------ the tile pipeline

// Where the transformed kernel's values go: value (k, c, oc) of U (16, C, OC) at
// k * plane + (oc / width) * C * width + c * width + oc % width. width = OC is U plainly
// (C, OC) per position; width = kPanel is the packed panels of U_k (packed_panels.hpp)
// that the forward's products read. A plane is one cache line longer than its values
// need: planes a multiple of 4 KB apart (C * OC = 32 x 64 is 8 KB) put a filter's 16
// stores in one L1 set, which has 8 ways.
template <typename T>
struct TapLayout {
  int64_t C, OC, width, plane;

  TapLayout(int64_t c, int64_t oc, int64_t w) : C(c), OC(oc), width(w) {
    const int64_t panels = (OC + width - 1) / width;
    constexpr int64_t line = 64 / sizeof(T);
    plane = (panels * C * width + line - 1) / line * line + line;
  }
  int64_t size() const { return kTaps * plane; }
  int64_t at(int64_t c, int64_t oc) const {
    return oc / width * C * width + c * width + oc % width;
  }
};

// U = G g G^T for each filter g = kernel (:, :, c, oc0 + j) of a kernel with OC filters
// per channel, j in [0, to.OC), laid out by `to`; the columns a last partial panel pads
// are zero. oc0 is a multiple of the lanes, so every filter meets the arithmetic (vector
// or scalar lanes) it meets in a transform of all OC. On `threads` threads (1: the
// calling thread alone, inside a parallel region too).
template <typename T>
void transform_kernel(T* U, const TapLayout<T>& to, const T* kernel, int64_t OC, int64_t oc0,
                      int threads) {
  const int64_t C = to.C, width = to.OC;
  if (width % to.width) {
    const int64_t first = width / to.width * C * to.width;
    for (int k = 0; k < kTaps; ++k) std::fill_n(U + k * to.plane + first, C * to.width, T(0));
  }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t c = 0; c < C; ++c) {
    over_channels<T>(width, [&](auto lanes, int64_t j) {
      using V = decltype(lanes);
      V g[9], u[kTaps];
      const T* filter = kernel + c * OC + oc0 + j;
      for (int k = 0; k < 9; ++k) g[k] = simd::load_as<V>(filter + k * C * OC);
      filter_transform(u, g, T(0.5));
      T* dst = U + to.at(c, j);  // a vector of lanes never crosses a panel
      for (int k = 0; k < kTaps; ++k) simd::store_as(dst + k * to.plane, u[k]);
    });
  }
}

// Sample and first output row and column of tile t.
struct Tile {
  int64_t n, oh, ow;
};
Tile tile_at(const WinogradGeometry& g, int64_t t) {
  const int64_t per_sample = g.tiles_h * g.tiles_w, r = t % per_sample;
  return {t / per_sample, 2 * (r / g.tiles_w), 2 * (r % g.tiles_w)};
}

// V (m, 16, C) = B^T d B for the input tiles d of tiles t0 .. t0+m-1; cells outside the
// input read `zeros` (C of them), so the channel loop has no bounds to check.
template <typename T>
void transform_inputs(T* V, const T* in, const T* zeros, const WinogradGeometry& g, int64_t t0,
                      int64_t m) {
  const int64_t C = g.C;
  for (int64_t t = 0; t < m; ++t) {
    const Tile tile = tile_at(g, t0 + t);
    const T* cell[kTaps];
    for (int i = 0; i < 4; ++i) {
      const int64_t ih = tile.oh - g.top + i;
      for (int j = 0; j < 4; ++j) {
        const int64_t iw = tile.ow - g.left + j;
        const bool inside = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
        cell[4 * i + j] = inside ? in + ((tile.n * g.H + ih) * g.W + iw) * C : zeros;
      }
    }
    T* v = V + t * kTaps * C;
    over_channels<T>(C, [&](auto lanes, int64_t c) {
      using Vec = decltype(lanes);
      Vec d[kTaps];
      for (int k = 0; k < kTaps; ++k) d[k] = simd::load_as<Vec>(cell[k] + c);
      input_transform(d);
      for (int k = 0; k < kTaps; ++k) simd::store_as(v + k * C + c, d[k]);
    });
  }
}

// The cells (channel 0) of the 2x2 outputs of a tile in out (N,OH,OW,OC), null where
// the tile hangs over the edge of out.
template <typename T>
void output_cells(T* (&cell)[4], T* out, const WinogradGeometry& g, const Tile& tile) {
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 2; ++j) {
      const int64_t oh = tile.oh + i, ow = tile.ow + j;
      const bool inside = oh < g.OH && ow < g.OW;
      cell[2 * i + j] = inside ? out + ((tile.n * g.OH + oh) * g.OW + ow) * g.OC : nullptr;
    }
  }
}

// The outputs of tiles t0 .. t0+m-1 from their products M (m, 16, width) for the output
// channels [oc0, oc0 + width) (all of them by default): A^T m A, plus bias (may be null)
// into out, or added to out when accumulate is set. The last row and column of tiles may
// hang over the output; those cells are not written.
template <typename T>
void transform_outputs(T* out, const T* M, const T* bias, bool accumulate,
                       const WinogradGeometry& g, int64_t t0, int64_t m, int64_t oc0 = 0,
                       int64_t width = -1) {
  if (width < 0) width = g.OC;
  for (int64_t t = 0; t < m; ++t) {
    T* cell[4];
    output_cells(cell, out, g, tile_at(g, t0 + t));
    const T* mt = M + t * kTaps * width;
    over_channels<T>(width, [&](auto lanes, int64_t j) {
      using Vec = decltype(lanes);
      const int64_t oc = oc0 + j;
      Vec s[kTaps], y[4];
      for (int k = 0; k < kTaps; ++k) s[k] = simd::load_as<Vec>(mt + k * width + j);
      output_transform(y, s);
      const Vec b = bias ? simd::load_as<Vec>(bias + oc) : simd::zero_as<Vec>();
      for (int q = 0; q < 4; ++q) {
        if (!cell[q]) continue;
        simd::store_as(cell[q] + oc, (accumulate ? simd::load_as<Vec>(cell[q] + oc) : b) + y[q]);
      }
    });
  }
}

// Transformed position k of the kernel rotated 180 degrees: rotating g reverses its rows
// and columns, and G J = P G with P swapping rows 0 and 3 of G, so G rot(g) G^T is
// G g G^T with rows 0 and 3, and columns 0 and 3, swapped.
int rotated_tap(int k) {
  const int swap[4] = {3, 1, 2, 0};
  return 4 * swap[k / 4] + swap[k % 4];
}

struct TransformedKernelScratch {};
struct ZeroRowScratch {};

// The products' right operand U_k (Cin, Cout), for k in [0, 16), as packed panels
// (common/packed_panels.hpp) in the planes of a TapLayout.
template <typename T>
Panels<T> tap_panels(const WinogradGeometry& g) {
  return {g.C, 1, 0, 0, g.OC};
}

template <typename T>
TapLayout<T> packed_taps(const WinogradGeometry& g) {
  return {g.C, g.OC, kPanel<T>};
}

// The calling thread's transformed kernel as the products read it (packed_taps): for the
// forward transformed straight into the panels; for the input gradient, which reads the
// forward's U_k (C, OC) transposed at the rotated position, transformed plainly and then
// packed. Grown here, before any parallel region.
template <typename T>
const T* packed_kernel(const T* kernel, int64_t C, int64_t OC, const WinogradGeometry& g,
                       bool input_grad) {
  const TapLayout<T> to = packed_taps<T>(g);
  ScratchBuffer& buffer = kept_buffer<TransformedKernelScratch>();
  if (!input_grad) {
    T* packed = buffer.get<T>(to.size());
    transform_kernel(packed, to, kernel, OC, 0, get_num_threads());
    return packed;
  }
  const TapLayout<T> plain(C, OC, OC);
  T* U = buffer.get<T>(plain.size() + to.size());
  T* packed = U + plain.size();
  transform_kernel(U, plain, kernel, OC, 0, get_num_threads());
  const Panels<T> L = tap_panels<T>(g);
  const int64_t count = kTaps * L.count();
#pragma omp parallel for num_threads(get_num_threads()) schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const int64_t k = i / L.count(), p = i % L.count();
    // b (r, j) = U_rot(k) (j, r): the forward's (C, OC) transposed
    pack_panels(packed + k * to.plane, U + rotated_tap(int(k)) * plain.plane, 1, OC, L, p, p + 1);
  }
  return packed;
}

// `count` zeros for the cells outside the input or output, kept by the calling thread.
template <typename T>
const T* zero_row(int64_t count) {
  T* zeros = kept_buffer<ZeroRowScratch>().get<T>(count);
  std::fill_n(zeros, count, T(0));
  return zeros;
}

// dM (m, 16, OC) = A dy A^T for the output gradients dy of tiles t0 .. t0+m-1, zero
// where a tile hangs over y (`zeros`: OC of them).
template <typename T>
void transform_output_grads(T* dM, const T* dy, const T* zeros, const WinogradGeometry& g,
                            int64_t t0, int64_t m) {
  const int64_t OC = g.OC;
  for (int64_t t = 0; t < m; ++t) {
    const T* cell[4];
    output_cells(cell, dy, g, tile_at(g, t0 + t));
    for (const T*& c : cell) c = c ? c : zeros;
    T* mt = dM + t * kTaps * OC;
    over_channels<T>(OC, [&](auto lanes, int64_t oc) {
      using Vec = decltype(lanes);
      Vec d[4], u[kTaps];
      for (int q = 0; q < 4; ++q) d[q] = simd::load_as<Vec>(cell[q] + oc);
      output_transform_adjoint(u, d);
      for (int k = 0; k < kTaps; ++k) simd::store_as(mt + k * OC + oc, u[k]);
    });
  }
}

// dkernel (3,3,C,OC) += G^T dU G, dU (16, C, OC) the sum of the threads' partials, added
// in thread order (bit-identical runs for a thread count).
template <typename T>
void transform_kernel_grad(T* dkernel, T* const* partials, int threads, int64_t C, int64_t OC) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    over_channels<T>(OC, [&](auto lanes, int64_t oc) {
      using V = decltype(lanes);
      V u[kTaps], g[9];
      for (int k = 0; k < kTaps; ++k) {
        const int64_t at = (k * C + c) * OC + oc;
        u[k] = simd::load_as<V>(partials[0] + at);
        for (int t = 1; t < threads; ++t) u[k] += simd::load_as<V>(partials[t] + at);
      }
      filter_transform_adjoint(g, u, T(0.5));
      for (int k = 0; k < 9; ++k) {
        T* at = dkernel + (k * C + c) * OC + oc;
        simd::store_as(at, simd::load_as<V>(at) + g[k]);
      }
    });
  }
}

// out = A^T [U .* (B^T d B)] A (+ bias) over every tile, one block of tiles per
// iteration: the inputs transformed into V, the 16 products M_k = V_k @ U_k, the outputs
// transformed into out (added to it with accumulate). Parallel over blocks, each thread
// with its own V and M (single-threaded products inside the region). U holds the 16
// U_k (Cin, Cout) as packed panels (packed_kernel): packed once per call, where a
// general GEMM would pack U_k again for every block's product.
template <typename T>
void winograd_tiles(T* out, const T* in, const T* U, const T* bias, const WinogradGeometry& g,
                    bool accumulate) {
  const int64_t Cin = g.C, Cout = g.OC, tiles = g.tiles();
  const int threads = get_num_threads();
  const int64_t block = block_tiles(tiles, Cin, Cout, sizeof(T), threads);
  const Panels<T> L = tap_panels<T>(g);
  const int64_t plane = packed_taps<T>(g).plane;
  const T* zeros = zero_row<T>(std::max(Cin, Cout));
  T* const* work = thread_workspace<T>(kTaps * block * (Cin + Cout), threads);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t0 = 0; t0 < tiles; t0 += block) {
    const int64_t m = std::min(block, tiles - t0);
    T* V = work[thread_index()];
    T* M = V + kTaps * block * Cin;
    transform_inputs(V, in, zeros, g, t0, m);
    for (int k = 0; k < kTaps; ++k) {
      // V_k and M_k are rows k, k+16, ... of V (16m, Cin) and M (16m, Cout): their
      // leading dimensions are 16 rows, and no transform has to gather them.
      panel_product<T>(M + k * Cout, kTaps * Cout, nullptr, 0, V + k * Cin, kTaps * Cin, m,
                       U + k * plane, L);
    }
    transform_outputs(out, M, bias, accumulate, g, t0, m);
  }
}

// Tiles per thread below which the forward splits the output channels among the threads
// rather than the tiles: a batch of one 13x13 image is 36 tiles, 18 a thread. Split by
// tiles, the threads transform the kernel together and then each reads all of it, half
// from the other core's cache, after a barrier: 2 threads took 0.8 of one thread's time
// there, and longer than one at 4 tiles.
constexpr int64_t kColumnSplitTiles = 32;

template <typename T>
bool columns_split_pays(const WinogradGeometry& g, int threads) {
  return threads > 1 && g.tiles() < kColumnSplitTiles * threads && panels_for<T>(g.OC) >= threads;
}

// The forward split by output channels: each thread takes whole panels of them, and
// transforms its own filters, every input tile (each thread again: a tenth of the work
// of its products at 32 -> 64 channels), its products and its outputs, with no barrier
// and no operand shared. Every value goes through the arithmetic of winograd_tiles (its
// panels, lanes and blocks of tiles start where theirs do), so the bits are the same.
template <typename T>
void winograd_columns(T* out, const T* in, const T* kernel, const T* bias,
                      const WinogradGeometry& g, bool accumulate, int threads) {
  const int64_t Cin = g.C, Cout = g.OC, tiles = g.tiles(), panels = panels_for<T>(Cout);
  const int64_t block = block_tiles(tiles, Cin, Cout, sizeof(T), 1);
  const int64_t widest = (panels + threads - 1) / threads * kPanel<T>;
  const TapLayout<T> most(Cin, widest, kPanel<T>);
  const T* zeros = zero_row<T>(std::max(Cin, Cout));
  T* const* work = thread_workspace<T>(most.size() + kTaps * block * (Cin + widest), threads);
#pragma omp parallel num_threads(threads)
  {
    // The parts are cut for `threads`; a smaller team than asked for takes them in turn,
    // so no part is wider than the workspace's widest.
    const int64_t P = team_size();
    for (int64_t q = thread_index(); q < threads; q += P) {
      const int64_t oc0 = panels * q / threads * kPanel<T>;
      const int64_t oc1 = std::min(Cout, panels * (q + 1) / threads * kPanel<T>);
      const int64_t width = oc1 - oc0;
      if (width <= 0) continue;
      const TapLayout<T> to(Cin, width, kPanel<T>);
      T* U = work[thread_index()];  // first: the panels' aligned loads need its 64-byte start
      T* V = U + most.size();
      T* M = V + kTaps * block * Cin;
      transform_kernel(U, to, kernel, Cout, oc0, 1);
      const Panels<T> L{Cin, 1, 0, 0, width};
      for (int64_t t0 = 0; t0 < tiles; t0 += block) {
        const int64_t m = std::min(block, tiles - t0);
        transform_inputs(V, in, zeros, g, t0, m);
        for (int k = 0; k < kTaps; ++k) {
          panel_product<T>(M + k * width, kTaps * width, nullptr, 0, V + k * Cin, kTaps * Cin, m,
                           U + k * to.plane, L);
        }
        transform_outputs(out, M, bias, accumulate, g, t0, m, oc0, width);
      }
    }
  }
}

// dkernel += G^T [sum over tiles of V_k^T dM_k] G: the 16 products dU_k (C, OC) +=
// V_k^T @ dM_k, with the inputs and output gradients of a block of tiles transformed as
// in the forward. Each thread sums its blocks (a fixed, contiguous range: static
// schedule) into its own dU, reduced in thread order.
template <typename T>
void winograd_kernel_tiles(T* dkernel, const T* dy, const T* x, const WinogradGeometry& g) {
  const int64_t C = g.C, OC = g.OC, tiles = g.tiles(), partial = kTaps * C * OC;
  const int threads = get_num_threads();
  const int64_t block = block_tiles(tiles, C, OC, sizeof(T), threads);
  const T* zeros = zero_row<T>(std::max(C, OC));
  T* const* work = thread_workspace<T>(partial + kTaps * block * (C + OC), threads);
  for (int t = 0; t < threads; ++t) std::fill_n(work[t], partial, T(0));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t t0 = 0; t0 < tiles; t0 += block) {
    const int64_t m = std::min(block, tiles - t0);
    T* dU = work[thread_index()];
    T* V = dU + partial;
    T* dM = V + kTaps * block * C;
    transform_inputs(V, x, zeros, g, t0, m);
    transform_output_grads(dM, dy, zeros, g, t0, m);
    for (int k = 0; k < kTaps; ++k) {
      // V_k^T without a transposed copy: rows k, k+16, ... of V read column-major.
      gemm_accumulate<T>({dU + k * C * OC, OC, false}, {V + k * C, kTaps * C, true},
                         {dM + k * OC, kTaps * OC, false}, C, OC, m);
    }
  }
  transform_kernel_grad(dkernel, work, threads, C, OC);
}

}  // namespace

template <typename T>
void winograd_forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s,
                      bool accumulate) {
  const WinogradGeometry g = forward_geometry(s);
  const int threads = get_num_threads();
#ifdef _OPENMP
  if (omp_get_level() == 0 && columns_split_pays<T>(g, threads)) {
    return winograd_columns(y, x, kernel, bias, g, accumulate, threads);
  }
#endif
  winograd_tiles(y, x, packed_kernel(kernel, s.C, s.OC, g, false), bias, g, accumulate);
}

template <typename T>
void winograd_input_grad(T* dx, const T* dy, const T* kernel, const Conv2dShape& s) {
  const WinogradGeometry g = input_grad_geometry(s);
  winograd_tiles(dx, dy, packed_kernel(kernel, s.C, s.OC, g, true), static_cast<const T*>(nullptr),
                 g, true);
}

template <typename T>
void winograd_kernel_grad(T* dkernel, const T* dy, const T* x, const Conv2dShape& s) {
  winograd_kernel_tiles(dkernel, dy, x, forward_geometry(s));
}

#define DLCORE_INSTANTIATE_WINOGRAD(T)                                                           \
  template void winograd_forward<T>(T*, const T*, const T*, const T*, const Conv2dShape&, bool); \
  template void winograd_input_grad<T>(T*, const T*, const T*, const Conv2dShape&);              \
  template void winograd_kernel_grad<T>(T*, const T*, const T*, const Conv2dShape&);
DLCORE_INSTANTIATE_WINOGRAD(float)
DLCORE_INSTANTIATE_WINOGRAD(double)
#undef DLCORE_INSTANTIATE_WINOGRAD

}  // namespace dlcore
