// Fused, in-place optimizer updates: one pass over the parameter and its state.
#pragma once

#include <cstdint>

namespace dlcore {

// Adam in Keras' form, step t >= 1 (the update being applied):
//   m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); vhat = max(vhat, v) with amsgrad;
//   param -= lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(vhat or v) + epsilon)
// param, m, v (N,), vhat (N,) or null, grad (N,).
template <typename T>
void adam_update(T* param, T* m, T* v, T* vhat, const T* grad, int64_t N, double lr, double beta_1,
                 double beta_2, double epsilon, int64_t step);

// SGD: param -= lr g; with momentum: velocity = momentum velocity - lr g, then
// param += velocity, or param += momentum velocity - lr g (Nesterov).
// velocity (N,) or null when momentum is 0.
template <typename T>
void sgd_update(T* param, T* velocity, const T* grad, int64_t N, double lr, double momentum,
                bool nesterov);

// RMSprop in Keras' form: v = rho v + (1 - rho) g^2; centered: mg = rho mg + (1 - rho) g,
// denominator v - mg^2; step = lr g / sqrt(denominator + epsilon); with momentum
// mom = momentum mom + step and the step is mom. param -= step.
// mg, mom (N,) or null when unused.
template <typename T>
void rmsprop_update(T* param, T* v, T* mg, T* mom, const T* grad, int64_t N, double lr, double rho,
                    double momentum, double epsilon);

}  // namespace dlcore
