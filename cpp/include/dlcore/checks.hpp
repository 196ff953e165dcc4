// Small helpers for validating sizes at the boundary, shared by the kernel families.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
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

}  // namespace dlcore
