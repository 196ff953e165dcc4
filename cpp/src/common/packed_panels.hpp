// Products against a packed weight operand: the register-tiled micro-kernel of the
// recurrent families (private to the kernel sources; lstm.cpp is the first user).
//
// Why: a recurrent step's product, h_{t-1} (N,U) @ recurrent_kernel, is small, and
// Eigen's GEMM would re-pack the whole weight operand on every call (up to 2 MB per
// thread and step at U=512). The weights do not change across steps, so they are packed
// once per call into panels of kPanel columns stored k-major (K rows of kPanel values),
// and a small register-tiled kernel streams a panel with aligned loads while
// broadcasting the other operand straight from its rows (96-98 GF/s per core on the
// LSTM's step shapes, measured alone).
//
// How a family uses it:
//  1. Describe the columns to pack with Panels: `groups` column groups group_stride
//     apart (an LSTM's 4 gates U apart, a GRU's 3, a SimpleRNN's or a plain GEMM's 1),
//     and in each the columns [col0, col0 + width) - all of them, or one thread's slice
//     from column_slice(). A column index means the same in the source operand and in
//     the product, so a product writes straight into the gate layout.
//  2. pack_panels() once per call: b(k, col) = b[k * ldk + col * ldn], so ldn = 1 packs
//     a (K, cols) row-major operand and ldk = 1 packs its transpose (dx = dz @ W^T
//     without a transposed copy). Panels [first, last) let a team pack one shared
//     operand together; a buffer of Panels::size() values, 64-byte aligned (Workspace).
//  3. panel_product() as often as needed: c = init + a @ packed over the packed
//     columns. init null gives a plain product, init == c accumulates, ldi = 0 repeats
//     one row (a bias, which then needs no initialising pass), any other matrix adds it
//     (a GRU's reset-after candidate keeps its recurrent product apart this way).
//     Single-threaded: call it inside the family's parallel region, one slice of
//     columns or of rows per thread.
// Every value of c goes through the same arithmetic whatever the slice, the rows or
// the thread count, so results are bit-identical for any split of the columns.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "dlcore/checks.hpp"
#include "simd.hpp"

namespace dlcore {
// Internal linkage on purpose: each kernel source gets its own copy, and GCC inlines a
// local function it calls once (the full tiles into panel_product), which it does not
// do for one with external linkage. The copies are a few KB per family.
namespace {

constexpr int kPanelVectors = 2;  // packets per panel row: 6 rows x 2 = 12 accumulators
template <typename T>
constexpr int64_t kPanel = kPanelVectors * simd::kLanes<T>;  // columns of a panel

// The columns [col0, col0 + width) of each of `groups` column groups group_stride apart,
// as panels of kPanel columns over K rows; the last panel of a group is zero-padded.
template <typename T>
struct Panels {
  int64_t K, groups, group_stride, col0, width;

