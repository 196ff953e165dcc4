#include "array_cache.hpp"

#include <pybind11/stl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "dlcore/parallel.hpp"

namespace dlcore::bind {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

constexpr size_t kMinBytes = size_t(1) << 17;  // 128 KiB
constexpr size_t kAlign = 64;
constexpr size_t kHugePage = size_t(1) << 21;
constexpr size_t kMaxBytes = size_t(PTRDIFF_MAX) - kHugePage;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

struct ArrayCacheInfo {
  size_t cached_bytes = 0;  // held for reuse, used by no array
  size_t cached_blocks = 0;
  size_t in_use_bytes = 0;  // lent to arrays that are alive
  size_t limit_bytes = 0;
  size_t min_bytes = 0;  // arrays this large and larger are served
  uint64_t hits = 0, misses = 0;
};

// Off in a sanitizer build (a test may still turn it on), so that a use after free is
// reported there.
size_t default_limit() {
  if (kSanitized) return 0;
  if (const char* env = std::getenv("DLCORE_ARRAY_CACHE_MB")) {
    // digits only, at most 2^40 MiB; anything else leaves the default
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(env, &end, 10);
    const bool digits = *env >= '0' && *env <= '9' && end != env && *end == '\0';
    if (digits && mb <= (1ull << 40)) return size_t(mb) << 20;
  }
  size_t limit = size_t(1) << 30;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) limit = std::min(limit, size_t(pages) * size_t(page) / 8);
  return limit;
}

class BlockCache {
 public:
  // Never destroyed: arrays still alive when the interpreter exits give their blocks
  // back after static destructors have run.
  static BlockCache& instance() {
    static BlockCache* cache = new BlockCache();
    return *cache;
  }

  // A block for an array of `bytes`, or null when the cache does not serve that size:
  // below min_bytes, more than the limit lets it keep, or more than NumPy accepts (which
  // then raises its own error).
  void* take(size_t bytes) {
    const size_t size = block_size(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (bytes == 0 || bytes < min_bytes_ || bytes > kMaxBytes || size > limit_) return nullptr;
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size) {
        it = std::prev(free_.upper_bound(it->first));  // the most recently freed: warmest
        const Block block = *it->second;
        lent_.emplace(block.data, block.size);  // first: should it throw, nothing changed
        lru_.erase(it->second);
        free_.erase(it);
        cached_ -= block.size;
        in_use_ += block.size;
        ++hits_;
        return block.data;
      }
      ++misses_;
    }
    void* p = allocate(size);
    if (!p) {  // the system is short: give it what is kept, then ask once more
      release();
      p = allocate(size);
      if (!p) throw std::bad_alloc();
    }
    try {
      std::lock_guard<std::mutex> lock(mutex_);
      lent_.emplace(p, size);
      in_use_ += size;
    } catch (...) {
      std::free(p);
      throw;
    }
    return p;
  }

  // Runs in the array's destructor (a C callback): nothing may escape. A block that
  // cannot be kept is freed.
  void give(void* p) noexcept {
    bool keep = false;
    void* dropped[kMaxDropsPerGive];
    size_t n_dropped = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = lent_.find(p);
      const size_t size = it->second;
      lent_.erase(it);
      in_use_ -= size;
      if (size <= limit_) {
        try {
          lru_.push_back({p, size});
          try {
            free_.emplace(size, std::prev(lru_.end()));
            keep = true;
            cached_ += size;
          } catch (...) {
            lru_.pop_back();
          }
        } catch (...) {
        }
      }
      // over the limit: drop the least recently freed blocks (this one last of all)
      while (cached_ > limit_ && n_dropped < kMaxDropsPerGive) {
        dropped[n_dropped++] = pop_oldest();
      }
    }
    if (!keep) std::free(p);
    for (size_t i = 0; i < n_dropped; ++i) std::free(dropped[i]);
  }

  void set_min_bytes(size_t min_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    min_bytes_ = min_bytes;
  }

  void set_limit(size_t limit) {
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      limit_ = limit;
      while (cached_ > limit) drop.push_back(pop_oldest());
    }
    for (void* q : drop) std::free(q);
  }

  // Frees every kept block; the limit stays.
  size_t release() {
    std::vector<void*> drop;
    size_t freed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      freed = cached_;
      drop.reserve(lru_.size());
      while (!lru_.empty()) drop.push_back(pop_oldest());
    }
    for (void* q : drop) std::free(q);
    return freed;
  }

  ArrayCacheInfo info() {
    std::lock_guard<std::mutex> lock(mutex_);
    ArrayCacheInfo out;
    out.cached_bytes = cached_;
    out.cached_blocks = lru_.size();
    out.in_use_bytes = in_use_;
    out.limit_bytes = limit_;
    out.min_bytes = min_bytes_;
    out.hits = hits_;
    out.misses = misses_;
    return out;
  }

 private:
  struct Block {
    void* data;
    size_t size;
  };
  using Lru = std::list<Block>;

  BlockCache() : limit_(default_limit()) {}

  static size_t block_size(size_t bytes) { return round_up(bytes, kAlign); }

  // Blocks of 2 MiB and more start on a huge-page boundary, and the kernel is asked to
  // back them with transparent huge pages: a fault per 2 MiB instead of per 4 KiB, and
  // fewer TLB misses in the kernels that stream them. Null when the system says no.
  static void* allocate(size_t size) {
    void* p = nullptr;
    if (posix_memalign(&p, size >= kHugePage ? kHugePage : kAlign, size) != 0) return nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (size >= kHugePage) madvise(p, size / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice
#endif
    return p;
  }

  // Takes the least recently freed block out of the cache (the caller frees it).
  void* pop_oldest() {
    const Block oldest = lru_.front();
    auto it = free_.lower_bound(oldest.size);  // the oldest of its size is among these
    while (it->second != lru_.begin()) ++it;
    free_.erase(it);
    lru_.pop_front();
    cached_ -= oldest.size;
    return oldest.data;
  }

  static constexpr size_t kMaxDropsPerGive = 64;

  std::mutex mutex_;
  Lru lru_;                                    // free blocks, least recently freed first
  std::multimap<size_t, Lru::iterator> free_;  // the same blocks by size
  std::unordered_map<void*, size_t> lent_;     // blocks arrays are using
  size_t cached_ = 0, in_use_ = 0, limit_, min_bytes_ = kMinBytes;
  uint64_t hits_ = 0, misses_ = 0;
};

