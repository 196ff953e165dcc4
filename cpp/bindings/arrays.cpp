#include "arrays.hpp"

#include <sstream>

#include "dlcore/checks.hpp"

namespace dlcore::bind {

namespace {

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

[[noreturn]] void bad_dtype(const py::array& a, const char* fn, const char* name) {
  throw py::type_error(
      std::string(fn) + ": argument '" + name + "' has dtype " + std::string(py::str(a.dtype())) +
      "; expected a real floating-point (float32, float64), integer or bool array");
}

}  // namespace

py::array to_numeric_array(py::handle obj, const char* fn, const char* name) {
  if (obj.is_none()) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be an array, got None");
  }
  py::array a = py::array::ensure(obj);
  if (!a) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' of type " + type_name(obj) +
                         " could not be converted to a numeric array");
  }
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  const bool ok = kind == 'b' || kind == 'i' || kind == 'u' || (kind == 'f' && size <= 8);
  if (!ok) bad_dtype(a, fn, name);
  return a;
}

py::array index_array(py::handle obj, const char* fn, const char* name, const char* hint) {
  if (obj.is_none()) {
    throw py::type_error(std::string(fn) + ": argument '" + name +
                         "' must be an integer array, got None");
  }
  py::array a = py::array::ensure(obj);
  if (!a || (a.dtype().kind() != 'i' && a.dtype().kind() != 'u')) {
    const std::string got =
        a ? "dtype " + std::string(py::str(a.dtype())) : "type " + type_name(obj);
    throw py::type_error(std::string(fn) + ": argument '" + name + "' has " + got +
                         "; expected an array of integers (" + hint + ")");
  }
  return a;
}

FloatType float_type_of(const py::array& a) {
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (kind == 'f') return size == 8 ? FloatType::f64 : FloatType::f32;
  if (kind == 'i' || kind == 'u') return size >= 4 ? FloatType::f64 : FloatType::f32;
  return FloatType::f32;
}

FloatType common_float_type(std::initializer_list<const py::array*> arrays) {
  for (const py::array* a : arrays) {
    if (a && float_type_of(*a) == FloatType::f64) return FloatType::f64;
  }
  return FloatType::f32;
}

std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

std::string shape_str(const py::array& a) { return dlcore::shape_str(shape_of(a)); }

void check_ndim(const py::array& a, int ndim, const char* fn, const char* name,
                const char* layout) {
  if (a.ndim() != ndim) {
    fail(fn, ": argument '", name, "' must be ", ndim, "-D ", layout, ", got a ", a.ndim(),
         "-D array of shape ", shape_str(a));
  }
}

}  // namespace dlcore::bind
