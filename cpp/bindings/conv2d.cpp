#include "dlcore/conv2d.hpp"

#include <optional>
#include <tuple>
#include <utility>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/eltwise.hpp"
#include "module.hpp"
#include "window_args.hpp"

namespace dlcore::bind {

namespace {

// x and kernel checked against each other and the window arguments: a convolution's
// Conv2dShape or a transposed one's Conv2dTransposeShape (both name x, y and the kernel's
// sizes alike).
template <typename Shape>
struct ConvArgs {
  py::array x, kernel;
  Shape shape;
};

std::pair<py::array, py::array> conv_arrays(const char* fn, py::handle x_obj, py::handle kernel_obj,
                                            const char* kernel_layout, int64_t (&xd)[4],
                                            int64_t (&kd)[4]) {
  py::array x = to_numeric_array(x_obj, fn, "x");
  py::array kernel = to_numeric_array(kernel_obj, fn, "kernel");
  check_ndim(x, 4, fn, "x", "(N, H, W, C)");
  check_ndim(kernel, 4, fn, "kernel", kernel_layout);
  dims4(x, xd);
  dims4(kernel, kd);
  return {x, kernel};
}

ConvArgs<Conv2dShape> conv2d_args(const char* fn, py::handle x_obj, py::handle kernel_obj,
                                  py::handle strides, py::handle padding, py::handle dilation) {
  int64_t xd[4], kd[4];
  auto [x, kernel] = conv_arrays(fn, x_obj, kernel_obj, "(KH, KW, C, OC)", xd, kd);
  return {x, kernel, Conv2dShape(fn, xd, kd, window_arg(fn, strides, padding, dilation))};
}

ConvArgs<Conv2dTransposeShape> conv2d_transpose_args(const char* fn, py::handle x_obj,
                                                     py::handle kernel_obj, py::handle strides,
                                                     py::handle padding, py::handle output_padding,
                                                     py::handle dilation) {
  int64_t xd[4], kd[4];
  auto [x, kernel] = conv_arrays(fn, x_obj, kernel_obj, "(KH, KW, OC, C)", xd, kd);
  Conv2dTransposeParams p;
  static_cast<Window2d&>(p) = window_arg(fn, strides, padding, dilation);
  std::tie(p.output_pad_h, p.output_pad_w) = int_pair_arg(output_padding, fn, "output_padding");
  return {x, kernel, Conv2dTransposeShape(fn, xd, kd, p)};
}

ConvArgs<DepthwiseConv2dShape> depthwise_conv2d_args(const char* fn, py::handle x_obj,
                                                     py::handle kernel_obj, py::handle strides,
                                                     py::handle padding, py::handle dilation) {
  int64_t xd[4], kd[4];
  auto [x, kernel] = conv_arrays(fn, x_obj, kernel_obj, "(KH, KW, C, M)", xd, kd);
  return {x, kernel, DepthwiseConv2dShape(fn, xd, kd, window_arg(fn, strides, padding, dilation))};
}

// The kernels of each kind, by the shape they take.
template <typename T>
void run_forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s) {
  dlcore::conv2d_forward<T>(y, x, kernel, bias, s);
}
template <typename T>
void run_forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dTransposeShape& s) {
  dlcore::conv2d_transpose_forward<T>(y, x, kernel, bias, s);
}
template <typename T>
void run_backward(T* dx, T* dk, T* db, const T* dy, const T* x, const T* kernel,
                  const Conv2dShape& s) {
  dlcore::conv2d_backward<T>(dx, dk, db, dy, x, kernel, s);
}
template <typename T>
void run_backward(T* dx, T* dk, T* db, const T* dy, const T* x, const T* kernel,
                  const Conv2dTransposeShape& s) {
  dlcore::conv2d_transpose_backward<T>(dx, dk, db, dy, x, kernel, s);
}

template <typename T>
void run_forward(T* y, const T* x, const T* kernel, const T* bias, const DepthwiseConv2dShape& s) {
  dlcore::depthwise_conv2d_forward<T>(y, x, kernel, bias, s);
}
template <typename T>
void run_backward(T* dx, T* dk, T* db, const T* dy, const T* x, const T* kernel,
                  const DepthwiseConv2dShape& s) {
  dlcore::depthwise_conv2d_backward<T>(dx, dk, db, dy, x, kernel, s);
}

