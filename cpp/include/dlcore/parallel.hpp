// Thread-count control shared by every kernel and by Eigen's threaded GEMM.
#pragma once

namespace dlcore {

// Number of threads each kernel uses. Starts at OpenMP's default (OMP_NUM_THREADS
// when set, else the number of cores); process-wide, not per calling thread.
int get_num_threads();

// Sets the thread count for every later kernel call; n must be >= 1.
// Throws std::invalid_argument otherwise.
void set_num_threads(int n);

// True when the kernels were compiled with OpenMP.
bool has_openmp();

}  // namespace dlcore
