// Element-wise activations with Keras 3's formulas: x (N,) -> y (N,), one parallel,
// vectorised pass each way.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace dlcore {

// The kinds; relu with its parameters also stands for Keras' relu6 and leaky_relu.
enum class Activation {
  relu,          // Keras ReLU: negative_slope, max_value, threshold
  elu,           // x > 0 ? x : alpha (e^x - 1)
  selu,          // scale * elu(x, alpha) with SELU's two constants
  gelu,          // x Phi(x), Phi the standard normal CDF (Keras approximate=False)
  gelu_tanh,     // x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2 (approximate=True)
  silu,          // x sigmoid(x), a.k.a. swish
  softplus,      // log(1 + e^x)
  softsign,      // x / (1 + |x|)
  sigmoid,       // 1 / (1 + e^-x)
  tanh,          //
  hard_sigmoid,  // relu6(x + 3) / 6 (Keras 3; Keras 2 had 0.2 x + 0.5)
  hard_silu,     // x hard_sigmoid(x), a.k.a. hard_swish
  mish,          // x tanh(softplus(x))
};

struct ActivationParams {
  double alpha = 1.0;                                          // elu
  double negative_slope = 0.0;                                 // relu
  double max_value = std::numeric_limits<double>::infinity();  // relu; inf: no ceiling
  double threshold = 0.0;                                      // relu
};

// A validated kind and its parameters, shared by forward and backward. The constructor
// throws std::invalid_argument naming fn and the parameter: alpha, negative_slope and
// threshold must be finite, max_value >= 0 (or inf for none).
struct ActivationSpec {
  Activation kind;
  ActivationParams p;

  ActivationSpec(const char* fn, Activation kind, const ActivationParams& params);
};

// The kind Keras calls `name` ("swish" and "hard_swish" too; "relu6" and "leaky_relu"
// are relu, whose parameters the caller sets). Throws std::invalid_argument naming fn
// and listing the names otherwise.
Activation activation_kind(const char* fn, const std::string& name);

// True when the backward of `kind` reads the forward's output y (sigmoid, tanh), false
// when it reads the input x (every other kind).
bool activation_backward_uses_output(Activation kind);

// y (N,) = f(x); a NaN in x gives NaN.
template <typename T>
void activation_forward(T* y, const T* x, int64_t N, const ActivationSpec& a);

// dx (N,) = dy * f'(x), written (not added); `saved` is x or, where
// activation_backward_uses_output(kind), the forward's y.
template <typename T>
void activation_backward(T* dx, const T* dy, const T* saved, int64_t N, const ActivationSpec& a);

}  // namespace dlcore