// The activation a convolution may apply to its own output: None, or "relu" (Keras'
// plain relu, the common case: it then costs no separate pass, array or Python call).
bool fused_relu(const char* fn, py::handle activation) {
  if (activation.is_none()) return false;
  if (!py::isinstance<py::str>(activation)) {
    throw py::type_error(std::string(fn) + ": argument 'activation' is a " +
                         std::string(py::str(py::type::of(activation).attr("__name__"))) +
                         "; expected None or 'relu'");
  }
  const auto name = activation.cast<std::string>();
  if (name != "relu") {
    fail(fn, ": argument 'activation' is '", name,
         "'; expected None or 'relu' (the one activation fused into the convolution)");
  }
  return true;
}

template <typename Shape>
py::array conv_forward(const char* fn, const ConvArgs<Shape>& args, py::handle bias_obj,
                       bool relu = false) {
  const Shape& s = args.shape;
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
    // Every element is written (bias, then the products accumulate), so no zeroing.
    py::array_t<T> y = new_array<T>({s.N, s.OH, s.OW, s.OC});
    {
      py::gil_scoped_release release;
      run_forward<T>(y.mutable_data(), x.data(), kernel.data(), b ? b->data() : nullptr, s);
      if (relu) relu_forward<T>(y.mutable_data(), y.data(), static_cast<int64_t>(y.size()));
    }
    return y;
  });
}

// `op` says how x and kernel make y, for the message on a dy of the wrong shape.
// With relu, dy is the gradient of relu's output y (the forward's, which must be given)
// and the products take dy where y > 0, 0 elsewhere, as relu_backward gives it.
template <typename Shape>
py::tuple conv_backward(const char* fn, const char* op, const ConvArgs<Shape>& args,
                        py::handle dy_obj, bool need_dx, bool need_dkernel, bool need_dbias,
                        bool relu = false, py::handle y_obj = py::none()) {
  const Shape& s = args.shape;
  py::array dy_arr = to_numeric_array(dy_obj, fn, "dy");
  check_ndim(dy_arr, 4, fn, "dy", "(N, OH, OW, OC)");
  if (shape_of(dy_arr) != std::vector<int64_t>{s.N, s.OH, s.OW, s.OC}) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dy_arr), " but x ", shape_str(args.x), " ", op,
         " kernel ", shape_str(args.kernel), " gives y of shape ",
         dlcore::shape_str({s.N, s.OH, s.OW, s.OC}), "; expected dy of that shape");
  }
  std::optional<py::array> y_arr;
  if (relu) {
    if (y_obj.is_none()) {
      fail(fn, ": activation='relu' needs argument 'y', the forward's output; got None");
    }
    y_arr = to_numeric_array(y_obj, fn, "y");
    if (shape_of(*y_arr) != shape_of(dy_arr)) {
      fail(fn, ": argument 'y' has shape ", shape_str(*y_arr), " but dy has shape ",
           shape_str(dy_arr), "; expected the same shape (the forward's output)");
    }
  }
  const FloatType type = common_float_type({&dy_arr, &args.x, &args.kernel});
  return dispatch(type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    auto dy = as_c_array<T>(dy_arr);
    std::optional<CArray<T>> y;
    std::optional<py::array_t<T>> dz;  // dy through relu's gradient
    if (relu) {
      y = as_c_array<T>(*y_arr);
      dz = new_array<T>(shape_of(dy_arr));
    }
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
      const T* g = dy.data();
      if (relu) {
        relu_backward<T>(dz->mutable_data(), g, y->data(), static_cast<int64_t>(dz->size()));
        g = dz->data();
      }
      run_backward<T>(dx_p, dkernel_p, dbias_p, g, x ? x->data() : nullptr,
                      kernel ? kernel->data() : nullptr, s);
    }
    return py::make_tuple(dx, dkernel, dbias);
  });
}

py::array conv2d_forward(py::handle x, py::handle kernel, py::handle bias, py::handle strides,
                         py::handle padding, py::handle dilation, py::handle activation) {
  const char* fn = "conv2d_forward";
  const bool relu = fused_relu(fn, activation);
  return conv_forward(fn, conv2d_args(fn, x, kernel, strides, padding, dilation), bias, relu);
}

py::tuple conv2d_backward(py::handle dy, py::handle x, py::handle kernel, py::handle strides,
                          py::handle padding, py::handle dilation, bool need_dx, bool need_dkernel,
                          bool need_dbias, py::handle activation, py::handle y) {
  const char* fn = "conv2d_backward";
  const bool relu = fused_relu(fn, activation);
  return conv_backward(fn, "convolved with", conv2d_args(fn, x, kernel, strides, padding, dilation),
                       dy, need_dx, need_dkernel, need_dbias, relu, y);
}

