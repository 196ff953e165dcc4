// Thread-count control shared by every kernel and by Eigen's threaded GEMM.
#pragma once

#include <cstddef>

namespace dlcore {

// Number of threads each kernel uses. Starts at OpenMP's default (OMP_NUM_THREADS
// when set, else the number of cores); process-wide, not per calling thread.
int get_num_threads();

// The most threads a kernel may be asked to use. Each parallel region starts that many
// OpenMP threads, and far beyond it thread creation fails inside the OpenMP runtime,
// which cannot report an error: the process dies (100,000 did on an 8 GB-stack Linux).
constexpr int kMaxThreads = 1024;

// Throws std::invalid_argument (naming fn) unless this process can run n threads at once.
// The OpenMP runtime ends the process when it cannot create a team's threads (it has no
// way to report the failure), so a larger count than any before is tried here first:
// n - 1 threads (the caller is the n-th) are started, held together as a team would be,
// and joined. A count once proven is not tried again.
void check_threads_start(int n, const char* fn);

// Sets the thread count for every later kernel call; n must be in [1, kMaxThreads].
// Throws std::invalid_argument otherwise.
void set_num_threads(int n);

// Sets `bytes` bytes at data to zero, on up to get_num_threads() threads.
void parallel_zero(void* data, size_t bytes);

// True when the kernels were compiled with OpenMP.
bool has_openmp();

}  // namespace dlcore
