#include "window_args.hpp"

#include <string>
#include <tuple>

#include "dlcore/checks.hpp"

namespace dlcore::bind {

namespace py = pybind11;

namespace {

std::string repr_of(py::handle obj) { return py::repr(obj); }

bool is_int(py::handle obj) {
  // bool is an int to Python but never a size; numpy integers have __index__.
  return !PyBool_Check(obj.ptr()) && PyIndex_Check(obj.ptr());
}

bool is_sequence(py::handle obj) {
  return py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj);
}

int64_t int_value(py::handle obj, const char* fn, const char* name, const char* expected) {
  if (!is_int(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be " + expected +
                         ", got " + repr_of(obj));
  }
  int overflow = 0;
  py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow) {
    fail(fn, ": argument '", name, "' = ", repr_of(obj), " does not fit a 64-bit integer");
  }
  return v;
}

}  // namespace

std::pair<int64_t, int64_t> int_pair_arg(py::handle obj, const char* fn, const char* name) {
  const char* expected = "an int or a pair of ints (h, w)";
  if (is_sequence(obj)) {
    py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
    if (seq.size() != 2)
      fail(fn, ": argument '", name, "' must be ", expected, ", got ", repr_of(obj));
    return {int_value(seq[0], fn, name, expected), int_value(seq[1], fn, name, expected)};
  }
  const int64_t v = int_value(obj, fn, name, expected);
  return {v, v};
}

std::array<int64_t, 4> padding_arg(py::handle obj, const char* fn) {
  const char* expected = "an int, (pad_h, pad_w) or ((top, bottom), (left, right))";
  if (!is_sequence(obj)) {
    const int64_t v = int_value(obj, fn, "padding", expected);
    return {v, v, v, v};
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != 2) fail(fn, ": argument 'padding' must be ", expected, ", got ", repr_of(obj));
  if (is_sequence(seq[0]) && is_sequence(seq[1])) {
    py::sequence h = py::reinterpret_borrow<py::sequence>(py::object(seq[0]));
    py::sequence w = py::reinterpret_borrow<py::sequence>(py::object(seq[1]));
    if (h.size() != 2 || w.size() != 2) {
      fail(fn, ": argument 'padding' must be ", expected, ", got ", repr_of(obj));
    }
    return {int_value(h[0], fn, "padding", expected), int_value(h[1], fn, "padding", expected),
            int_value(w[0], fn, "padding", expected), int_value(w[1], fn, "padding", expected)};
  }
  const int64_t ph = int_value(seq[0], fn, "padding", expected);
  const int64_t pw = int_value(seq[1], fn, "padding", expected);
  return {ph, ph, pw, pw};
}

std::vector<int64_t> shape_arg(py::handle obj, const char* fn, const char* name, size_t min_size,
                               size_t max_size, const char* expected) {
  if (!is_sequence(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be " + expected +
                         ", got " + repr_of(obj));
  }
  py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() < min_size || seq.size() > max_size)
    fail(fn, ": argument '", name, "' must be ", expected, ", got ", repr_of(obj));
  std::vector<int64_t> out(seq.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = int_value(seq[i], fn, name, expected);
  return out;
}

std::array<int64_t, 4> shape4_arg(py::handle obj, const char* fn, const char* name) {
  const auto v = shape_arg(obj, fn, name, 4, 4, "a tuple of 4 ints (N, H, W, C)");
  return {v[0], v[1], v[2], v[3]};
}

Window2d window_arg(const char* fn, py::handle strides, py::handle padding, py::handle dilation,
                    std::optional<std::pair<int64_t, int64_t>> strides_if_none) {
  Window2d w;
  std::tie(w.stride_h, w.stride_w) = strides.is_none() && strides_if_none
                                         ? *strides_if_none
                                         : int_pair_arg(strides, fn, "strides");
  if (dilation) std::tie(w.dilation_h, w.dilation_w) = int_pair_arg(dilation, fn, "dilation");
  const auto pad = padding_arg(padding, fn);
  w.pad_top = pad[0], w.pad_bottom = pad[1], w.pad_left = pad[2], w.pad_right = pad[3];
  return w;
}

}  // namespace dlcore::bind
