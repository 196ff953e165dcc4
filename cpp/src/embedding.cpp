#include "dlcore/embedding.hpp"

#include <algorithm>
#include <cstring>

#include "common/workspace.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {

EmbeddingShape::EmbeddingShape(const char* fn, const std::vector<int64_t>& idx_shape_, int64_t V_,
                               int64_t D_)
    : idx_shape(idx_shape_), V(V_), D(D_) {
  if (V < 0 || D < 0) {
    fail(fn, ": the table is (", V, ", ", D, "); expected sizes >= 0");
  }
  N = checked_numel(idx_shape, fn);
  std::vector<int64_t> y_shape(idx_shape);
  y_shape.push_back(D);
  checked_numel(y_shape, fn);
}

namespace {

// Below this many copied or added elements one thread is faster than waking a second.
constexpr int64_t kParallelMin = 1 << 15;
// The backward splits the table rows between threads by the number of positions that
// hit them, counted in this many buckets of consecutive rows.
constexpr int64_t kBuckets = 4096;

template <typename I>
[[noreturn]] void bad_index(const char* fn, const I* idx, int64_t p, const EmbeddingShape& s) {
  std::vector<int64_t> at(s.idx_shape.size());
  int64_t rest = p;
  for (size_t k = at.size(); k-- > 0;) {
    at[k] = s.idx_shape[k] ? rest % s.idx_shape[k] : 0;
    rest = s.idx_shape[k] ? rest / s.idx_shape[k] : 0;
  }
  fail(fn, ": argument 'idx' holds ", integer_str(idx[p]), " at position ", shape_str(at),
       "; expected indices in [0, ", s.V, "), the table's rows (input_dim ", s.V, ")");
}

int threads_for(int64_t work) { return work >= kParallelMin ? get_num_threads() : 1; }

// The position of the first index outside [0, V), or N. One thread: a scan of N indices
// costs less than a thread team's barrier (N is D times smaller than the scatter's work).
template <typename I>
int64_t first_bad_index(const I* idx, const EmbeddingShape& s) {
  for (int64_t p = 0; p < s.N; ++p) {
    if (index_outside(idx[p], s.V)) return p;
  }
  return s.N;
}

// Row boundaries of `parts` ranges of table rows with about as many hits each: bounds[k]
// to bounds[k + 1] for part k. Only the work is balanced: the sums do not depend on it.
template <typename I>
void split_rows_by_hits(int64_t* bounds, int64_t* hits, int parts, const I* idx,
                        const EmbeddingShape& s) {
  bounds[0] = 0, bounds[parts] = s.V;
  if (parts == 1) return;
  const int64_t per_bucket = std::max<int64_t>((s.V + kBuckets - 1) / kBuckets, 1);
  const int64_t buckets = (s.V + per_bucket - 1) / per_bucket;
  std::fill(hits, hits + buckets, int64_t(0));
  for (int64_t p = 0; p < s.N; ++p) ++hits[static_cast<int64_t>(idx[p]) / per_bucket];
  int64_t b = 0, seen = 0;
  for (int k = 1; k < parts; ++k) {
    const int64_t target = s.N / parts * k + s.N % parts * k / parts;
    while (b < buckets && seen + hits[b] <= target) seen += hits[b++];
    bounds[k] = std::min(b * per_bucket, s.V);
  }
}

}  // namespace

template <typename T, typename I>
void embedding_forward(T* y, const I* idx, const T* table, const EmbeddingShape& s) {
  const int64_t D = s.D;
  int64_t first = s.N;
#pragma omp parallel for num_threads(threads_for(s.N* D)) schedule(static) reduction(min : first)
  for (int64_t p = 0; p < s.N; ++p) {
    const I v = idx[p];
    if (index_outside(v, s.V)) {
      first = std::min(first, p);
      continue;
    }
    std::memcpy(y + p * D, table + static_cast<int64_t>(v) * D, sizeof(T) * size_t(D));
  }
  if (first < s.N) bad_index("embedding_forward", idx, first, s);
}

struct EmbeddingScratch {};

template <typename T, typename I>
void embedding_backward(T* dtable, const T* dy, const I* idx, const EmbeddingShape& s) {
  const int64_t D = s.D;
  const int threads = threads_for(s.N * D);
  const int64_t first = first_bad_index(idx, s);
  if (first < s.N) bad_index("embedding_backward", idx, first, s);
  if (s.V == 0 || D == 0) return;
  int64_t* bounds = kept_buffer<EmbeddingScratch>().get<int64_t>(size_t(threads + 1 + kBuckets));
  int64_t* hits = bounds + threads + 1;
  split_rows_by_hits(bounds, hits, threads, idx, s);
  // Part k owns rows [bounds[k], bounds[k + 1]): it zeroes them (the table's zeroing split
  // over the threads, where a zeroed allocation is one thread's memset), then adds their
  // rows of dy in position order.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int part = 0; part < threads; ++part) {
    const int64_t lo = bounds[part], hi = bounds[part + 1];
    std::fill(dtable + lo * D, dtable + hi * D, T(0));
    for (int64_t p = 0; p < s.N; ++p) {
      const auto v = static_cast<int64_t>(idx[p]);
      if (v < lo || v >= hi) continue;
      T* row = dtable + v * D;
      const T* g = dy + p * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) row[d] += g[d];
    }
  }
}

#define DLCORE_INSTANTIATE_EMBEDDING(T, I)                                              \
  template void embedding_forward<T, I>(T*, const I*, const T*, const EmbeddingShape&); \
  template void embedding_backward<T, I>(T*, const T*, const I*, const EmbeddingShape&);
#define DLCORE_INSTANTIATE_EMBEDDING_FOR(I) \
  DLCORE_INSTANTIATE_EMBEDDING(float, I)    \
  DLCORE_INSTANTIATE_EMBEDDING(double, I)
DLCORE_INSTANTIATE_EMBEDDING_FOR(int8_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(int16_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(int32_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(int64_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(uint8_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(uint16_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(uint32_t)
DLCORE_INSTANTIATE_EMBEDDING_FOR(uint64_t)
#undef DLCORE_INSTANTIATE_EMBEDDING_FOR
#undef DLCORE_INSTANTIATE_EMBEDDING

}  // namespace dlcore
