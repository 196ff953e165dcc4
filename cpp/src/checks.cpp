#include "dlcore/checks.hpp"

namespace dlcore {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '(';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) os << ", ";
    os << shape[i];
  }
  if (shape.size() == 1) os << ',';
  os << ')';
  return os.str();
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t out;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &out)) {
    fail(what, ": size ", a, " x ", b, " overflows a 64-bit integer");
  }
  return out;
}

int64_t checked_numel(const std::vector<int64_t>& shape, const char* what) {
  int64_t n = 1;
  for (int64_t d : shape) n = checked_mul(n, d, what);
  return n;
}

}  // namespace dlcore
