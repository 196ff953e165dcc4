#include "dlcore/eltwise.hpp"

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

py::array relu(py::handle x_obj) {
  py::array x = to_numeric_array(x_obj, "relu", "x");
  return dispatch(float_type_of(x), [&](auto zero) -> py::array {
    using T = decltype(zero);
    CArray<T> xc = as_c_array<T>(x);
    py::array_t<T> y = new_array<T>(shape_of(x));
    {
      py::gil_scoped_release release;
      relu_forward<T>(y.mutable_data(), xc.data(), static_cast<int64_t>(xc.size()));
    }
    return y;
  });
}

py::array relu_backward(py::handle dy_obj, py::handle y_obj) {
  const char* fn = "relu_backward";
  py::array dy = to_numeric_array(dy_obj, fn, "dy");
  py::array y = to_numeric_array(y_obj, fn, "y");
  if (shape_of(dy) != shape_of(y)) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dy), " but 'y' has shape ", shape_str(y),
         "; expected the same shape");
  }
  return dispatch(common_float_type({&dy, &y}), [&](auto zero) -> py::array {
    using T = decltype(zero);
    CArray<T> dyc = as_c_array<T>(dy), yc = as_c_array<T>(y);
    py::array_t<T> dx = new_array<T>(shape_of(y));
    {
      py::gil_scoped_release release;
      dlcore::relu_backward<T>(dx.mutable_data(), dyc.data(), yc.data(),
                               static_cast<int64_t>(yc.size()));
    }
    return dx;
  });
}

}  // namespace

void register_eltwise(py::module_& m) {
  m.def("relu", &relu, py::arg("x"),
        "max(x, 0) elementwise, any shape; float64 stays float64, other inputs give float32.");
  m.def("relu_backward", &relu_backward, py::arg("dy"), py::arg("y"),
        "Gradient of relu: dy where the forward's output y is positive, else 0.");
}

}  // namespace dlcore::bind
