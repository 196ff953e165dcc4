// Small helpers for validating sizes at the boundary, shared by the kernel families.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace dlcore {

// Builds an error message from streamable parts: fail("gemm: a has ", n, " rows").
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw std::invalid_argument(os.str());
}

// "(2, 3, 4)", the way NumPy prints a shape.
std::string shape_str(const std::vector<int64_t>& shape);

// a * b, or an error naming what overflowed; sizes are non-negative.
int64_t checked_mul(int64_t a, int64_t b, const char* what);

// Product of the dims, with the same overflow check.
int64_t checked_numel(const std::vector<int64_t>& shape, const char* what);

// Whether index v lies outside [0, n), for an integer of any width and signedness: a
// negative v becomes huge as unsigned, so one comparison catches both sides.
template <typename I>
bool index_outside(I v, int64_t n) {
  return static_cast<uint64_t>(v) >= static_cast<uint64_t>(n);
}

// An integer of any width and signedness as decimal text (int8 values as numbers, not
// characters), for the messages that name a bad index.
template <typename I>
std::string integer_str(I v) {
  if constexpr (std::is_signed_v<I>) {
    return std::to_string(static_cast<long long>(v));
  } else {
    return std::to_string(static_cast<unsigned long long>(v));
  }
}

}  // namespace dlcore
