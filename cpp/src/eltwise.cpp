#include "dlcore/eltwise.hpp"

#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

// Below this many elements one thread is faster than waking a second.
constexpr int64_t kParallelMin = 1 << 15;

int threads_for(int64_t N) { return N >= kParallelMin ? get_num_threads() : 1; }

}  // namespace

template <typename T>
void relu_forward(T* y, const T* x, int64_t N) {
#pragma omp parallel for simd num_threads(threads_for(N)) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T v = x[i];
    y[i] = v < T(0) ? T(0) : v;  // written so that NaN passes through, as np.maximum
  }
}

template <typename T>
void relu_backward(T* dx, const T* dy, const T* y, int64_t N) {
#pragma omp parallel for simd num_threads(threads_for(N)) schedule(static)
  for (int64_t i = 0; i < N; ++i) dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

template void relu_forward<float>(float*, const float*, int64_t);
template void relu_forward<double>(double*, const double*, int64_t);
template void relu_backward<float>(float*, const float*, const float*, int64_t);
template void relu_backward<double>(double*, const double*, const double*, int64_t);

}  // namespace dlcore
