// Scratch memory that kernels keep across calls instead of allocating per call.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace dlcore {

// Grow-only, 64-byte aligned memory. Keep one per thread (thread_local) or per parallel
// chunk, and take it outside the hot loops: get() only allocates when it must grow.
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

}  // namespace dlcore