// The base of an array whose memory came from the cache: it gives the block back when
// the array (and every view of it) is gone, and exposes it as a writable buffer, so
// that NumPy lets the array be made writeable again after being made read-only.
class ArrayBlock {
 public:
  ArrayBlock(void* data, size_t bytes) : data_(data), bytes_(bytes) {}
  ArrayBlock(const ArrayBlock&) = delete;
  ArrayBlock& operator=(const ArrayBlock&) = delete;
  ~ArrayBlock() { BlockCache::instance().give(data_); }

  py::buffer_info buffer() const {
    return py::buffer_info(data_, 1, py::format_descriptor<uint8_t>::format(),
                           static_cast<py::ssize_t>(bytes_));
  }

 private:
  void* data_;
  size_t bytes_;
};

}  // namespace

py::array cached_array(const std::vector<int64_t>& shape, const py::dtype& dtype, bool zeroed) {
  const std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  size_t bytes = size_t(dtype.itemsize());
  bool fits = true;
  for (int64_t d : shape) {
    fits = fits && d >= 0 && !__builtin_mul_overflow(bytes, size_t(d), &bytes);
  }
  BlockCache& cache = BlockCache::instance();
  void* p = fits ? cache.take(bytes) : nullptr;
  if (!p) {  // NumPy's own memory; for a shape NumPy rejects, its error
    py::array a(dtype, dims);
    if (zeroed) parallel_zero(a.mutable_data(), bytes);
    return a;
  }
  py::object owner;
  try {
    owner = py::cast(std::make_unique<ArrayBlock>(p, bytes));
  } catch (...) {
    cache.give(p);
    throw;
  }
  if (zeroed) {
    py::gil_scoped_release release;
    parallel_zero(p, bytes);
  }
  return py::array(dtype, dims, {}, p, owner);  // owner gives p back with the array
}

void register_array_cache(py::module_& m) {
  py::class_<ArrayBlock>(m, "_ArrayBlock", py::buffer_protocol(),
                         "Memory of a kernel's result, lent by the array cache; the base "
                         "of such a result.")
      .def_buffer(&ArrayBlock::buffer);
  m.def(
      "array_cache_info",
      [] {
        const ArrayCacheInfo s = BlockCache::instance().info();
        py::dict d;
        d["cached_bytes"] = s.cached_bytes;
        d["cached_blocks"] = s.cached_blocks;
        d["in_use_bytes"] = s.in_use_bytes;
        d["limit_bytes"] = s.limit_bytes;
        d["min_bytes"] = s.min_bytes;
        d["hits"] = s.hits;
        d["misses"] = s.misses;
        return d;
      },
      "The cache of memory behind the kernels' large output arrays: bytes kept for reuse "
      "(cached_bytes, in cached_blocks blocks), bytes lent to live arrays (in_use_bytes), "
      "the limit on kept bytes, the size from which arrays are served (min_bytes), and "
      "how many requests it served from kept blocks (hits) or allocated (misses).");
  m.def(
      "array_cache_release", [] { return BlockCache::instance().release(); },
      "Frees every cached block no array uses; returns the bytes freed.");
  m.def(
      "configure_array_cache",
      [](std::optional<long long> limit, std::optional<long long> min_bytes) {
        for (auto [name, value] : {std::pair{"limit", limit}, std::pair{"min_bytes", min_bytes}}) {
          if (value && *value < 0) {
            throw py::value_error(std::string("configure_array_cache: ") + name + " is " +
                                  std::to_string(*value) + "; expected a number of bytes >= 0");
          }
        }
        if (min_bytes) BlockCache::instance().set_min_bytes(size_t(*min_bytes));
        if (limit) BlockCache::instance().set_limit(size_t(*limit));
      },
      py::arg("limit") = py::none(), py::arg("min_bytes") = py::none(),
      "Sets the most bytes the cache keeps for reuse (limit; 0 turns the cache off), "
      "freeing the least recently freed blocks above it, and the size from which an "
      "array takes its memory from the cache (min_bytes). None leaves a setting as it is.");
}

}  // namespace dlcore::bind
