// Branch-free float approximations of exp, expm1, log1p, tanh and the normal CDF that GCC
// and Clang vectorise inside `#pragma omp simd` loops (libm's calls would keep a loop
// scalar), each within a few float32 ulps of the exact value (tests/test_activation.py
// measures them); `Math<double>` is plain libm, for float64's gradient checks (private
// to the kernel sources).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace dlcore::fast_math {

inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

inline float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// a * b + c, fused where the instruction set has FMA; builds without it (x86-64-v2,
// generic) would otherwise call libm's software fma on every element, unvectorised.
inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

// x * x - round(x * x), exactly: FMA where there is one, else Dekker's product of the
// halves of x split by Veltkamp (12 + 12 significant bits).
inline float square_error(float x, float sq) {
#ifdef __FMA__
  return std::fma(x, x, -sq);
#else
  const float t = 4097.0f * x;  // 2^12 + 1
  const float hi = t - (t - x), lo = x - hi;
  return ((hi * hi - sq) + 2.0f * hi * lo) + lo * lo;
#endif
}

// Comparisons written so that a NaN x falls through unchanged.
inline float at_most(float x, float hi) { return x > hi ? hi : x; }
inline float at_least(float x, float lo) { return x < lo ? lo : x; }

// e^x, to about 1 ulp, with gradual underflow, inf above 88.72 and NaN kept: the
// polynomial (Cephes' expf) on x - n ln2, scaled by 2^n in two halves so that every
// n from -150 to 128 is a valid exponent field.
inline float exp(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  x = at_least(at_most(x, 88.73f), -104.0f);
  const float t = madd(x, 1.44269504088896341f, kRound);
  const float n = t - kRound;
  float r = madd(n, -0.693359375f, x);  // ln 2 in two parts (Cody and Waite)
  r = madd(n, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = madd(p, r, 1.3981999507e-3f);
  p = madd(p, r, 8.3334519073e-3f);
  p = madd(p, r, 4.1665795894e-2f);
  p = madd(p, r, 1.6666665459e-1f);
  p = madd(p, r, 5.0000001201e-1f);
  const float y = madd(p, r * r, r) + 1.0f;
  const auto ni = static_cast<int32_t>(bits_of(t) - bits_of(kRound));
  const int32_t n1 = ni >> 1, n2 = ni - n1;
  return y * float_of((static_cast<uint32_t>(n1) + 127u) << 23) *
         float_of((static_cast<uint32_t>(n2) + 127u) << 23);
}

// e^x - 1 without the cancellation of exp(x) - 1 near 0: the Taylor series up to x^8
// for |x| < 0.5 (truncation below 1e-9 relative), exp(x) - 1 beyond.
inline float expm1(float x) {
  float p = 1.0f / 40320;
  p = madd(p, x, 1.0f / 5040);
  p = madd(p, x, 1.0f / 720);
  p = madd(p, x, 1.0f / 120);
  p = madd(p, x, 1.0f / 24);
  p = madd(p, x, 1.0f / 6);
  p = madd(p, x, 0.5f);
  const float small = madd(p * x, x, x);
  const float large = fast_math::exp(x) - 1.0f;
  return std::fabs(x) < 0.5f ? small : large;
}

// log(1 + u) for u in [0, 1], as 2 atanh(s) with s = u / (2 + u) in [0, 1/3]: the odd
// series to s^13 (truncation below 2e-8 relative).
inline float log1p_unit(float u) {
  const float s = u / (2.0f + u);
  const float z = s * s;
  float p = 2.0f / 13;
  p = madd(p, z, 2.0f / 11);
  p = madd(p, z, 2.0f / 9);
  p = madd(p, z, 2.0f / 7);
  p = madd(p, z, 2.0f / 5);
  p = madd(p, z, 2.0f / 3);
  return madd(p * z, s, 2.0f * s);
}

// tanh x: Cephes' tanhf polynomial below |x| = 0.625, 1 - 2 / (e^2|x| + 1) above.
inline float tanh(float x) {
  const float a = std::fabs(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = madd(p, z, 2.06390887954e-2f);
  p = madd(p, z, -5.37397155531e-2f);
  p = madd(p, z, 1.33314422036e-1f);
  p = madd(p, z, -3.33332819422e-1f);
  const float small = madd(p * z, x, x);
  const float large = std::copysign(1.0f - 2.0f / (fast_math::exp(2.0f * a) + 1.0f), x);
  return a < 0.625f ? small : large;
}

// e^(-x^2 / 2), with x^2 split into its rounded value and its rounding error (exact, see
// square_error): rounding x^2 first would cost x^2 / 2 ulps (12 at x = 5).
inline float exp_minus_half_square(float x) {
  const float sq = x * x;
  const float err = square_error(x, sq);  // NaN for infinite x, where e^(-sq/2) is 0
  const float e = fast_math::exp(-0.5f * sq);
  const float corrected = e * madd(-0.5f, err, 1.0f);
  return e == 0.0f ? 0.0f : corrected;
}

// Phi(x) = P(Z <= x) for a standard normal Z, i.e. erfc(-x / sqrt 2) / 2, to a few
// ulps relative in both tails, and its density phi(x) = e^(-x^2/2) / sqrt(2 pi), which
// shares the exponential. For a = |x|: Phi(-a) = e^(-a^2/2) t R(t), t = 1/(1 + a/4), R a
// degree-10 Chebyshev fit of erfcx(a / sqrt 2) / (2t) on a in [0, 14] (error 2e-9,
// monomials in s = (2t - 1 - t_min) / (1 - t_min)); Phi(x) = 1 - Phi(-a) for x > 0.
// Beyond a = 14 the fit extrapolates, but e^(-a^2/2) is below float's range there.
struct NormalCdfPdf {
  float cdf, pdf;
  explicit NormalCdfPdf(float x) {
    const float a = std::fabs(x);
    const float t = 1.0f / madd(0.25f, a, 1.0f);
    const float s = madd(t, 2.571428571f, -1.571428571f);
    float p = -1.064243526e-06f;
    p = madd(p, s, 3.076238445e-06f);
    p = madd(p, s, 1.745252147e-05f);
    p = madd(p, s, -4.296231928e-05f);
    p = madd(p, s, -3.113243147e-04f);
    p = madd(p, s, 9.652189806e-05f);
    p = madd(p, s, 6.002350204e-03f);
    p = madd(p, s, 2.858745982e-02f);
    p = madd(p, s, 8.016383218e-02f);
    p = madd(p, s, 1.575624184e-01f);
    p = madd(p, s, 2.279222398e-01f);
    const float e = exp_minus_half_square(a);
    const float lower = e * t * p;  // Phi(-a)
    const float upper = 1.0f - lower;
    cdf = x > 0.0f ? upper : lower;
    pdf = 0.398942280f * e;
  }
};

// The functions the activations use, in T: these approximations for float, libm for
// double.
template <typename T>
struct Math;

template <>
struct Math<float> {
  static float exp(float x) { return fast_math::exp(x); }
  static float expm1(float x) { return fast_math::expm1(x); }
  static float log1p_unit(float u) { return fast_math::log1p_unit(u); }
  static float tanh(float x) { return fast_math::tanh(x); }
  static float normal_cdf(float x) { return NormalCdfPdf(x).cdf; }
  // Phi(x) + x phi(x), gelu's derivative
  static float gelu_slope(float x) {
    const NormalCdfPdf n(x);
    return madd(x, n.pdf, n.cdf);
  }
  static constexpr float kExpMax = 88.0f;  // exp of more overflows
};

template <>
struct Math<double> {
  static double exp(double x) { return std::exp(x); }
  static double expm1(double x) { return std::expm1(x); }
  static double log1p_unit(double u) { return std::log1p(u); }
  static double tanh(double x) { return std::tanh(x); }
  static double normal_cdf(double x) { return 0.5 * std::erfc(-x * 0.70710678118654752440); }
  static double gelu_slope(double x) {
    return normal_cdf(x) + x * 0.39894228040143267794 * std::exp(-0.5 * x * x);
  }
  static constexpr double kExpMax = 709.0;
};

}  // namespace dlcore::fast_math
