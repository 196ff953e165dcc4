// One AVX register of float or double as a GCC/Clang vector, for the few loops the
// compiler does not vectorise well by itself (private to the kernel sources).
#pragma once

#include <cstdint>
#include <cstring>

namespace dlcore::simd {

typedef float F32x8 __attribute__((vector_size(32)));
typedef int32_t I32x8 __attribute__((vector_size(32)));
typedef double F64x4 __attribute__((vector_size(32)));
typedef int64_t I64x4 __attribute__((vector_size(32)));

// Vec: the register; Int: integer lanes of the same width (what a compare returns).
template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  using Vec = F32x8;
  using Int = I32x8;
};
template <>
struct Lanes<double> {
  using Vec = F64x4;
  using Int = I64x4;
};

template <typename T>
using Vec = typename Lanes<T>::Vec;
template <typename T>
constexpr int kLanes = sizeof(Vec<T>) / sizeof(T);

// Unaligned load and store.
template <typename T>
Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <typename T>
void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace dlcore::simd
