// Embedding lookup: idx (...) of integers into table (V, D) -> y (..., D).
#pragma once

#include <cstdint>
#include <vector>

namespace dlcore {

// The validated sizes, shared by forward and backward: N = idx.size positions, each
// looking up a row of a (V, D) table. Throws std::invalid_argument naming fn otherwise.
struct EmbeddingShape {
  std::vector<int64_t> idx_shape;
  int64_t N, V, D;

  EmbeddingShape(const char* fn, const std::vector<int64_t>& idx_shape, int64_t V, int64_t D);
};

// y (N, D): row p is table[idx[p]]. An index outside [0, V) throws std::invalid_argument
// naming fn, the first such index's value, its position in idx and V (y is then left
// partly written).
template <typename T, typename I>
void embedding_forward(T* y, const I* idx, const T* table, const EmbeddingShape& s);

// dtable (V, D) = the sums of the rows of dy (N, D) over the positions p with idx[p] =
// each row (zero for a row no index hits); dtable need not be initialised. Each thread
// zeroes a range of table rows and adds its rows' contributions in position order, so
// every bit is the same at any thread count. Bad indices throw as the forward's do,
// before anything is written.
template <typename T, typename I>
void embedding_backward(T* dtable, const T* dy, const I* idx, const EmbeddingShape& s);

}  // namespace dlcore
