// Elementwise activations on whole arrays: one parallel pass each.
#pragma once

#include <cstdint>

namespace dlcore {

// y (N,) = max(x, 0); NaN stays NaN.
template <typename T>
void relu_forward(T* y, const T* x, int64_t N);

// dx (N,) = dy where y > 0, else 0; y is the forward's output.
template <typename T>
void relu_backward(T* dx, const T* dy, const T* y, int64_t N);

}  // namespace dlcore
