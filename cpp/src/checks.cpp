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
  // As NumPy counts: the sizes other than 0 must multiply without overflow even when one
  // size is 0, so an empty batch of an impossible shape is the same error as a full one.
  int64_t n = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d == 0) {
      empty = true;
      continue;
    }
    if (d < 0) fail(what, ": shape ", shape_str(shape), " has a negative size");
    int64_t out;
    if (__builtin_mul_overflow(n, d, &out)) {
      fail(what, ": shape ", shape_str(shape),
           ": its number of elements overflows a 64-bit integer");
    }
    n = out;
  }
  return empty ? 0 : n;
}

}  // namespace dlcore