py::array conv2d_transpose_forward(py::handle x, py::handle kernel, py::handle bias,
                                   py::handle strides, py::handle padding,
                                   py::handle output_padding, py::handle dilation) {
  const char* fn = "conv2d_transpose_forward";
  return conv_forward(
      fn, conv2d_transpose_args(fn, x, kernel, strides, padding, output_padding, dilation), bias);
}

py::tuple conv2d_transpose_backward(py::handle dy, py::handle x, py::handle kernel,
                                    py::handle strides, py::handle padding,
                                    py::handle output_padding, py::handle dilation, bool need_dx,
                                    bool need_dkernel, bool need_dbias) {
  const char* fn = "conv2d_transpose_backward";
  return conv_backward(
      fn, "transpose-convolved with",
      conv2d_transpose_args(fn, x, kernel, strides, padding, output_padding, dilation), dy, need_dx,
      need_dkernel, need_dbias);
}

py::array depthwise_conv2d_forward(py::handle x, py::handle kernel, py::handle bias,
                                   py::handle strides, py::handle padding, py::handle dilation) {
  const char* fn = "depthwise_conv2d_forward";
  return conv_forward(fn, depthwise_conv2d_args(fn, x, kernel, strides, padding, dilation), bias);
}

py::tuple depthwise_conv2d_backward(py::handle dy, py::handle x, py::handle kernel,
                                    py::handle strides, py::handle padding, py::handle dilation,
                                    bool need_dx, bool need_dkernel, bool need_dbias) {
  const char* fn = "depthwise_conv2d_backward";
  return conv_backward(fn, "depthwise-convolved with",
                       depthwise_conv2d_args(fn, x, kernel, strides, padding, dilation), dy,
                       need_dx, need_dkernel, need_dbias);
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
    case Conv2dPlan::row_views:
      return "row_views";
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
        py::arg("dilation") = 1, py::arg("activation") = py::none(),
        R"doc(2-D convolution (cross-correlation, as in Keras and PyTorch), channels-last.

Args:
    x: ``(N, H, W, C)`` input.
    kernel: ``(KH, KW, C, OC)`` filters, as Keras stores them.
    bias: ``(OC,)`` or None.
    strides, dilation: int or ``(h, w)``, >= 1.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))`` zeros
        around the input; asymmetric padding is what Keras ``'same'`` needs.
    activation: None, or ``'relu'``: ``y = max(conv + bias, 0)``, applied by the kernel
        (the same bits as :func:`relu` of the plain result, without its pass and array).

Returns:
    ``y`` of shape ``(N, OH, OW, OC)`` with
    ``OH = (H + top + bottom - dilation_h * (KH - 1) - 1) // strides_h + 1`` (OW alike),
    float64 when NumPy would promote the inputs to it, else float32.

C-contiguous inputs of that dtype are used in place. The GIL is released while the
kernel runs.)doc");
  m.def("conv2d_backward", &conv2d_backward, py::arg("dy"), py::arg("x"), py::arg("kernel"),
        py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
        py::arg("need_dx") = true, py::arg("need_dkernel") = true, py::arg("need_dbias") = true,
        py::arg("activation") = py::none(), py::arg("y") = py::none(),
        R"doc(Gradients of :func:`conv2d_forward`.

Args:
    dy: ``(N, OH, OW, OC)`` gradient of the loss with respect to ``y``.
    x, kernel, strides, padding, dilation, activation: as given to
        :func:`conv2d_forward`.
    need_dx, need_dkernel, need_dbias: a gradient that is not needed comes back as
        ``None`` and costs nothing (a first layer needs no ``dx``).
    y: with ``activation='relu'``, the forward's output (relu's gradient is dy where
        y > 0, as :func:`relu_backward` gives it); otherwise not read.

Returns:
    ``(dx, dkernel, dbias)`` shaped ``(N, H, W, C)``, ``(KH, KW, C, OC)`` and ``(OC,)``.
    For a given thread count the results are the same, bit for bit, on every run.)doc");
  m.def("conv2d_transpose_forward", &conv2d_transpose_forward, py::arg("x"), py::arg("kernel"),
        py::arg("bias") = py::none(), py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0,
        py::arg("output_padding") = 0, py::arg("dilation") = 1,
        R"doc(2-D transposed convolution (the adjoint of :func:`conv2d_forward`), channels-last.

Each input pixel scatters ``x[n, h, w] @ kernel[kh, kw].T`` to output pixel
``(h * strides_h - top + kh * dilation_h, ...)``: the input gradient of the convolution
whose kernel this is, so it runs that convolution's plans (``conv2d_plan`` of an input of
y's shape gives them: this forward is its ``input_grad`` pass).

Args:
    x: ``(N, H, W, C)`` input.
    kernel: ``(KH, KW, OC, C)`` filters, as Keras stores Conv2DTranspose's.
    bias: ``(OC,)`` or None.
    strides, dilation: int or ``(h, w)``, >= 1.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))`` rows and columns
        cropped from the full output, as PyTorch's ConvTranspose2d ``padding`` (Keras'
        ``'same'`` crops asymmetrically).
    output_padding: int or ``(h, w)`` rows and columns added at the bottom and right,
        each below its stride.

