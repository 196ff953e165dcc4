// Which results the kernels write past the caches. A result larger than a quarter of the
// last-level cache is evicted before anything reads it back; writing it through the
// cache would first read every one of its lines in (the write-allocate) and push out the
// inputs the kernel's next pass needs. Kernels write such results with non-temporal
// stores (common/simd.hpp's write_streamed).
#pragma once

#include <cstddef>

namespace dlcore {

// Results of at least this many bytes are streamed: a quarter of the last-level cache a
// core sees (Linux sysfs; else sysconf; else 32 MiB), unless set_stream_min_bytes
// changed it.
size_t stream_min_bytes();

// Sets the threshold for every later call (0: every result streams; SIZE_MAX: none) and
// returns the previous one. Process-wide; for tests and benchmarks.
size_t set_stream_min_bytes(size_t bytes);

}  // namespace dlcore
