#include "dlcore/streaming.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "common/simd.hpp"
#if defined(__unix__)
#include <unistd.h>
#endif

namespace dlcore {
namespace {

// Bytes of the largest cache the first CPU has: Linux's sysfs gives the slice a core
// sees (one CCX's 32 MiB on Zen 3, where sysconf may report the whole package's).
size_t last_level_cache_bytes() {
  size_t best = 0;
#if defined(__linux__)
  for (int index = 0; index < 8; ++index) {
    char path[80];
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    char text[32] = {};
    const bool read = std::fgets(text, sizeof text, f) != nullptr;
    std::fclose(f);
    if (!read) continue;
    char* unit = nullptr;
    const unsigned long long value = std::strtoull(text, &unit, 10);
    const unsigned long long scale = *unit == 'K' ? 1ull << 10 : *unit == 'M' ? 1ull << 20 : 1;
    if (value * scale > best) best = size_t(value * scale);
  }
#endif
#if defined(_SC_LEVEL3_CACHE_SIZE)
  if (best == 0) {
    const long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0) best = size_t(l3);
  }
#endif
  return best > 0 ? best : size_t(32) << 20;
}

std::atomic<size_t>& threshold() {
  static std::atomic<size_t> bytes{last_level_cache_bytes() / 2 * 3};
  return bytes;
}

}  // namespace

size_t stream_min_bytes() { return threshold().load(std::memory_order_relaxed); }

size_t set_stream_min_bytes(size_t bytes) { return threshold().exchange(bytes); }

bool simd::stream_pays(size_t working_set) {
  return simd::kStreamAlign > 0 && working_set >= stream_min_bytes();
}

}  // namespace dlcore
