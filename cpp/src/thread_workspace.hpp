// Per-thread scratch for the kernels that split work over an OpenMP team (private to
// the kernel sources).
#pragma once

#include <cstdint>
#include <vector>

#include "dlcore/parallel.hpp"
#include "dlcore/scratch.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore {

inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// One scratch buffer for each of `threads` workers, owned by the calling thread (two
// Python threads may convolve at once) and grown here, before the parallel region, so
// that nothing allocates or throws inside one. The caller reads the thread count once
// and passes that same count to its parallel region: set_num_threads from another
// Python thread in between would otherwise let a worker index past these buffers.
template <typename T>
T* const* thread_workspace(int64_t count, int threads) {
  thread_local std::vector<ScratchBuffer> buffers;
  thread_local std::vector<T*> pointers;
  const size_t n = static_cast<size_t>(threads);
  if (buffers.size() < n) buffers.resize(n);
  pointers.resize(n);
  for (size_t t = 0; t < n; ++t) pointers[t] = buffers[t].get<T>(count);
  return pointers.data();
}

}  // namespace dlcore
