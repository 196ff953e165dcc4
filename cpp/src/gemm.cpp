#include "dlcore/gemm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <exception>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/simd.hpp"
#include "common/workspace.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

using Eigen::Index;
namespace ei = Eigen::internal;

// Eigen allocates its packing buffers on every product, and glibc hands memory of
// that size back to the system on free: each call then page-faults its ~0.5 MB back
// in, which cost 30% at n=256. Buffers up to this size stay with the thread instead.
constexpr size_t kGemmKeptBytes = size_t(16) << 20;
struct GemmLhsScratch {};
struct GemmRhsScratch {};

// Eigen's level-3 blocking for a row-major destination (Eigen transposes the product,
// so its "lhs" is our b), with the packing buffers taken from the thread's scratch.
// The interface mirrors Eigen::internal::gemm_blocking_space, which Eigen's product
// driver and parallelizer call.
template <typename T>
class KeptBlocking : public ei::level3_blocking<T, T> {
 public:
  KeptBlocking(Index rows, Index cols, Index depth, Index num_threads, bool /*l3_blocking*/) {
    // Destination rows/cols swap places: the driver computes c^T = b^T a^T.
    this->m_mc = cols;
    this->m_nc = rows;
    this->m_kc = depth;
    ei::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, num_threads);
    allocateAll();
  }

  void initParallel(Index rows, Index cols, Index depth, Index num_threads) {
    this->m_mc = cols;
    this->m_nc = rows;
    this->m_kc = depth;
    Index m = this->m_mc;
    ei::computeProductBlockingSizes<T, T, 1>(this->m_kc, m, this->m_nc, num_threads);
    this->m_blockA = nullptr;
    this->m_blockB = nullptr;
  }

  void allocateA() {
    if (!this->m_blockA)
      this->m_blockA = take(kept_buffer<GemmLhsScratch>(), own_a_, this->m_mc * this->m_kc);
  }
  void allocateB() {
    if (!this->m_blockB)
      this->m_blockB = take(kept_buffer<GemmRhsScratch>(), own_b_, this->m_kc * this->m_nc);
  }
  void allocateAll() {
    allocateA();
    allocateB();
  }

 private:
  static T* take(ScratchBuffer& kept, ScratchBuffer& own, Index count) {
    const size_t bytes = sizeof(T) * static_cast<size_t>(count);
    return static_cast<T*>(take_scratch(kept, own, bytes, kGemmKeptBytes));
  }
  ScratchBuffer own_a_, own_b_;  // one-off buffers for very large blocks
};

template <typename T, int Order>
using ConstMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>,
                            Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using RowMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                          Eigen::Unaligned, Eigen::OuterStride<>>;

// A transposed row-major operand is the same memory read column-major.
template <typename T, int Order>
ConstMap<T, Order> operand_map(const MatRef<T>& x, Index rows, Index cols) {
  return ConstMap<T, Order>(x.data, rows, cols, Eigen::OuterStride<>(x.ld));
}

// Products that split_pays() sends to one thread per block of the long side: that side at
// least 4 times the narrow one (the narrow operand, packed by every thread, is then at
// most a quarter of the other), and at least 2**22 multiply-adds (below, one thread's
// product is a few microseconds and Eigen's own choice of team stands).
bool split_pays(Index M, Index N, Index K) {
  const Index lo = std::min(M, N), hi = std::max(M, N);
  return hi >= 4 * lo && static_cast<double>(M) * N * K >= 4194304.0;
}

