#include "dlcore/pool.hpp"

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"
#include "window_args.hpp"

namespace dlcore::bind {

namespace {

py::tuple maxpool2d_forward(py::handle x_obj, py::handle pool_size, py::handle strides,
                            py::handle padding) {
  const char* fn = "maxpool2d_forward";
  py::array x_arr = to_numeric_array(x_obj, fn, "x");
  check_ndim(x_arr, 4, fn, "x", "(N, H, W, C)");
  Pool2dParams p;
  std::tie(p.pool_h, p.pool_w) = int_pair_arg(pool_size, fn, "pool_size");
  // strides=None means non-overlapping windows, as in Keras.
  static_cast<Window2d&>(p) =
      window_arg(fn, strides, padding, py::handle(), std::make_pair(p.pool_h, p.pool_w));
  int64_t xd[4];
  dims4(x_arr, xd);
  const Pool2dShape s(fn, xd, p);
  return dispatch(float_type_of(x_arr), [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    auto x = as_c_array<T>(x_arr);
    auto y = new_array<T>({s.N, s.OH, s.OW, s.C});
    auto argmax = new_array<int64_t>({s.N, s.OH, s.OW, s.C});
    {
      py::gil_scoped_release release;
      dlcore::maxpool2d_forward<T>(y.mutable_data(), argmax.mutable_data(), x.data(), s);
    }
    return py::make_tuple(y, argmax);
  });
}

py::array maxpool2d_backward(py::handle dy_obj, py::handle argmax_obj, py::handle x_shape_obj) {
  const char* fn = "maxpool2d_backward";
  py::array dy_arr = to_numeric_array(dy_obj, fn, "dy");
  check_ndim(dy_arr, 4, fn, "dy", "(N, OH, OW, C)");
  if (argmax_obj.is_none()) {
    throw py::type_error(std::string(fn) + ": argument 'argmax' must be an array, got None");
  }
  py::array argmax_arr = py::array::ensure(argmax_obj);
  if (!argmax_arr || !py::isinstance<py::array_t<int64_t>>(argmax_arr)) {
    throw py::type_error(std::string(fn) + ": argument 'argmax' has dtype " +
                         std::string(py::str(argmax_arr ? py::object(argmax_arr.dtype())
                                                        : py::object(py::type::of(argmax_obj)))) +
                         "; expected int64, as maxpool2d_forward returns it");
  }
  if (shape_of(argmax_arr) != shape_of(dy_arr)) {
    fail(fn, ": argument 'argmax' has shape ", shape_str(argmax_arr), " but dy has shape ",
         shape_str(dy_arr), "; expected the same shape");
  }
  const auto xs = shape4_arg(x_shape_obj, fn, "x_shape");
  int64_t xd[4] = {xs[0], xs[1], xs[2], xs[3]}, dyd[4];
  dims4(dy_arr, dyd);
  const Pool2dShape s(fn, xd, dyd);
  return dispatch(float_type_of(dy_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    auto dy = as_c_array<T>(dy_arr);
    auto argmax = as_c_array<int64_t>(argmax_arr);
    auto dx = new_zeros<T>({s.N, s.H, s.W, s.C});
    {
      py::gil_scoped_release release;
      dlcore::maxpool2d_backward<T>(dx.mutable_data(), dy.data(), argmax.data(), s);
    }
    return dx;
  });
}

}  // namespace

void register_pool(py::module_& m) {
  m.def("maxpool2d_forward", &maxpool2d_forward, py::arg("x"), py::kw_only(),
        py::arg("pool_size") = 2, py::arg("strides") = py::none(), py::arg("padding") = 0,
        R"doc(2-D max-pool, channels-last, with the position of each maximum.

Args:
    x: ``(N, H, W, C)`` input.
    pool_size: int or ``(h, w)`` window.
    strides: int or ``(h, w)``; None (the default) means ``pool_size``.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))``, each side
        smaller than the window; padded cells never win.

Returns:
    ``(y, argmax)``, both ``(N, OH, OW, C)`` with
    ``OH = (H + top + bottom - pool_h) // strides_h + 1`` (OW alike). ``argmax`` (int64)
    holds the flat C-order index into ``x`` of each maximum: the first in window order
    (row, then column) on ties; a NaN in a window wins and propagates, as in PyTorch.)doc");
  m.def("maxpool2d_backward", &maxpool2d_backward, py::arg("dy"), py::arg("argmax"),
        py::arg("x_shape"),
        R"doc(Gradient of :func:`maxpool2d_forward` with respect to ``x``.

Args:
    dy: ``(N, OH, OW, C)`` gradient of the loss with respect to ``y``.
    argmax: the int64 ``argmax`` the forward returned.
    x_shape: the forward's ``x.shape``, a tuple ``(N, H, W, C)``.

Returns:
    ``dx`` of shape ``x_shape``: zero except at the maxima, where the ``dy`` of every
    window that chose that cell is added up (windows may overlap).)doc");
}

}  // namespace dlcore::bind
