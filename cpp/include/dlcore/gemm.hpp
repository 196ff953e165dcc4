// GEMM: c (M,N) = op(a) (M,K) @ op(b) (K,N), on Eigen's blocked, OpenMP-threaded product.
#pragma once

#include <cstdint>

namespace dlcore {

// A read-only operand as the product sees it. The stored matrix is row-major with
// leading dimension ld (the distance between rows, as in BLAS); when trans is set the
// operand is the transpose of what is stored. A Fortran-ordered array is a transposed
// C-ordered one, so it is used in place by flipping trans.
template <typename T>
struct MatRef {
  const T* data;
  int64_t ld;
  bool trans;

  MatRef<T> transposed() const { return {data, ld, !trans}; }
};

// The same for an output.
template <typename T>
struct MutMatRef {
  T* data;
  int64_t ld;
  bool trans;
};

struct GemmShape {
  int64_t M, N, K;

  // Validates the operands of op(a) @ op(b), given their stored shapes and transpose
  // flags as the caller sees them; throws std::invalid_argument naming both shapes.
  static GemmShape from_operands(const char* fn, int64_t a_rows, int64_t a_cols, bool trans_a,
                                 int64_t b_rows, int64_t b_cols, bool trans_b);
};

// c (M,N) += a (M,K) @ b (K,N). The building block every kernel uses: Eigen's blocked
// product with packing buffers kept per thread across calls (no allocation per call).
// Threads: Eigen's parallel product, or one thread when called inside a parallel region.
template <typename T>
void gemm_accumulate(MutMatRef<T> c, MatRef<T> a, MatRef<T> b, int64_t M, int64_t N, int64_t K);

// c (M,N) = a (M,K) @ b (K,N), or c += a @ b when accumulate is set. K = 0 gives zeros.
template <typename T>
void gemm_forward(MutMatRef<T> c, MatRef<T> a, MatRef<T> b, const GemmShape& s,
                  bool accumulate = false);

// dc (M,N) -> da (M,K) += dc @ b^T, db (K,N) += a^T @ dc. Accumulates into gradients
// the caller zeroed; a null da.data or db.data skips that gradient.
template <typename T>
void gemm_backward(MutMatRef<T> da, MutMatRef<T> db, MatRef<T> dc, MatRef<T> a, MatRef<T> b,
                   const GemmShape& s);

}  // namespace dlcore
