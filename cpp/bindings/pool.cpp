#include "dlcore/pool.hpp"

#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"
#include "window_args.hpp"

namespace dlcore::bind {

namespace {

Pool2dParams pool_params(const char* fn, py::handle pool_size, py::handle strides,
                         py::handle padding) {
  Pool2dParams p;
  std::tie(p.pool_h, p.pool_w) = int_pair_arg(pool_size, fn, "pool_size");
  // strides=None means non-overlapping windows, as in Keras.
  static_cast<Window2d&>(p) =
      window_arg(fn, strides, padding, py::handle(), std::make_pair(p.pool_h, p.pool_w));
  return p;
}

// x as a 4-D array and its shape pooled with the window.
std::pair<py::array, Pool2dShape> pool_input(const char* fn, py::handle x_obj, py::handle pool_size,
                                             py::handle strides, py::handle padding) {
  py::array x = to_numeric_array(x_obj, fn, "x");
  check_ndim(x, 4, fn, "x", "(N, H, W, C)");
  int64_t xd[4];
  dims4(x, xd);
  return {x, Pool2dShape(fn, xd, pool_params(fn, pool_size, strides, padding))};
}

py::tuple maxpool2d_forward(py::handle x_obj, py::handle pool_size, py::handle strides,
                            py::handle padding, bool need_argmax) {
  const char* fn = "maxpool2d_forward";
  const auto in = pool_input(fn, x_obj, pool_size, strides, padding);
  const py::array& x_arr = in.first;
  const Pool2dShape& s = in.second;
  return dispatch(float_type_of(x_arr), [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    auto x = as_c_array<T>(x_arr);
    auto y = new_array<T>({s.N, s.OH, s.OW, s.C});
    if (!need_argmax) {
      {
        py::gil_scoped_release release;
        dlcore::maxpool2d_forward<T>(y.mutable_data(), nullptr, x.data(), s);
      }
      return py::make_tuple(y, py::none());
    }
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
    auto dx = new_array<T>({s.N, s.H, s.W, s.C});  // every element written
    {
      py::gil_scoped_release release;
      dlcore::maxpool2d_backward<T>(dx.mutable_data(), dy.data(), argmax.data(), s);
    }
    return dx;
  });
}

py::array avgpool2d_forward(py::handle x_obj, py::handle pool_size, py::handle strides,
                            py::handle padding) {
  const char* fn = "avgpool2d_forward";
  const auto in = pool_input(fn, x_obj, pool_size, strides, padding);
  const py::array& x_arr = in.first;
  const Pool2dShape& s = in.second;
  return dispatch(float_type_of(x_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    auto x = as_c_array<T>(x_arr);
    auto y = new_array<T>({s.N, s.OH, s.OW, s.C});
    {
      py::gil_scoped_release release;
      dlcore::avgpool2d_forward<T>(y.mutable_data(), x.data(), s);
    }
    return y;
  });
}

py::array avgpool2d_backward(py::handle dy_obj, py::handle x_shape_obj, py::handle pool_size,
                             py::handle strides, py::handle padding) {
  const char* fn = "avgpool2d_backward";
  py::array dy_arr = to_numeric_array(dy_obj, fn, "dy");
  check_ndim(dy_arr, 4, fn, "dy", "(N, OH, OW, C)");
  const auto xs = shape4_arg(x_shape_obj, fn, "x_shape");
  int64_t xd[4] = {xs[0], xs[1], xs[2], xs[3]}, dyd[4];
  dims4(dy_arr, dyd);
  const Pool2dShape s(fn, xd, pool_params(fn, pool_size, strides, padding), dyd);
  return dispatch(float_type_of(dy_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    auto dy = as_c_array<T>(dy_arr);
    auto dx = new_array<T>({s.N, s.H, s.W, s.C});  // every element written
    {
      py::gil_scoped_release release;
      dlcore::avgpool2d_backward<T>(dx.mutable_data(), dy.data(), s);
    }
    return dx;
  });
}

// The mask of a global pooling: None, or a bool array of x's shape without its channels.
std::optional<py::array_t<bool>> global_pool_mask(const char* fn, py::handle mask_obj,
                                                  const std::vector<int64_t>& x_shape) {
  if (mask_obj.is_none()) return std::nullopt;
  py::array mask = py::array::ensure(mask_obj);
  if (!mask || mask.dtype().kind() != 'b') {
    throw py::type_error(
        std::string(fn) + ": argument 'mask' has dtype " +
        std::string(py::str(mask ? py::object(mask.dtype()) : py::object(py::type::of(mask_obj)))) +
        "; expected bool (True where a position counts)");
  }
  const std::vector<int64_t> want(x_shape.begin(), x_shape.end() - 1);
  if (shape_of(mask) != want) {
    fail(fn, ": argument 'mask' has shape ", shape_str(mask), " but x has shape ",
         dlcore::shape_str(x_shape), "; expected mask ", dlcore::shape_str(want));
  }
  return as_c_array<bool>(mask);
}

py::array global_avgpool_forward(py::handle x_obj, py::handle mask_obj) {
  const char* fn = "global_avgpool_forward";
  py::array x_arr = to_numeric_array(x_obj, fn, "x");
  if (x_arr.ndim() != 3 && x_arr.ndim() != 4) {
    fail(fn, ": argument 'x' must be 3-D (N, T, C) or 4-D (N, H, W, C), got a ", x_arr.ndim(),
         "-D array of shape ", shape_str(x_arr));
  }
  const std::vector<int64_t> xs = shape_of(x_arr);
  const GlobalPoolShape s(fn, xs);
  const auto mask = global_pool_mask(fn, mask_obj, xs);
  return dispatch(float_type_of(x_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    auto x = as_c_array<T>(x_arr);
    auto y = new_array<T>({s.N, s.C});
    {
      py::gil_scoped_release release;
      dlcore::global_avgpool_forward<T>(y.mutable_data(), x.data(), mask ? mask->data() : nullptr,
                                        s);
    }
    return y;
  });
}

py::array global_avgpool_backward(py::handle dy_obj, py::handle x_shape_obj, py::handle mask_obj) {
  const char* fn = "global_avgpool_backward";
  py::array dy_arr = to_numeric_array(dy_obj, fn, "dy");
  check_ndim(dy_arr, 2, fn, "dy", "(N, C)");
  const std::vector<int64_t> xs =
      shape_arg(x_shape_obj, fn, "x_shape", 3, 4, "a tuple of 3 or 4 ints (N, ..., C)");
  const GlobalPoolShape s(fn, xs);
  if (shape_of(dy_arr) != std::vector<int64_t>{s.N, s.C}) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dy_arr), " but x_shape is ",
         dlcore::shape_str(xs), "; expected dy (", s.N, ", ", s.C, ")");
  }
  const auto mask = global_pool_mask(fn, mask_obj, xs);
  return dispatch(float_type_of(dy_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    auto dy = as_c_array<T>(dy_arr);
    auto dx = new_array<T>(xs);  // every element written
    {
      py::gil_scoped_release release;
      dlcore::global_avgpool_backward<T>(dx.mutable_data(), dy.data(),
                                         mask ? mask->data() : nullptr, s);
    }
    return dx;
  });
}

}  // namespace