  int64_t per_group() const { return (width + kPanel<T> - 1) / kPanel<T>; }
  int64_t count() const { return groups * per_group(); }
  int64_t size() const { return count() * K * kPanel<T>; }  // values packed
  int64_t column(int64_t p) const {                         // first column of panel p
    return p / per_group() * group_stride + col0 + p % per_group() * kPanel<T>;
  }
  int64_t columns(int64_t p) const {  // columns of panel p in use
    return std::min(kPanel<T>, width - p % per_group() * kPanel<T>);
  }
};

// ---------------------------------------------------------------- threads
// A thread's share of a group's columns [begin, end).
struct ColumnSlice {
  int64_t begin, end;
  int64_t size() const { return end - begin; }
};

// Panels of kPanel columns that `width` columns need.
template <typename T>
int64_t panels_for(int64_t width) {
  return (width + kPanel<T> - 1) / kPanel<T>;
}

// Thread p of P owns the columns [begin, end) of every group. A panel costs the same
// however few of its columns are used, so whole panels are shared out, the spare ones
// to the first threads: the last thread, which gets the partial panel (and a family's
// partial packet), gets fewer.
template <typename T>
ColumnSlice column_slice(int64_t width, int P, int p) {
  const int64_t panels = panels_for<T>(width);
  auto bound = [&](int q) { return std::min(width, (panels * q + P - 1) / P * kPanel<T>); };
  return {bound(p), p + 1 == P ? width : bound(p + 1)};
}

// An upper bound of the packed size of every thread's slices of a K-row operand over a
// team of at most P (each slice pads at most one panel per group): one buffer for all.
// fn names the caller in an overflow's message.
template <typename T>
int64_t packed_bound(const char* fn, int64_t K, int64_t groups, int64_t width, int P) {
  const int64_t panels = groups * (panels_for<T>(width) + P);
  return checked_mul(checked_mul(panels, K, fn), kPanel<T>, fn);
}

// Where thread p's slices start in that buffer.
template <typename T>
int64_t packed_offset(int64_t K, int64_t groups, int64_t width, int P, int p) {
  int64_t off = 0;
  for (int q = 0; q < p; ++q) {
    off += Panels<T>{K, groups, 0, 0, column_slice<T>(width, P, q).size()}.size();
  }
  return off;
}

// ---------------------------------------------------------------- packing
// PacketBlock<Packet> drops the vector type's may_alias attribute, harmlessly; Eigen's
// own headers silence this warning the same way.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
// dst <- panels [first, last) of b, where b(k, col) = b[k * ldk + col * ldn] with either
// ldn = 1 (b's rows run along k) or ldk = 1 (b is stored transposed); padding is 0.
template <typename T>
void pack_panels(T* dst, const T* b, int64_t ldk, int64_t ldn, const Panels<T>& L, int64_t first,
                 int64_t last) {
  using P = simd::Packet<T>;
  constexpr int PS = simd::kLanes<T>;
  constexpr int64_t W = kPanel<T>;
  for (int64_t p = first; p < last; ++p) {
    const int64_t col = L.column(p), n = L.columns(p);
    T* out = dst + p * L.K * W;
    int64_t k = 0;
    if (ldn == 1) {
      for (; k < L.K; ++k) {
        for (int v = 0; v < kPanelVectors; ++v) {
          simd::store_aligned(out + k * W + v * PS,
                              simd::load_first(b + k * ldk + col + v * PS, n - v * PS));
        }
      }
    } else if (n == W) {
      // Transposed: PS x PS blocks through registers. One k at a time would read PS rows
      // of b a few bytes each, and rows 4 KB apart evict each other from L1.
      for (; k + PS <= L.K; k += PS) {
        for (int v = 0; v < kPanelVectors; ++v) {
          Eigen::internal::PacketBlock<P> block;
          for (int r = 0; r < PS; ++r) {
            block.packet[r] = simd::load(b + (col + v * PS + r) * ldn + k);
          }
          Eigen::internal::ptranspose(block);
          for (int r = 0; r < PS; ++r)
            simd::store_aligned(out + (k + r) * W + v * PS, block.packet[r]);
        }
      }
    }
    for (; k < L.K; ++k) {  // what is left of a transposed one, a value at a time
      T* row = out + k * W;
      for (int64_t j = 0; j < n; ++j) row[j] = b[k * ldk + (col + j) * ldn];
      std::fill(row + n, row + W, T(0));
    }
  }
}
#pragma GCC diagnostic pop

template <typename T>
void pack_panels(T* dst, const T* b, int64_t ldk, int64_t ldn, const Panels<T>& L) {
  pack_panels(dst, b, ldk, ldn, L, 0, L.count());
}

// ---------------------------------------------------------------- the micro-kernel
namespace panel_kernel {

constexpr int kRows = 6;                       // rows of a full register tile
constexpr int64_t kRowBlockBytes = 128 << 10;  // rows of `a` kept in L2 per sweep of panels

// One row of a panel's tile: its first n columns (the rest of the panel is padding).
template <typename T>
void load_row(simd::Packet<T>* acc, const T* src, int64_t n) {
  for (int v = 0; v < kPanelVectors; ++v) {
    acc[v] = simd::load_first(src + v * simd::kLanes<T>, n - v * simd::kLanes<T>);
  }
}

template <typename T>
void store_row(T* dst, const simd::Packet<T>* acc, int64_t n) {
  for (int v = 0; v < kPanelVectors; ++v) {
    simd::store_first(dst + v * simd::kLanes<T>, acc[v], n - v * simd::kLanes<T>);
  }
}

// Where NP consecutive panels start in the packed operand and land in the product;
// worked out once per panel, not per tile (it takes integer divisions).
template <typename T, int NP>
struct PanelGroup {
  const T* b[NP];
  int64_t col[NP], ncol[NP];

