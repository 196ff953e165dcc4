// Array checks and dtype dispatch for the bindings: the only code that knows NumPy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "array_cache.hpp"
#include "dlcore/gemm.hpp"

namespace dlcore::bind {

namespace py = pybind11;

enum class FloatType { f32, f64 };

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

// obj as a NumPy array of a real numeric dtype. None, strings, objects, complex and
// extended precision raise TypeError naming fn and the argument; NumPy-convertible
// sequences are accepted.
py::array to_numeric_array(py::handle obj, const char* fn, const char* name);

// The float type NumPy would compute in: float64 when any input promotes float32 to
// float64 (float64 itself, 32- and 64-bit integers), float32 otherwise.
FloatType float_type_of(const py::array& a);
FloatType common_float_type(std::initializer_list<const py::array*> arrays);

// Raises ValueError unless a has `ndim` dimensions; `layout` names them, e.g. "(N, H, W, C)".
void check_ndim(const py::array& a, int ndim, const char* fn, const char* name, const char* layout);

std::vector<int64_t> shape_of(const py::array& a);
std::string shape_str(const py::array& a);

// True when a's data pointer is aligned for T. NumPy makes unaligned arrays only on
// request (a view at an odd byte offset, a packed structured field), and pybind11's
// conversions let them through; the kernels read T directly, so they get a copy.
template <typename T>
bool is_aligned_for(const py::array& a) {
  return reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0;
}

// a as an aligned C-contiguous array of T: the same object when it already is one,
// otherwise one converted copy. A conversion that fails (a copy too large for memory)
// raises its Python error: CArray<T>::ensure would return a null array instead.
template <typename T>
CArray<T> as_c_array(const py::array& a) {
  CArray<T> c = py::object(a);
  if (is_aligned_for<T>(c)) return c;
  CArray<T> copy(std::vector<py::ssize_t>(c.shape(), c.shape() + c.ndim()));
  std::memcpy(copy.mutable_data(), c.data(), static_cast<size_t>(c.nbytes()));
  return copy;
}

// A new uninitialised (new_array) or zeroed (new_zeros) C-contiguous array; a large one
// takes its memory from the array cache (array_cache.hpp), zeroed on the kernels' threads.
template <typename T>
py::array_t<T> new_array(const std::vector<int64_t>& shape) {
  return py::reinterpret_steal<py::array_t<T>>(cached_array(shape, py::dtype::of<T>()).release());
}
template <typename T>
py::array_t<T> new_zeros(const std::vector<int64_t>& shape) {
  return py::reinterpret_steal<py::array_t<T>>(
      cached_array(shape, py::dtype::of<T>(), /*zeroed=*/true).release());
}

// A 2-D operand for GEMM, used in place whenever its memory is a row-major or
// column-major matrix with a leading dimension (C- or Fortran-ordered, or a slice of
// one); anything else is converted to C order once. `keep` owns the memory.
template <typename T>
struct MatrixOperand {
  py::array keep;
  MatRef<T> ref;
};

template <typename T>
MatrixOperand<T> matrix_operand(const py::array& a, bool trans) {
  const auto rows = static_cast<int64_t>(a.shape(0));
  const auto cols = static_cast<int64_t>(a.shape(1));
  const int64_t item = sizeof(T);
  const bool usable = py::isinstance<py::array_t<T>>(a) && is_aligned_for<T>(a);
  if (usable) {
    const int64_t s0 = a.strides(0), s1 = a.strides(1);
    const bool row_major = (cols <= 1 || s1 == item) && s0 % item == 0 && s0 / item >= cols;
    const bool col_major = (rows <= 1 || s0 == item) && s1 % item == 0 && s1 / item >= rows;
    if (row_major) {
      return {a, {static_cast<const T*>(a.data()), std::max<int64_t>(s0 / item, 1), trans}};
    }
    if (col_major) {
      return {a, {static_cast<const T*>(a.data()), std::max<int64_t>(s1 / item, 1), !trans}};
    }
  }
  CArray<T> c = as_c_array<T>(a);
  return {c, {c.data(), std::max<int64_t>(cols, 1), trans}};
}

// obj as a NumPy integer array; None, floats, bools and anything else raise TypeError
// naming fn and the argument, with `hint` appended to what is expected.
py::array index_array(py::handle obj, const char* fn, const char* name, const char* hint);

// Calls f(I{}) with I the C++ integer type of an index_array's dtype.
template <typename F>
auto dispatch_index(const py::array& idx, F&& f) {
  const bool is_signed = idx.dtype().kind() == 'i';
  switch (idx.dtype().itemsize()) {
    case 1:
      return is_signed ? f(int8_t{}) : f(uint8_t{});
    case 2:
      return is_signed ? f(int16_t{}) : f(uint16_t{});
    case 4:
      return is_signed ? f(int32_t{}) : f(uint32_t{});
    default:
      return is_signed ? f(int64_t{}) : f(uint64_t{});
  }
}

// Calls f(T{}) with T = float or double.
template <typename F>
auto dispatch(FloatType t, F&& f) {
  if (t == FloatType::f64) return f(double{});
  return f(float{});
}

}  // namespace dlcore::bind
