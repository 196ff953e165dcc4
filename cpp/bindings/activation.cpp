#include "dlcore/activation.hpp"

#include <string>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

// The parameters a kind takes; any other given (not None) is an error.
struct KindParams {
  bool alpha = false, negative_slope = false, max_value = false, threshold = false;
  bool approximate = false;
};

double number_arg(py::handle obj, const char* fn, const char* name) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a number, got " +
                         std::string(py::repr(obj)));
  }
  PyObject* f = PyNumber_Float(obj.ptr());
  if (!f) {
    PyErr_Clear();
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a number, got " +
                         std::string(py::repr(obj)));
  }
  const double v = PyFloat_AsDouble(f);
  Py_DECREF(f);
  return v;
}

// Keras' approximate=True/False, or PyTorch's approximate='tanh'/'none'.
bool approximate_arg(py::handle obj, const char* fn) {
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  if (py::isinstance<py::str>(obj)) {
    const auto s = obj.cast<std::string>();
    if (s == "tanh") return true;
    if (s == "none") return false;
  }
  throw py::type_error(std::string(fn) +
                       ": argument 'approximate' must be True, False, 'tanh' or 'none', got " +
                       std::string(py::repr(obj)));
}

std::string kind_arg(py::handle obj, const char* fn) {
  if (!py::isinstance<py::str>(obj)) {
    throw py::type_error(std::string(fn) +
                         ": argument 'kind' must be an activation's name (str), got " +
                         std::string(py::repr(obj)));
  }
  return obj.cast<std::string>();
}

struct ParamArgs {
  py::handle alpha, negative_slope, max_value, threshold, approximate;
};

// The kind named `name` with its parameters: those given, else Keras' defaults for that
// name (leaky_relu's negative_slope is 0.2, relu6's max_value 6, elu's alpha 1).
ActivationSpec activation_spec(const char* fn, const std::string& name, const ParamArgs& args) {
  Activation kind = activation_kind(fn, name);
  ActivationParams p;
  KindParams takes;
  if (name == "relu") {
    takes.negative_slope = takes.max_value = takes.threshold = true;
  } else if (name == "leaky_relu") {
    takes.negative_slope = true;
    p.negative_slope = 0.2;
  } else if (name == "relu6") {
    p.max_value = 6.0;
  } else if (kind == Activation::elu) {
    takes.alpha = true;
  } else if (kind == Activation::gelu) {
    takes.approximate = true;
  }
  const std::pair<const char*, std::pair<py::handle, bool>> given[] = {
      {"alpha", {args.alpha, takes.alpha}},
      {"negative_slope", {args.negative_slope, takes.negative_slope}},
      {"max_value", {args.max_value, takes.max_value}},
      {"threshold", {args.threshold, takes.threshold}},
      {"approximate", {args.approximate, takes.approximate}},
  };
  for (const auto& [param, arg] : given) {
    if (!arg.first.is_none() && !arg.second) {
      fail(fn, ": argument '", param, "' does not apply to activation '", name,
           "'; pass it as None");
    }
  }
  if (!args.alpha.is_none()) p.alpha = number_arg(args.alpha, fn, "alpha");
  if (!args.negative_slope.is_none()) {
    p.negative_slope = number_arg(args.negative_slope, fn, "negative_slope");
  }
  if (!args.max_value.is_none()) p.max_value = number_arg(args.max_value, fn, "max_value");
  if (!args.threshold.is_none()) p.threshold = number_arg(args.threshold, fn, "threshold");
  if (!args.approximate.is_none() && approximate_arg(args.approximate, fn)) {
    kind = Activation::gelu_tanh;
  }
  return ActivationSpec(fn, kind, p);
}

py::array activation_forward(py::handle x_obj, py::handle kind_obj, const ParamArgs& params) {
  const char* fn = "activation_forward";
  py::array x = to_numeric_array(x_obj, fn, "x");
  const std::string kind = kind_arg(kind_obj, fn);
  const ActivationSpec spec = activation_spec(fn, kind, params);
  return dispatch(float_type_of(x), [&](auto zero) -> py::array {
    using T = decltype(zero);
    CArray<T> xc = as_c_array<T>(x);
    py::array_t<T> y = new_array<T>(shape_of(x));
    {
      py::gil_scoped_release release;
      dlcore::activation_forward<T>(y.mutable_data(), xc.data(), static_cast<int64_t>(xc.size()),
                                    spec);
    }
    return y;
  });
}

