#include "dlcore/conv2d.hpp"

#include <optional>
#include <tuple>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"
#include "window_args.hpp"

namespace dlcore::bind {

namespace {

// x and kernel checked against each other and the window arguments.
struct Conv2dArgs {
  py::array x, kernel;
  Conv2dShape shape;
};

Conv2dArgs conv2d_args(const char* fn, py::handle x_obj, py::handle kernel_obj, py::handle strides,
                       py::handle padding, py::handle dilation) {
  py::array x = to_numeric_array(x_obj, fn, "x");
  py::array kernel = to_numeric_array(kernel_obj, fn, "kernel");
  check_ndim(x, 4, fn, "x", "(N, H, W, C)");
  check_ndim(kernel, 4, fn, "kernel", "(KH, KW, C, OC)");
  int64_t xd[4], kd[4];
  dims4(x, xd);
  dims4(kernel, kd);
  return {x, kernel, Conv2dShape(fn, xd, kd, window_arg(fn, strides, padding, dilation))};
}

py::array conv2d_forward(py::handle x_obj, py::handle kernel_obj, py::handle bias_obj,
                         py::handle strides, py::handle padding, py::handle dilation) {
  const char* fn = "conv2d_forward";
  Conv2dArgs args = conv2d_args(fn, x_obj, kernel_obj, strides, padding, dilation);
  const Conv2dShape& s = args.shape;
  std::optional<py::array> bias;  // (a default py::array is an empty float64 array)
  if (!bias_obj.is_none()) {
    bias = to_numeric_array(bias_obj, fn, "bias");
    check_ndim(*bias, 1, fn, "bias", "(OC,)");
    if (bias->shape(0) != s.OC) {
      fail(fn, ": argument 'bias' has shape ", shape_str(*bias), " but kernel has shape ",
           shape_str(args.kernel), " with OC=", s.OC, "; expected bias (", s.OC, ",)");
    }
  }
  const FloatType type = common_float_type({&args.x, &args.kernel, bias ? &*bias : nullptr});
  return dispatch(type, [&](auto zero) -> py::array {
    using T = decltype(zero);
    auto x = as_c_array<T>(args.x);
    auto kernel = as_c_array<T>(args.kernel);
    std::optional<CArray<T>> b;
    if (bias) b = as_c_array<T>(*bias);
    // Every element is written (bias, then the GEMMs accumulate), so no zeroing.
    py::array_t<T> y = new_array<T>({s.N, s.OH, s.OW, s.OC});
    {
      py::gil_scoped_release release;
      dlcore::conv2d_forward<T>(y.mutable_data(), x.data(), kernel.data(), b ? b->data() : nullptr,
                                s);
    }
    return y;
  });
}

py::tuple conv2d_backward(py::handle dy_obj, py::handle x_obj, py::handle kernel_obj,
                          py::handle strides, py::handle padding, py::handle dilation, bool need_dx,
                          bool need_dkernel, bool need_dbias) {
  const char* fn = "conv2d_backward";
  Conv2dArgs args = conv2d_args(fn, x_obj, kernel_obj, strides, padding, dilation);
  const Conv2dShape& s = args.shape;
  py::array dy_arr = to_numeric_array(dy_obj, fn, "dy");
  check_ndim(dy_arr, 4, fn, "dy", "(N, OH, OW, OC)");
  if (shape_of(dy_arr) != std::vector<int64_t>{s.N, s.OH, s.OW, s.OC}) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dy_arr), " but x ", shape_str(args.x),
         " convolved with kernel ", shape_str(args.kernel), " gives y of shape ",
         dlcore::shape_str({s.N, s.OH, s.OW, s.OC}), "; expected dy of that shape");
  }
  const FloatType type = common_float_type({&dy_arr, &args.x, &args.kernel});
  return dispatch(type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    auto dy = as_c_array<T>(dy_arr);
    // x is read only for dkernel and kernel only for dx: the other is never converted.
    std::optional<CArray<T>> x, kernel;
    if (need_dkernel) x = as_c_array<T>(args.x);
    if (need_dx) kernel = as_c_array<T>(args.kernel);
    py::object dx = py::none(), dkernel = py::none(), dbias = py::none();
    T *dx_p = nullptr, *dkernel_p = nullptr, *dbias_p = nullptr;
    if (need_dx) {
      auto a = new_zeros<T>(shape_of(args.x));
      dx_p = a.mutable_data(), dx = a;
    }
    if (need_dkernel) {
      auto a = new_zeros<T>(shape_of(args.kernel));
      dkernel_p = a.mutable_data(), dkernel = a;
    }
    if (need_dbias) {
      auto a = new_zeros<T>({s.OC});
      dbias_p = a.mutable_data(), dbias = a;
    }
    {
      py::gil_scoped_release release;
      dlcore::conv2d_backward<T>(dx_p, dkernel_p, dbias_p, dy.data(), x ? x->data() : nullptr,
                                 kernel ? kernel->data() : nullptr, s);
    }
    return py::make_tuple(dx, dkernel, dbias);
  });
}