// c[j] += sum over k of a[k] * b[k, j] for the W whole packets of columns from j, b's rows
// contiguous: W chains abreast, so that each step reads whole cache lines of a row of b and
// the multiply-adds' latency is hidden by the other chains.
template <typename T, int W>
void row_vector_packets(T* c, const T* a, Index a_step, const T* b, Index ldb, Index K, Index j) {
  using Vec = simd::Packet<T>;
  constexpr Index L = simd::kLanes<T>;
  Vec acc[W];
  for (int i = 0; i < W; ++i) acc[i] = simd::zero<T>();
  const T* bk = b + j;
  for (Index k = 0; k < K; ++k, bk += ldb) {
    const Vec ak = simd::broadcast(a[k * a_step]);
    for (int i = 0; i < W; ++i) acc[i] = simd::madd(ak, simd::load(bk + i * L), acc[i]);
  }
  for (int i = 0; i < W; ++i) {
    T* ci = c + j + i * L;
    simd::store(ci, ei::padd(simd::load(ci), acc[i]));
  }
}

// c[j] += sum over k of a[k] * b[k, j] for j in [j0, j1), b's rows contiguous (a Dense
// layer's product at batch 1): every output is one multiply-add chain in k order, held in
// a packet's lane whichever block it falls in, so its bits follow neither the split nor
// the thread count. The chains run 8 packets abreast, and what is left of the block 4, 2
// and 1 abreast (a thread's half of 128 columns is 4 packets of 16 floats with AVX-512:
// one chain at a time, it waited on every multiply-add's latency).
template <typename T>
void row_vector_columns(T* c, const T* a, Index a_step, const T* b, Index ldb, Index K, Index j0,
                        Index j1) {
  using Vec = simd::Packet<T>;
  constexpr Index L = simd::kLanes<T>;
  Index j = j0;
  for (; j + 8 * L <= j1; j += 8 * L) row_vector_packets<T, 8>(c, a, a_step, b, ldb, K, j);
  if (j + 4 * L <= j1) {
    row_vector_packets<T, 4>(c, a, a_step, b, ldb, K, j);
    j += 4 * L;
  }
  if (j + 2 * L <= j1) {
    row_vector_packets<T, 2>(c, a, a_step, b, ldb, K, j);
    j += 2 * L;
  }
  if (j + L <= j1) {
    row_vector_packets<T, 1>(c, a, a_step, b, ldb, K, j);
    j += L;
  }
  if (j < j1) {  // the last packet, partial
    const Index n = j1 - j;
    Vec acc = simd::zero<T>();
    const T* bk = b + j;
    for (Index k = 0; k < K; ++k, bk += ldb)
      acc = simd::madd(simd::broadcast(a[k * a_step]), simd::load_first(bk, n), acc);
    simd::store_first(c + j, ei::padd(simd::load_first(c + j, n), acc), n);
  }
}

// A row vector times a matrix with contiguous rows, c (1, N) += a (1, K) @ b (K, N): Eigen's
// GEMV ran it on one thread, reading all of b through one core (a Dense layer's
// 1600x128 kernel, 800 KB, is more than that core's L2). Blocks of whole packets of
// columns go to the threads instead, each reading its own part of b, the same part at
// every call, and the results have the same bits at any thread count.
template <typename T>
void row_vector_product(T* c, const T* a, Index a_step, const T* b, Index ldb, Index N, Index K) {
  constexpr Index L = simd::kLanes<T>;
  const Index packets = (N + L - 1) / L;
  int threads = 1;
#ifdef _OPENMP
  // Below about 2**16 multiply-adds one thread's product takes a few microseconds,
  // less than waking a team.
  if (omp_get_level() == 0 && static_cast<double>(N) * K >= 65536.0)
    threads = static_cast<int>(std::min<Index>(get_num_threads(), packets));
#endif
  if (threads <= 1) {
    row_vector_columns(c, a, a_step, b, ldb, K, 0, N);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const Index P = omp_get_num_threads(), t = omp_get_thread_num();
    const Index begin = std::min(N, packets * t / P * L);
    const Index end = std::min(N, packets * (t + 1) / P * L);
    if (begin < end) row_vector_columns(c, a, a_step, b, ldb, K, begin, end);
  }
}

