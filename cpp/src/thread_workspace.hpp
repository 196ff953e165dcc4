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

// One scratch buffer per worker thread, owned by the calling thread (two Python threads
// may convolve at once) and grown here, before the parallel region, so that nothing
// allocates or throws inside one.
template <typename T>
T* const* thread_workspace(int64_t count) {
  thread_local std::vector<ScratchBuffer> buffers;
  thread_local std::vector<T*> pointers;
  const size_t threads = static_cast<size_t>(get_num_threads());
  if (buffers.size() < threads) buffers.resize(threads);
  pointers.resize(threads);
  for (size_t t = 0; t < threads; ++t) pointers[t] = buffers[t].get<T>(count);
  return pointers.data();
}

}  // namespace dlcore