const char* plan_name(Conv2dPlan plan) {
  switch (plan) {
    case Conv2dPlan::pointwise:
      return "pointwise";
    case Conv2dPlan::direct:
      return "direct";
    case Conv2dPlan::pixel_tiles:
      return "pixel_tiles";
    case Conv2dPlan::winograd:
      return "winograd";
  }
  return "unknown";
}

py::dict conv2d_plan(py::handle x_shape_obj, py::handle kernel_shape_obj, py::handle strides,
                     py::handle padding, py::handle dilation) {
  const char* fn = "conv2d_plan";
  const auto xs = shape4_arg(x_shape_obj, fn, "x_shape");
  const auto ks = shape4_arg(kernel_shape_obj, fn, "kernel_shape");
  const int64_t x[4] = {xs[0], xs[1], xs[2], xs[3]}, k[4] = {ks[0], ks[1], ks[2], ks[3]};
  const Conv2dShape s(fn, x, k, window_arg(fn, strides, padding, dilation));
  py::dict plans;
  plans["forward"] = plan_name(dlcore::conv2d_plan(s, Conv2dPass::forward));
  plans["input_grad"] = plan_name(dlcore::conv2d_plan(s, Conv2dPass::input_grad));
  plans["weight_grads"] = plan_name(dlcore::conv2d_plan(s, Conv2dPass::weight_grads));
  return plans;
}

}  // namespace

void register_conv2d(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward, py::arg("x"), py::arg("kernel"),
        py::arg("bias") = py::none(), py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1,
        R"doc(2-D convolution (cross-correlation, as in Keras and PyTorch), channels-last.

Args:
    x: ``(N, H, W, C)`` input.
    kernel: ``(KH, KW, C, OC)`` filters, as Keras stores them.
    bias: ``(OC,)`` or None.
    strides, dilation: int or ``(h, w)``, >= 1.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))`` zeros
        around the input; asymmetric padding is what Keras ``'same'`` needs.

Returns:
    ``y`` of shape ``(N, OH, OW, OC)`` with
    ``OH = (H + top + bottom - dilation_h * (KH - 1) - 1) // strides_h + 1`` (OW alike),
    float64 when NumPy would promote the inputs to it, else float32.

C-contiguous inputs of that dtype are used in place. The GIL is released while the
kernel runs.)doc");
  m.def("conv2d_backward", &conv2d_backward, py::arg("dy"), py::arg("x"), py::arg("kernel"),
        py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("need_dx") = true, py::arg("need_dkernel") = true, py::arg("need_dbias") = true,
        R"doc(Gradients of :func:`conv2d_forward`.

Args:
    dy: ``(N, OH, OW, OC)`` gradient of the loss with respect to ``y``.
    x, kernel, strides, padding, dilation: as given to :func:`conv2d_forward`.
    need_dx, need_dkernel, need_dbias: a gradient that is not needed comes back as
        ``None`` and costs nothing (a first layer needs no ``dx``).

Returns:
    ``(dx, dkernel, dbias)`` shaped ``(N, H, W, C)``, ``(KH, KW, C, OC)`` and ``(OC,)``.
    For a given thread count the results are the same, bit for bit, on every run.)doc");
  m.def(
      "conv2d_plan", &conv2d_plan, py::arg("x_shape"), py::arg("kernel_shape"), py::kw_only(),
      py::arg("strides") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
      R"doc(The algorithm each pass of a convolution of these shapes runs, as chosen by measurement.

Args:
    x_shape: ``(N, H, W, C)``; kernel_shape: ``(KH, KW, C, OC)``.
    strides, padding, dilation: as for :func:`conv2d_forward`.

Returns:
    ``{'forward': plan, 'input_grad': plan, 'weight_grads': plan}`` where a plan is
    ``'pointwise'`` (a 1x1 conv as one GEMM), ``'direct'`` (no GEMM: a first layer),
    ``'pixel_tiles'`` (im2col and GEMM over tiles of output pixels) or ``'winograd'``
    (Winograd F(2x2, 3x3) for 3x3 stride-1 convolutions).)doc");
}

}  // namespace dlcore::bind
