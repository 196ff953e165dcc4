// Scratch memory of the kernels, one mechanism for every family (private to the kernel
// sources). Nothing allocates inside a parallel region: a kernel sizes its scratch
// first, takes it here, then starts its threads.
//   Workspace         one block for one call, carved with a WorkspaceLayout, taken from
//                     a buffer the calling thread keeps for its next call (a training
//                     loop then does not page-fault its scratch in on every step).
//   kept_buffer<Tag>  that buffer: one per calling thread and Tag; buffers that are in
//                     use at the same time need different tags.
//   thread_workspace  one buffer per thread of a team, indexed by thread_index().
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dlcore {

// Grow-only, 64-byte aligned memory. get() only allocates when it must grow.
class ScratchBuffer {
 public:
  void* get(size_t bytes) {
    if (bytes > capacity_) {
      const size_t rounded = (bytes + 63) / 64 * 64;
      void* p = std::aligned_alloc(64, rounded);
      if (!p) throw std::bad_alloc();
      data_.reset(p);
      capacity_ = rounded;
    }
    return data_.get();
  }

  template <typename T>
  T* get(size_t count) {
    return static_cast<T*>(get(count * sizeof(T)));
  }

  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> data_;
  size_t capacity_ = 0;
};

// The calling thread's buffer named by Tag (any type; a family declares its own), kept
// across calls.
template <typename Tag>
ScratchBuffer& kept_buffer() {
  thread_local ScratchBuffer buffer;
  return buffer;
}

// Above this a block is not kept: a huge one is freed on return.
constexpr size_t kMaxKeptBytes = size_t(64) << 20;

// `bytes` of kept when it is at most keep_limit, else of own (which the caller frees).
inline void* take_scratch(ScratchBuffer& kept, ScratchBuffer& own, size_t bytes,
                          size_t keep_limit = kMaxKeptBytes) {
  return bytes <= keep_limit ? kept.get(bytes) : own.get(bytes);
}

// Offsets of 64-byte aligned pieces of one scratch block.
class WorkspaceLayout {
 public:
  template <typename T>
  size_t add(int64_t count) {
    const size_t off = bytes_;
    bytes_ += (size_t(count) * sizeof(T) + 63) / 64 * 64;
    return off;
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
};

// One call's scratch block: at<T>(offset) with offsets from a WorkspaceLayout.
class Workspace {
 public:
  Workspace(ScratchBuffer& kept, size_t bytes)
      : data_(static_cast<char*>(take_scratch(kept, own_, bytes))) {}
  template <typename T>
  T* at(size_t offset) const {
    return reinterpret_cast<T*>(data_ + offset);
  }

 private:
  ScratchBuffer own_;
  char* data_;
};

// ---------------------------------------------------------------- teams
// The calling thread's index in its OpenMP team, and the team's size (0 and 1 outside
// a parallel region or without OpenMP).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// One scratch buffer of `count` T for each of `threads` workers, owned by the calling
// thread (two Python threads may convolve at once) and grown here, before the parallel
// region, so that nothing allocates or throws inside one. The caller reads the thread
// count once and passes that same count to its parallel region: set_num_threads from
// another Python thread in between would otherwise let a worker index past these
// buffers.
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
