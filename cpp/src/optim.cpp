#include "dlcore/optim.hpp"

#include <algorithm>
#include <cmath>

#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

// Below this many elements a parallel region costs more than the update itself.
constexpr int64_t kParallelMin = 1 << 15;

int threads_for(int64_t N) { return N >= kParallelMin ? get_num_threads() : 1; }

// Each optional piece of state is a template parameter, so every loop body is
// branch-free and the compiler vectorises it (a runtime `if` inside kept GCC scalar).
template <typename T, bool Amsgrad>
void adam_loop(T* param, T* m, T* v, T* vhat, const T* grad, int64_t N, T alpha, T c1, T c2,
               T eps) {
#pragma omp parallel for simd num_threads(threads_for(N)) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T g = grad[i];
    const T mi = m[i] + (g - m[i]) * c1;
    T vi = v[i] + (g * g - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    if constexpr (Amsgrad) {
      vi = std::max(vhat[i], vi);
      vhat[i] = vi;
    }
    param[i] -= alpha * mi / (std::sqrt(vi) + eps);
  }
}

template <typename T, bool Nesterov>
void momentum_loop(T* param, T* velocity, const T* grad, int64_t N, T rate, T mu) {
#pragma omp parallel for simd num_threads(threads_for(N)) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T vi = mu * velocity[i] - rate * grad[i];
    velocity[i] = vi;
    param[i] += Nesterov ? mu * vi - rate * grad[i] : vi;
  }
}

template <typename T, bool Centered, bool Momentum>
void rmsprop_loop(T* param, T* v, T* mg, T* mom, const T* grad, int64_t N, T rate, T r, T mu,
                  T eps) {
#pragma omp parallel for simd num_threads(threads_for(N)) schedule(static)
  for (int64_t i = 0; i < N; ++i) {
    const T g = grad[i];
    const T vi = r * v[i] + (1 - r) * g * g;
    v[i] = vi;
    T denom = vi;
    if constexpr (Centered) {
      const T mgi = r * mg[i] + (1 - r) * g;
      mg[i] = mgi;
      denom -= mgi * mgi;
    }
    T s = rate * g / std::sqrt(denom + eps);
    if constexpr (Momentum) {
      s += mu * mom[i];
      mom[i] = s;
    }
    param[i] -= s;
  }
}

}  // namespace

template <typename T>
void adam_update(T* param, T* m, T* v, T* vhat, const T* grad, int64_t N, double lr, double beta_1,
                 double beta_2, double epsilon, int64_t step) {
  const T alpha = static_cast<T>(lr * std::sqrt(1 - std::pow(beta_2, double(step))) /
                                 (1 - std::pow(beta_1, double(step))));
  const T c1 = static_cast<T>(1 - beta_1), c2 = static_cast<T>(1 - beta_2);
  const T eps = static_cast<T>(epsilon);
  if (vhat) {
    adam_loop<T, true>(param, m, v, vhat, grad, N, alpha, c1, c2, eps);
  } else {
    adam_loop<T, false>(param, m, v, vhat, grad, N, alpha, c1, c2, eps);
  }
}

template <typename T>
void sgd_update(T* param, T* velocity, const T* grad, int64_t N, double lr, double momentum,
                bool nesterov) {
  const T rate = static_cast<T>(lr), mu = static_cast<T>(momentum);
  if (!velocity) {
#pragma omp parallel for simd num_threads(threads_for(N)) schedule(static)
    for (int64_t i = 0; i < N; ++i) param[i] -= rate * grad[i];
  } else if (nesterov) {
    momentum_loop<T, true>(param, velocity, grad, N, rate, mu);
  } else {
    momentum_loop<T, false>(param, velocity, grad, N, rate, mu);
  }
}

template <typename T>
void rmsprop_update(T* param, T* v, T* mg, T* mom, const T* grad, int64_t N, double lr, double rho,
                    double momentum, double epsilon) {
  const T rate = static_cast<T>(lr), r = static_cast<T>(rho), mu = static_cast<T>(momentum);
  const T eps = static_cast<T>(epsilon);
  if (mg && mom) rmsprop_loop<T, true, true>(param, v, mg, mom, grad, N, rate, r, mu, eps);
  if (mg && !mom) rmsprop_loop<T, true, false>(param, v, mg, mom, grad, N, rate, r, mu, eps);
  if (!mg && mom) rmsprop_loop<T, false, true>(param, v, mg, mom, grad, N, rate, r, mu, eps);
  if (!mg && !mom) rmsprop_loop<T, false, false>(param, v, mg, mom, grad, N, rate, r, mu, eps);
}

#define DLCORE_INSTANTIATE_OPTIM(T)                                                               \
  template void adam_update<T>(T*, T*, T*, T*, const T*, int64_t, double, double, double, double, \
                               int64_t);                                                          \
  template void sgd_update<T>(T*, T*, const T*, int64_t, double, double, bool);                   \
  template void rmsprop_update<T>(T*, T*, T*, T*, const T*, int64_t, double, double, double,      \
                                  double);
DLCORE_INSTANTIATE_OPTIM(float)
DLCORE_INSTANTIATE_OPTIM(double)
#undef DLCORE_INSTANTIATE_OPTIM

}  // namespace dlcore