void register_pool(py::module_& m) {
  m.def("maxpool2d_forward", &maxpool2d_forward, py::arg("x"), py::kw_only(),
        py::arg("pool_size") = 2, py::arg("strides") = py::none(), py::arg("padding") = 0,
        py::arg("need_argmax") = true,
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
    (row, then column) on ties; a NaN in a window wins and propagates, as in PyTorch.
    need_argmax=False (inference: no backward will follow) returns ``(y, None)``: the
    same y, without finding or storing the positions.)doc");
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
  m.def("avgpool2d_forward", &avgpool2d_forward, py::arg("x"), py::kw_only(),
        py::arg("pool_size") = 2, py::arg("strides") = py::none(), py::arg("padding") = 0,
        R"doc(2-D average pool, channels-last.

Args:
    x: ``(N, H, W, C)`` input.
    pool_size: int or ``(h, w)`` window.
    strides: int or ``(h, w)``; None (the default) means ``pool_size``.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))``, each side
        smaller than the window. Padded cells are left out of the mean (Keras' ``'same'``;
        PyTorch's ``count_include_pad=False``).

Returns:
    ``y`` of shape ``(N, OH, OW, C)`` with ``OH = (H + top + bottom - pool_h) //
    strides_h + 1`` (OW alike): each window's sum over its cells inside ``x``, times one
    over their count.)doc");
  m.def("avgpool2d_backward", &avgpool2d_backward, py::arg("dy"), py::arg("x_shape"), py::kw_only(),
        py::arg("pool_size") = 2, py::arg("strides") = py::none(), py::arg("padding") = 0,
        R"doc(Gradient of :func:`avgpool2d_forward` with respect to ``x``.

Args:
    dy: ``(N, OH, OW, C)`` gradient of the loss with respect to ``y``.
    x_shape: the forward's ``x.shape``, a tuple ``(N, H, W, C)``.
    pool_size, strides, padding: as given to the forward.

Returns:
    ``dx`` of shape ``x_shape``: each cell gets the ``dy`` of every window holding it,
    divided by that window's count of cells.)doc");
  m.def("global_avgpool_forward", &global_avgpool_forward, py::arg("x"),
        py::arg("mask") = py::none(),
        R"doc(Global average pool, channels-last: the mean over every position of a sample.

Args:
    x: ``(N, T, C)`` or ``(N, H, W, C)`` input.
    mask: None, or a bool array of ``x``'s shape without the channels, True where a
        position counts (Keras' masks); the mean is then over those positions alone.

Returns:
    ``y`` of shape ``(N, C)``. A sample whose mask keeps no position gets NaN (0 / 0), as
    in Keras.)doc");
  m.def("global_avgpool_backward", &global_avgpool_backward, py::arg("dy"), py::arg("x_shape"),
        py::arg("mask") = py::none(),
        R"doc(Gradient of :func:`global_avgpool_forward` with respect to ``x``.

Args:
    dy: ``(N, C)`` gradient of the loss with respect to ``y``.
    x_shape: the forward's ``x.shape``, a tuple ``(N, T, C)`` or ``(N, H, W, C)``.
    mask: the forward's mask, or None.

Returns:
    ``dx`` of shape ``x_shape``: ``dy`` divided by the count of positions at each position
    counted, zero at the others.)doc");
}

}  // namespace dlcore::bind