  PanelGroup(const T* packed, int64_t first, const Panels<T>& L) {
    for (int q = 0; q < NP; ++q) {
      b[q] = packed + (first + q) * L.K * kPanel<T>;
      col[q] = L.column(first + q);
      ncol[q] = L.columns(first + q);
    }
  }
};

// c rows [0, MR) x the group's panels = a @ b over all K + init. init is added at the
// end, after a prefetch at the start: the gates a step accumulates into were written by
// the input projection long before and wait in L3, and loading them up front stalled
// every tile's first FMAs (15% of the LSTM's step products).
template <typename T, int MR, int NP>
void tile(T* c, int64_t ldc, const T* init, int64_t ldi, const T* a, int64_t lda, int64_t K,
          const PanelGroup<T, NP>& g) {
  namespace ei = Eigen::internal;
  using P = simd::Packet<T>;
  constexpr int PS = simd::kLanes<T>, NV = kPanelVectors;
  constexpr int64_t W = kPanel<T>;
  P acc[MR][NP * NV];
  for (int r = 0; r < MR; ++r)
    for (int x = 0; x < NP * NV; ++x) acc[r][x] = simd::zero<T>();
  if (init) {
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NP; ++q) {
        ei::prefetch(init + r * ldi + g.col[q]);
        ei::prefetch(init + r * ldi + g.col[q] + g.ncol[q] - 1);
      }
  }
  for (int64_t k = 0; k < K; ++k) {
    P bk[NP * NV];
    for (int q = 0; q < NP; ++q)
      for (int v = 0; v < NV; ++v) bk[q * NV + v] = simd::load_aligned(g.b[q] + k * W + v * PS);
    for (int r = 0; r < MR; ++r) {
      const P ar = simd::broadcast(a[r * lda + k]);
      for (int x = 0; x < NP * NV; ++x) acc[r][x] = simd::madd(ar, bk[x], acc[r][x]);
    }
  }
  if (init) {
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NP; ++q) {
        P in[NV];
        load_row<T>(in, init + r * ldi + g.col[q], g.ncol[q]);
        for (int v = 0; v < NV; ++v) acc[r][q * NV + v] = ei::padd(acc[r][q * NV + v], in[v]);
      }
  }
  for (int r = 0; r < MR; ++r)
    for (int q = 0; q < NP; ++q) store_row<T>(c + r * ldc + g.col[q], acc[r] + q * NV, g.ncol[q]);
}

// Every panel over MR rows, NP panels at a time.
template <typename T, int MR, int NP>
void sweep(T* c, int64_t ldc, const T* init, int64_t ldi, const T* a, int64_t lda, const T* packed,
           const Panels<T>& L) {
  int64_t p = 0;
  for (; p + NP <= L.count(); p += NP) {
    tile<T, MR, NP>(c, ldc, init, ldi, a, lda, L.K, PanelGroup<T, NP>(packed, p, L));
  }
  for (; p < L.count(); ++p) {
    tile<T, MR, 1>(c, ldc, init, ldi, a, lda, L.K, PanelGroup<T, 1>(packed, p, L));
  }
}

// Calls f(std::integral_constant<int, MR>) for the run-time row count MR in [1, kRows).
template <typename F>
void with_rows(int64_t rows, F&& f) {
  switch (rows) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 4:
      return f(std::integral_constant<int, 4>{});
    case 5:
      return f(std::integral_constant<int, 5>{});
    default:
      return;
  }
}

// Panels per tile for fewer than kRows rows (a small batch; batch 1 is a matrix-vector
// product): wider tiles keep enough independent accumulators (up to 12) to hide the
// FMA latency.
constexpr int short_tile_panels(int rows) {
  return rows == 1 ? 4 : rows == 2 ? 3 : rows == 3 ? 2 : 1;
}

}  // namespace panel_kernel

// c (M, L's columns) = init + a (M,K) @ packed b. init is null (zeros), c itself
// (accumulate) or another matrix; ldi = 0 repeats one row (a bias). Single-threaded.
template <typename T>
void panel_product(T* c, int64_t ldc, const T* init, int64_t ldi, const T* a, int64_t lda,
                   int64_t M, const T* packed, const Panels<T>& L) {
  using namespace panel_kernel;
  if (M < kRows) {
    return with_rows(M, [&](auto rows) {
      sweep<T, rows, short_tile_panels(rows)>(c, ldc, init, ldi, a, lda, packed, L);
    });
  }
  const int64_t fit = kRowBlockBytes / std::max<int64_t>(1, L.K * int64_t(sizeof(T)));
  const int64_t block = std::max<int64_t>(kRows, fit / kRows * kRows);
  for (int64_t r0 = 0; r0 < M; r0 += block) {
    const int64_t r1 = std::min(M, r0 + block);
    for (int64_t p = 0; p < L.count(); ++p) {
      const PanelGroup<T, 1> g(packed, p, L);
      int64_t r = r0;
      for (; r + kRows <= r1; r += kRows) {
        tile<T, kRows, 1>(c + r * ldc, ldc, init ? init + r * ldi : nullptr, ldi, a + r * lda, lda,
                          L.K, g);
      }
      if (r < r1) {
        with_rows(r1 - r, [&](auto rows) {
          tile<T, rows, 1>(c + r * ldc, ldc, init ? init + r * ldi : nullptr, ldi, a + r * lda, lda,
                           L.K, g);
        });
      }
    }
  }
}

}  // namespace
}  // namespace dlcore
