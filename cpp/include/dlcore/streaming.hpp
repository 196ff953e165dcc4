// Which results the kernels write past the caches. When a pass reads and writes more
// than the last-level cache holds, its result is evicted before anything reads it back;
// writing it through the cache would first read every one of its lines in (the
// write-allocate) and push out the inputs the kernel's next pass needs. Such a pass
// writes its result with non-temporal stores (common/simd.hpp's write_streamed). A
// result that fits in the cache beside the pass's inputs is written through it, where
// the next layer finds it.
#pragma once

#include <cstddef>

namespace dlcore {

// A pass whose working set (every byte it reads and writes) is at least this many bytes
// streams its result: one and a half times the last-level cache a core sees (Linux
// sysfs; else sysconf; else 32 MiB), unless set_stream_min_bytes changed it. Just past
// the cache size much of the working set is still cached, and a result block the array
// cache hands back is often still in it: streamed stores over those lines cost more than
// they save (batch norm's fwd+bwd pair at 38 MB, 6% slower; layer norm's 34 MB forward,
// 13% slower on a 32 MiB L3).
size_t stream_min_bytes();

// Sets the threshold for every later call (0: every result streams; SIZE_MAX: none) and
// returns the previous one. Process-wide; for tests and benchmarks.
size_t set_stream_min_bytes(size_t bytes);

}  // namespace dlcore