Returns:
    ``y`` of shape ``(N, OH, OW, OC)`` with ``OH = (H - 1) * strides_h + dilation_h *
    (KH - 1) + 1 - top - bottom + output_padding_h`` (OW alike), float64 when NumPy would
    promote the inputs to it, else float32.)doc");
  m.def("conv2d_transpose_backward", &conv2d_transpose_backward, py::arg("dy"), py::arg("x"),
        py::arg("kernel"), py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0,
        py::arg("output_padding") = 0, py::arg("dilation") = 1, py::arg("need_dx") = true,
        py::arg("need_dkernel") = true, py::arg("need_dbias") = true,
        R"doc(Gradients of :func:`conv2d_transpose_forward`.

``dx`` is the convolution of ``dy`` with the kernel (the ``forward`` pass of
``conv2d_plan`` for an input of y's shape), ``dkernel`` that convolution's kernel gradient
(its ``weight_grads`` pass), ``dbias`` the sums of ``dy`` over its pixels.

Args:
    dy: ``(N, OH, OW, OC)`` gradient of the loss with respect to ``y``.
    x, kernel, strides, padding, output_padding, dilation: as given to
        :func:`conv2d_transpose_forward`.
    need_dx, need_dkernel, need_dbias: a gradient that is not needed comes back as
        ``None`` and costs nothing.

Returns:
    ``(dx, dkernel, dbias)`` shaped ``(N, H, W, C)``, ``(KH, KW, OC, C)`` and ``(OC,)``.
    For a given thread count the results are the same, bit for bit, on every run.)doc");
  m.def("depthwise_conv2d_forward", &depthwise_conv2d_forward, py::arg("x"), py::arg("kernel"),
        py::arg("bias") = py::none(), py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1,
        R"doc(Depthwise 2-D convolution, channels-last: each input channel convolved with its own
``M`` filters (Keras' DepthwiseConv2D; PyTorch's conv2d with ``groups=C``).

``y[n, oh, ow, c * M + m] = bias[c * M + m] + sum over (kh, kw) of
x[n, oh * strides_h - top + kh * dilation_h, ow * strides_w - left + kw * dilation_w, c]
* kernel[kh, kw, c, m]``, zero outside ``x``.

Args:
    x: ``(N, H, W, C)`` input.
    kernel: ``(KH, KW, C, M)`` filters, as Keras stores DepthwiseConv2D's (``M`` is the
        depth multiplier).
    bias: ``(C * M,)`` or None.
    strides, dilation: int or ``(h, w)``, >= 1.
    padding: int, ``(pad_h, pad_w)`` or ``((top, bottom), (left, right))``, as for
        :func:`conv2d_forward`.

Returns:
    ``y`` of shape ``(N, OH, OW, C * M)``, OH and OW as for :func:`conv2d_forward`,
    float64 when NumPy would promote the inputs to it, else float32.)doc");
  m.def("depthwise_conv2d_backward", &depthwise_conv2d_backward, py::arg("dy"), py::arg("x"),
        py::arg("kernel"), py::kw_only(), py::arg("strides") = 1, py::arg("padding") = 0,
        py::arg("dilation") = 1, py::arg("need_dx") = true, py::arg("need_dkernel") = true,
        py::arg("need_dbias") = true,
        R"doc(Gradients of :func:`depthwise_conv2d_forward`.

Args:
    dy: ``(N, OH, OW, C * M)`` gradient of the loss with respect to ``y``.
    x, kernel, strides, padding, dilation: as given to :func:`depthwise_conv2d_forward`.
    need_dx, need_dkernel, need_dbias: a gradient that is not needed comes back as
        ``None`` and costs nothing.

Returns:
    ``(dx, dkernel, dbias)`` shaped ``(N, H, W, C)``, ``(KH, KW, C, M)`` and ``(C * M,)``.
    Each element is summed by one thread in a fixed order: the same bits on every run
    and at every thread count.)doc");
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