template <typename T, int LhsOrder, int RhsOrder>
void blocked_product(T* c, Index ldc, const MatRef<T>& a, const MatRef<T>& b, Index M, Index N,
                     Index K) {
  const auto A = operand_map<T, LhsOrder>(a, M, K);
  const auto B = operand_map<T, RhsOrder>(b, K, N);
  RowMap<T> C(c, M, N, Eigen::OuterStride<>(ldc));
  if (M + N + K < 20) {
    // Tiny products: one sum per element, in k order. Eigen's coefficient-based product
    // computes the elements before the destination's first aligned packet apart from
    // the rest, and they round differently, so its bits followed the result's address.
    for (Index i = 0; i < M; ++i) {
      for (Index j = 0; j < N; ++j) {
        T sum = A(i, 0) * B(0, j);
        for (Index k = 1; k < K; ++k) sum += A(i, k) * B(k, j);
        C(i, j) += sum;
      }
    }
    return;
  }
  if (M == 1 && RhsOrder == Eigen::RowMajor) {
    row_vector_product(c, a.data, LhsOrder == Eigen::RowMajor ? 1 : a.ld, b.data, b.ld, N, K);
    return;
  }
  if (M == 1 || N == 1) {
    C.noalias() += A * B;  // the other matrix-vector products: Eigen's GEMV
    return;
  }
  using Gemm = ei::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                 Eigen::RowMajor, 1>;
  using Functor = ei::gemm_functor<T, Index, Gemm, ConstMap<T, LhsOrder>, ConstMap<T, RhsOrder>,
                                   RowMap<T>, KeptBlocking<T>>;
#ifdef _OPENMP
  const int threads = get_num_threads();
  if (threads > 1 && omp_get_level() == 0 && split_pays(M, N, K)) {
    // One side is narrow (a Dense layer's batch of 32, its 128 units, a 10-class
    // output): each thread multiplies its own block of the long side's rows or columns
    // alone, packing the narrow operand for itself. Eigen's parallel product instead
    // packs the operands' blocks together and waits on the other threads' packing at
    // every block of K, which for these shapes cost more than it shared (32x1600 @
    // 1600x128: 1.7x slower on 2 threads than this split; the one-thread product was
    // faster than its 2-thread one when the VM's second core answered late).
    // Each thread's product is the one-thread product's over its block, with the same
    // blocking (sized for the whole product), and its block starts on a register block
    // of Eigen's kernel: C's columns are the rows the kernel takes mr at a time (it
    // multiplies C^T = B^T A^T), C's rows its columns, nr at a time. Every value then
    // goes through the one-thread product's arithmetic: the same bits at any thread
    // count.
    const bool rows = M >= N;
    const Index total = rows ? M : N;
    const Index align = rows ? Index(ei::gebp_traits<T, T>::nr) : Index(ei::gebp_traits<T, T>::mr);
    const Index blocks = (total + align - 1) / align;
    if (blocks >= 2) {
      std::exception_ptr error;  // an allocation's failure, raised after the team
#pragma omp parallel num_threads(int(std::min<Index>(threads, blocks)))
      {
        const Index P = omp_get_num_threads(), t = omp_get_thread_num();
        const Index begin = std::min(total, blocks * t / P * align);
        const Index end = std::min(total, blocks * (t + 1) / P * align);
        try {
          if (begin < end) {
            KeptBlocking<T> own(M, N, K, 1, true);
            Functor product(A, B, C, T(1), own);
            if (rows) {
              product(begin, end - begin, 0, N);
            } else {
              product(0, M, begin, end - begin);
            }
          }
        } catch (...) {
#pragma omp critical(dlcore_gemm_split)
          if (!error) error = std::current_exception();
        }
      }
      if (error) std::rethrow_exception(error);
      return;
    }
  }
#endif
  KeptBlocking<T> blocking(M, N, K, 1, true);
#ifdef _OPENMP
  // Inside any parallel region the product is one thread's, even in a team of one: a
  // team of one is not "active", so Eigen would start a team of its own, sized by a
  // thread count that another Python thread may be changing, and a deep product's
  // blocking (so its bits) would follow it. The same holds when this call read one
  // thread: Eigen reads its own count again, and a set_num_threads(3) from another
  // Python thread in between would give this one-thread call a 3-thread team.
  if (omp_get_level() > 0 || threads <= 1) {
    Functor(A, B, C, T(1), blocking)(0, M, 0, N);
    return;
  }
#endif
  ei::parallelize_gemm<true>(Functor(A, B, C, T(1), blocking), M, N, K, /*transpose=*/true);
}

}  // namespace

