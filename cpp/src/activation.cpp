// GCC may turn a select followed by arithmetic into arithmetic inside the select's arms,
// and under its default -ftrapping-math it then refuses to vectorise the now conditional
// operations (the loops below ran scalar, 5-15 ns an element). No kernel enables
// floating-point traps, so declaring them off changes no result. Clang needs nothing.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "dlcore/activation.hpp"

#include <cmath>
#include <limits>
#include <utility>

#include "dlcore/checks.hpp"
#include "dlcore/parallel.hpp"
#include "fast_math.hpp"

namespace dlcore {

ActivationSpec::ActivationSpec(const char* fn, Activation kind_, const ActivationParams& params)
    : kind(kind_), p(params) {
  const std::pair<const char*, double> finite[] = {
      {"alpha", p.alpha}, {"negative_slope", p.negative_slope}, {"threshold", p.threshold}};
  for (const auto& [name, value] : finite) {
    if (!std::isfinite(value)) fail(fn, ": ", name, " is ", value, "; expected a finite number");
  }
  if (!(p.max_value >= 0)) {
    fail(fn, ": max_value is ", p.max_value, "; expected a number >= 0, or None for no ceiling");
  }
}

Activation activation_kind(const char* fn, const std::string& name) {
  static const std::pair<const char*, Activation> kinds[] = {
      {"relu", Activation::relu},
      {"relu6", Activation::relu},
      {"leaky_relu", Activation::relu},
      {"elu", Activation::elu},
      {"selu", Activation::selu},
      {"gelu", Activation::gelu},
      {"silu", Activation::silu},
      {"swish", Activation::silu},
      {"softplus", Activation::softplus},
      {"softsign", Activation::softsign},
      {"sigmoid", Activation::sigmoid},
      {"tanh", Activation::tanh},
      {"hard_sigmoid", Activation::hard_sigmoid},
      {"hard_silu", Activation::hard_silu},
      {"hard_swish", Activation::hard_silu},
      {"mish", Activation::mish},
  };
  std::string known;
  for (const auto& [n, kind] : kinds) {
    if (name == n) return kind;
    known += known.empty() ? "" : ", ";
    known += n;
  }
  fail(fn, ": unknown activation '", name, "'; expected one of ", known);
}

bool activation_backward_uses_output(Activation kind) {
  return kind == Activation::sigmoid || kind == Activation::tanh;
}

namespace {

// Below this many elements (times a kind's cost) one thread is faster than waking a second.
constexpr int64_t kParallelMin = 1 << 15;

// Each kind: forward(x) and backward(dy, saved) of one element, in T, written without
// branches or calls outside fast_math so that the loops below vectorise.
template <typename T>
struct Relu {
  // Keras: where(x > threshold, x, 0), clipped to [0, max_value] when there is one,
  // minus negative_slope * relu(threshold - x).
  T slope, threshold, ceiling;
  bool clip;
  explicit Relu(const ActivationParams& p)
      : slope(T(p.negative_slope)),
        threshold(T(p.threshold)),
        ceiling(T(p.max_value)),
        clip(!std::isinf(p.max_value)) {}
  T forward(T x) const {
    T pos = x > threshold ? x : T(0);
    pos = (pos < T(0)) & clip ? T(0) : pos;
    pos = pos > ceiling ? ceiling : pos;
    const T below = threshold - x;
    const T scaled = slope * below;
    const T neg = (below > T(0)) & (slope != T(0)) ? scaled : T(0);
    const T y = pos - neg;
    return x != x ? x : y;
  }
  // 1 above the threshold (and inside (0, max_value) when clipped), the slope at and
  // below the threshold.
  T backward(T dy, T x) const {
    const T above = (!clip) | ((x > T(0)) & (x < ceiling)) ? dy : T(0);
    const T below = slope * dy;
    const T d = x > threshold ? above : below;
    return x != x ? x : d;
  }
};

template <typename T>
struct Elu {
  T alpha, scale;  // selu is scale * elu
  Elu(T alpha_, T scale_) : alpha(alpha_), scale(scale_) {}
  T forward(T x) const {
    const T neg = (scale * alpha) * fast_math::Math<T>::expm1(x);
    const T pos = scale * x;
    return x > T(0) ? pos : neg;
  }
  T backward(T dy, T x) const {
    const T neg = dy * (scale * alpha) * fast_math::Math<T>::exp(x);
    const T pos = scale * dy;
    return x > T(0) ? pos : neg;
  }
};

// sigmoid(x) and 1 - sigmoid(x), both without cancellation: e = e^-x may be inf.
template <typename T>
struct SigmoidParts {
  T s, q;
  explicit SigmoidParts(T x) {
    const T e = fast_math::Math<T>::exp(-x);
    s = T(1) / (T(1) + e);
    const T tail = e * s, head = T(1) - s;
    q = x > T(0) ? tail : head;
  }
};

template <typename T>
struct Sigmoid {
  T forward(T x) const { return SigmoidParts<T>(x).s; }
  T backward(T dy, T y) const { return dy * y * (T(1) - y); }
};

template <typename T>
struct Tanh {
  T forward(T x) const { return fast_math::Math<T>::tanh(x); }
  T backward(T dy, T y) const { return dy * (T(1) - y * y); }
};

template <typename T>
struct Silu {
  T forward(T x) const { return x * SigmoidParts<T>(x).s; }
  T backward(T dy, T x) const {
    const SigmoidParts<T> sp(x);
    return dy * (sp.s * (T(1) + x * sp.q));
  }
};

template <typename T>
struct Softplus {
  // Keras (jax.nn): logaddexp(x, 0) = max(x, 0) + log1p(e^-|x|).
  T forward(T x) const {
    const T pos = x > T(0) ? x : T(0);
    return pos + fast_math::Math<T>::log1p_unit(fast_math::Math<T>::exp(-std::fabs(x)));
  }
  T backward(T dy, T x) const { return dy * SigmoidParts<T>(x).s; }
};

template <typename T>
struct Softsign {
  T forward(T x) const {
    const T y = x / (T(1) + std::fabs(x));
    const T limit = std::copysign(T(1), x);  // inf / inf would give NaN
    return std::fabs(x) > std::numeric_limits<T>::max() ? limit : y;
  }
  T backward(T dy, T x) const {
    const T d = T(1) + std::fabs(x);
    return dy / (d * d);
  }
};

template <typename T>
struct Mish {
  // tanh(softplus(x)) = n / (n + 2) with n = e^x (e^x + 2); e^x is capped at x = 20,
  // where tanh(softplus(x)) is 1 in double already, so that n stays finite.
  struct Parts {
    T e, n, t;
    explicit Parts(T x) {
      e = fast_math::Math<T>::exp(x < T(20) ? x : T(20));
      n = e * (e + T(2));
      t = n / (n + T(2));
    }
  };
  T forward(T x) const { return x * Parts(x).t; }
  // t + x (1 - t^2) sigmoid(x), with 1 - t^2 = (1 + t) 2 / (n + 2) free of cancellation.
  T backward(T dy, T x) const {
    const Parts m(x);
    const T one_minus_t2 = (T(1) + m.t) * (T(2) / (m.n + T(2)));
    const T sigmoid = m.e / (T(1) + m.e);
    return dy * (m.t + x * one_minus_t2 * sigmoid);
  }
};

template <typename T>
struct Gelu {
  T forward(T x) const { return x * fast_math::Math<T>::normal_cdf(x); }
  T backward(T dy, T x) const { return dy * fast_math::Math<T>::gelu_slope(x); }
};

template <typename T>
struct GeluTanh {
  // (1 + tanh(u)) / 2 = sigmoid(2u): the same function without 1 + tanh's cancellation.
  static constexpr T kC = T(0.79788456080286535588);  // sqrt(2 / pi)
  static constexpr T kK = T(0.044715);
  T forward(T x) const {
    const T u = kC * (x + kK * (x * x * x));
    return x * SigmoidParts<T>(T(2) * u).s;
  }
  T backward(T dy, T x) const {
    const T x2 = x * x;
    const SigmoidParts<T> sp(T(2) * (kC * (x + kK * (x2 * x))));
    const T du = T(2) * kC * (T(1) + T(3) * kK * x2);
    return dy * (sp.s + x * (sp.s * sp.q) * du);
  }
};

template <typename T>
struct HardSigmoid {
  T forward(T x) const {
    T v = x + T(3);
    v = v < T(0) ? T(0) : v;
    v = v > T(6) ? T(6) : v;
    return v / T(6);
  }
  T backward(T dy, T x) const {
    const T sixth = dy / T(6);
    const T d = (x > T(-3)) & (x < T(3)) ? sixth : T(0);
    return x != x ? x : d;
  }
};

template <typename T>
struct HardSilu {
  T forward(T x) const { return x * HardSigmoid<T>().forward(x); }
  T backward(T dy, T x) const {
    const T sixth = x / T(6);
    const T slope = (x > T(-3)) & (x < T(3)) ? sixth : T(0);
    const T d = dy * (HardSigmoid<T>().forward(x) + slope);
    return x != x ? x : d;
  }
};

int threads_for(int64_t N, int cost) { return N * cost >= kParallelMin ? get_num_threads() : 1; }

template <typename T, typename F>
void forward_loop(T* y, const T* x, int64_t N, const F f, int cost) {
#pragma omp parallel for simd num_threads(threads_for(N, cost)) schedule(static)
  for (int64_t i = 0; i < N; ++i) y[i] = f.forward(x[i]);
}

template <typename T, typename F>
void backward_loop(T* dx, const T* dy, const T* saved, int64_t N, const F f, int cost) {
#pragma omp parallel for simd num_threads(threads_for(N, cost)) schedule(static)
  for (int64_t i = 0; i < N; ++i) dx[i] = f.backward(dy[i], saved[i]);
}

// Calls run(functor, cost) with the functor of a's kind; cost weighs the thread threshold.
template <typename T, typename Run>
void with_kind(const ActivationSpec& a, Run&& run) {
  constexpr T kSeluAlpha = T(1.67326324235437728482), kSeluScale = T(1.05070098735548049342);
  switch (a.kind) {
    case Activation::relu:
      return run(Relu<T>(a.p), 1);
    case Activation::elu:
      return run(Elu<T>(T(a.p.alpha), T(1)), 4);
    case Activation::selu:
      return run(Elu<T>(kSeluAlpha, kSeluScale), 4);
    case Activation::gelu:
      return run(Gelu<T>(), 8);
    case Activation::gelu_tanh:
      return run(GeluTanh<T>(), 6);
    case Activation::silu:
      return run(Silu<T>(), 4);
    case Activation::softplus:
      return run(Softplus<T>(), 6);
    case Activation::softsign:
      return run(Softsign<T>(), 2);
    case Activation::sigmoid:
      return run(Sigmoid<T>(), 4);
    case Activation::tanh:
      return run(Tanh<T>(), 4);
    case Activation::hard_sigmoid:
      return run(HardSigmoid<T>(), 1);
    case Activation::hard_silu:
      return run(HardSilu<T>(), 1);
    case Activation::mish:
      return run(Mish<T>(), 6);
  }
}

}  // namespace

template <typename T>
void activation_forward(T* y, const T* x, int64_t N, const ActivationSpec& a) {
  with_kind<T>(a, [&](const auto f, int cost) { forward_loop(y, x, N, f, cost); });
}

template <typename T>
void activation_backward(T* dx, const T* dy, const T* saved, int64_t N, const ActivationSpec& a) {
  with_kind<T>(a, [&](const auto f, int cost) { backward_loop(dx, dy, saved, N, f, cost); });
}

#define DLCORE_INSTANTIATE_ACTIVATION(T)                                             \
  template void activation_forward<T>(T*, const T*, int64_t, const ActivationSpec&); \
  template void activation_backward<T>(T*, const T*, const T*, int64_t, const ActivationSpec&);
DLCORE_INSTANTIATE_ACTIVATION(float)
DLCORE_INSTANTIATE_ACTIVATION(double)
#undef DLCORE_INSTANTIATE_ACTIVATION

}  // namespace dlcore
