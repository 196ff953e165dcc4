#include "recurrent.hpp"

#include "dlcore/checks.hpp"

namespace dlcore::bind {

std::optional<py::array> optional_state(py::handle obj, const char* fn, const char* name) {
  if (obj.is_none()) return std::nullopt;
  py::array a = to_numeric_array(obj, fn, name);
  check_ndim(a, 2, fn, name, "(N, U)");
  return a;
}

std::vector<int64_t> optional_shape(const std::optional<py::array>& a) {
  return a ? shape_of(*a) : std::vector<int64_t>{};
}

std::optional<py::array> optional_mask(py::handle obj, const char* fn) {
  if (obj.is_none()) return std::nullopt;
  py::array a = to_numeric_array(obj, fn, "mask");
  check_ndim(a, 2, fn, "mask", "(N, T)");
  // a != 0 is NumPy's own test, NaN included (it counts as a step that runs, as
  // casting to bool does); bool to uint8 is then an exact copy.
  py::array nonzero = a.attr("__ne__")(0);
  return CArray<uint8_t>(nonzero);
}

std::string describe_cache(const char* cls, int64_t N, int64_t T, int64_t I, int64_t U,
                           FloatType type, bool used, const std::string& more) {
  return std::string(cls) + "(N=" + std::to_string(N) + ", T=" + std::to_string(T) +
         ", I=" + std::to_string(I) + ", U=" + std::to_string(U) + more +
         ", dtype=" + (type == FloatType::f64 ? "float64" : "float32") + (used ? ", used" : "") +
         ")";
}

void check_unused(bool used, const char* fn, const char* producer) {
  if (used) {
    fail(fn,
         ": argument 'cache' was already used by a backward pass; the backward "
         "overwrites the forward's saved state, so each ",
         producer, " result serves one ", fn, " (run the forward again)");
  }
}

}  // namespace dlcore::bind