GemmShape GemmShape::from_operands(const char* fn, int64_t a_rows, int64_t a_cols, bool trans_a,
                                   int64_t b_rows, int64_t b_cols, bool trans_b) {
  const int64_t M = trans_a ? a_cols : a_rows;
  const int64_t Ka = trans_a ? a_rows : a_cols;
  const int64_t Kb = trans_b ? b_cols : b_rows;
  const int64_t N = trans_b ? b_rows : b_cols;
  if (Ka != Kb) {
    fail(fn, ": inner dimensions differ: a has shape ", shape_str({a_rows, a_cols}),
         " (trans_a=", trans_a ? "True" : "False", ", so K=", Ka, ") and b has shape ",
         shape_str({b_rows, b_cols}), " (trans_b=", trans_b ? "True" : "False", ", so K=", Kb,
         "); expected equal K");
  }
  checked_mul(M, N, fn);
  return GemmShape{M, N, Ka};
}

template <typename T>
void gemm_accumulate(MutMatRef<T> c, MatRef<T> a, MatRef<T> b, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0 || K == 0) return;
  if (c.trans) {  // c^T (N,M) += b^T @ a^T keeps the destination row-major
    gemm_accumulate<T>({c.data, c.ld, false}, b.transposed(), a.transposed(), N, M, K);
    return;
  }
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  if (!a.trans && !b.trans) blocked_product<T, R, R>(c.data, c.ld, a, b, M, N, K);
  if (!a.trans && b.trans) blocked_product<T, R, C>(c.data, c.ld, a, b, M, N, K);
  if (a.trans && !b.trans) blocked_product<T, C, R>(c.data, c.ld, a, b, M, N, K);
  if (a.trans && b.trans) blocked_product<T, C, C>(c.data, c.ld, a, b, M, N, K);
}

template <typename T>
void gemm_forward(MutMatRef<T> c, MatRef<T> a, MatRef<T> b, const GemmShape& s, bool accumulate) {
  if (s.M == 0 || s.N == 0) return;
  if (!accumulate) {
    RowMap<T> C(c.data, c.trans ? s.N : s.M, c.trans ? s.M : s.N, Eigen::OuterStride<>(c.ld));
    C.setZero();
  }
  gemm_accumulate(c, a, b, s.M, s.N, s.K);
}

template <typename T>
void gemm_backward(MutMatRef<T> da, MutMatRef<T> db, MatRef<T> dc, MatRef<T> a, MatRef<T> b,
                   const GemmShape& s) {
  if (da.data) gemm_accumulate(da, dc, b.transposed(), s.M, s.K, s.N);
  if (db.data) gemm_accumulate(db, a.transposed(), dc, s.K, s.N, s.M);
}

#define DLCORE_INSTANTIATE_GEMM(T)                                                                 \
  template void gemm_accumulate<T>(MutMatRef<T>, MatRef<T>, MatRef<T>, int64_t, int64_t, int64_t); \
  template void gemm_forward<T>(MutMatRef<T>, MatRef<T>, MatRef<T>, const GemmShape&, bool);       \
  template void gemm_backward<T>(MutMatRef<T>, MutMatRef<T>, MatRef<T>, MatRef<T>, MatRef<T>,      \
                                 const GemmShape&);
DLCORE_INSTANTIATE_GEMM(float)
DLCORE_INSTANTIATE_GEMM(double)
#undef DLCORE_INSTANTIATE_GEMM

}  // namespace dlcore