py::array activation_backward(py::handle dy_obj, py::handle kind_obj, py::handle x_obj,
                              py::handle y_obj, const ParamArgs& params) {
  const char* fn = "activation_backward";
  py::array dy = to_numeric_array(dy_obj, fn, "dy");
  const std::string kind = kind_arg(kind_obj, fn);
  const ActivationSpec spec = activation_spec(fn, kind, params);
  const bool uses_y = activation_backward_uses_output(spec.kind);
  const char* name = uses_y ? "y" : "x";
  py::handle saved_obj = uses_y ? y_obj : x_obj;
  if (saved_obj.is_none()) {
    fail(fn, ": activation '", kind, "' computes its gradient from ",
         uses_y ? "y, the forward's output" : "x, the forward's input", "; pass ", name, "=");
  }
  py::array saved = to_numeric_array(saved_obj, fn, name);
  if (shape_of(saved) != shape_of(dy)) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dy), " but '", name, "' has shape ",
         shape_str(saved), "; expected the same shape");
  }
  return dispatch(common_float_type({&dy, &saved}), [&](auto zero) -> py::array {
    using T = decltype(zero);
    CArray<T> dyc = as_c_array<T>(dy), sc = as_c_array<T>(saved);
    py::array_t<T> dx = new_array<T>(shape_of(dy));
    {
      py::gil_scoped_release release;
      dlcore::activation_backward<T>(dx.mutable_data(), dyc.data(), sc.data(),
                                     static_cast<int64_t>(dyc.size()), spec);
    }
    return dx;
  });
}

}  // namespace

void register_activation(py::module_& m) {
  m.def(
      "activation_forward",
      [](py::handle x, py::handle kind, py::handle alpha, py::handle negative_slope,
         py::handle max_value, py::handle threshold, py::handle approximate) {
        return activation_forward(x, kind,
                                  {alpha, negative_slope, max_value, threshold, approximate});
      },
      py::arg("x"), py::arg("kind"), py::kw_only(), py::arg("alpha") = py::none(),
      py::arg("negative_slope") = py::none(), py::arg("max_value") = py::none(),
      py::arg("threshold") = py::none(), py::arg("approximate") = py::none(),
      R"doc(An activation function of Keras 3, element-wise, any shape.

Args:
    x: input array; float64 stays float64 (as do 32- and 64-bit integers), anything
        else computes in float32.
    kind: Keras' name: ``'relu'``, ``'relu6'``, ``'leaky_relu'``, ``'elu'``, ``'selu'``,
        ``'gelu'``, ``'silu'`` (or ``'swish'``), ``'softplus'``, ``'softsign'``,
        ``'sigmoid'``, ``'tanh'``, ``'hard_sigmoid'``, ``'hard_silu'`` (or
        ``'hard_swish'``), ``'mish'``.
    alpha: ``elu`` only (default 1.0): ``alpha * (exp(x) - 1)`` for ``x <= 0``.
    negative_slope: ``relu`` (default 0.0) and ``leaky_relu`` (default 0.2).
    max_value: ``relu`` only (default None: no ceiling); ``relu6`` is ``max_value=6``.
    threshold: ``relu`` only (default 0.0).
    approximate: ``gelu`` only: False (the default, Keras ``gelu``'s) for the exact
        ``x * Phi(x)``, True (or ``'tanh'``) for the tanh approximation.

    ``relu`` is Keras' ``ReLU`` layer: ``x`` above ``threshold`` (clipped to
    ``[0, max_value]`` when there is one), minus ``negative_slope * (threshold - x)``
    below it. ``hard_sigmoid`` is Keras 3's ``relu6(x + 3) / 6``. A parameter that
    does not apply to ``kind`` raises ValueError unless it is None.

Returns:
    ``y`` of ``x``'s shape. A NaN in ``x`` gives NaN. float32 results are within a few
    ulps of the exact function (vectorised approximations of exp, tanh and the normal
    CDF); float64 uses the C library's.)doc");
  m.def(
      "activation_backward",
      [](py::handle dy, py::handle kind, py::handle x, py::handle y, py::handle alpha,
         py::handle negative_slope, py::handle max_value, py::handle threshold,
         py::handle approximate) {
        return activation_backward(dy, kind, x, y,
                                   {alpha, negative_slope, max_value, threshold, approximate});
      },
      py::arg("dy"), py::arg("kind"), py::kw_only(), py::arg("x") = py::none(),
      py::arg("y") = py::none(), py::arg("alpha") = py::none(),
      py::arg("negative_slope") = py::none(), py::arg("max_value") = py::none(),
      py::arg("threshold") = py::none(), py::arg("approximate") = py::none(),
      R"doc(Gradient of :func:`activation_forward` with respect to its input.

Args:
    dy: gradient of the loss with respect to the forward's ``y``.
    kind, alpha, negative_slope, max_value, threshold, approximate: as the forward's.
    x: the forward's input; every kind but ``'sigmoid'`` and ``'tanh'`` reads it.
    y: the forward's output; ``'sigmoid'`` and ``'tanh'`` read it (``y * (1 - y)``,
        ``1 - y**2``). Passing both is fine: the one the kind needs is used
        (:func:`activation_backward_needs` says which).

Returns:
    ``dx = dy * f'(x)``, ``dy``'s shape. At a kink the one-sided value is used: the
    slope at and below ``relu``'s threshold, 0 at ``max_value`` and at ``hard_sigmoid``'s
    -3 and 3.)doc");
  m.def(
      "activation_backward_needs",
      [](py::handle kind) {
        const char* fn = "activation_backward_needs";
        const Activation k = activation_kind(fn, kind_arg(kind, fn));
        return std::string(activation_backward_uses_output(k) ? "y" : "x");
      },
      py::arg("kind"),
      "'y' when activation_backward of this kind reads the forward's output (sigmoid, "
      "tanh), 'x' when it reads the input (every other kind): what a layer must keep.");
}

}  // namespace dlcore::bind
