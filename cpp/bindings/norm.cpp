#include "dlcore/norm.hpp"

#include <optional>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

std::optional<py::array> optional_array(py::handle obj, const char* fn, const char* name) {
  if (obj.is_none()) return std::nullopt;
  return to_numeric_array(obj, fn, name);
}

void check_shape(const py::array& a, const std::vector<int64_t>& expected, const char* fn,
                 const char* name, const char* what) {
  if (shape_of(a) != expected) {
    fail(fn, ": argument '", name, "' has shape ", shape_str(a), "; expected ",
         dlcore::shape_str(expected), ", ", what);
  }
}

// The arrays of one call: x (or dy and x), then the named vectors, checked against the
// shapes they must have; `stats` are x.shape[:-1] for layer norm, (C,) for batch norm.
struct NormArgs {
  std::vector<std::optional<py::array>> arrays;  // in the order given to the constructor
  std::vector<int64_t> x_shape, channels, rows;
  FloatType type;

  NormArgs(const char* fn, std::initializer_list<std::pair<const char*, py::handle>> named,
           std::initializer_list<const char*> per_channel,
           std::initializer_list<const char*> per_row) {
    for (const auto& [name, obj] : named) {
      const bool required = std::string(name) == "x" || std::string(name) == "dy";
      if (required && obj.is_none()) {
        throw py::type_error(std::string(fn) + ": argument '" + name +
                             "' must be an array, got None");
      }
      arrays.push_back(optional_array(obj, fn, name));
    }
    const py::array& x = *arrays[index_of(named, "x")];
    x_shape = shape_of(x);
    const NormShape s(fn, x_shape);  // rank and sizes
    channels = {s.C};
    rows.assign(x_shape.begin(), x_shape.end() - 1);
    size_t i = 0;
    std::vector<const py::array*> present;
    for (const auto& [name, obj] : named) {
      const auto& a = arrays[i++];
      if (!a) continue;
      present.push_back(&*a);
      const std::string n(name);
      if (n == "dy") check_shape(*a, x_shape, fn, name, "x's shape");
      for (const char* c : per_channel) {
        if (n == c) check_shape(*a, channels, fn, name, "one value per channel (x.shape[-1])");
      }
      for (const char* r : per_row) {
        if (n == r) check_shape(*a, rows, fn, name, "one value per row (x.shape[:-1])");
      }
    }
    type = FloatType::f32;
    for (const py::array* a : present) {
      if (float_type_of(*a) == FloatType::f64) type = FloatType::f64;
    }
  }

  static size_t index_of(std::initializer_list<std::pair<const char*, py::handle>> named,
                         const char* name) {
    size_t i = 0;
    for (const auto& [n, obj] : named) {
      if (std::string(n) == name) return i;
      ++i;
    }
    return 0;
  }

  template <typename T>
  std::optional<CArray<T>> get(size_t i) const {
    if (!arrays[i]) return std::nullopt;
    return as_c_array<T>(*arrays[i]);
  }
};

template <typename T>
const T* data_or_null(const std::optional<CArray<T>>& a) {
  return a ? a->data() : nullptr;
}

// x, gamma, beta -> (y, statistics...) of batch norm (per_channel: mean, variance and
// inv_std, each (C,)) or layer norm (mean and inv_std, each x.shape[:-1]).
template <typename Kernel>
py::tuple norm_forward(const char* fn, bool per_channel, py::handle x_obj, py::handle gamma_obj,
                       py::handle beta_obj, double epsilon, Kernel&& kernel) {
  const NormArgs args(fn, {{"x", x_obj}, {"gamma", gamma_obj}, {"beta", beta_obj}},
                      {"gamma", "beta"}, {});
  check_epsilon(fn, epsilon);
  const NormShape s(fn, args.x_shape);
  return dispatch(args.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const auto x = args.get<T>(0), gamma = args.get<T>(1), beta = args.get<T>(2);
    auto y = new_array<T>(args.x_shape);
    std::vector<py::array_t<T>> stats;
    for (int i = 0; i < (per_channel ? 3 : 2); ++i) {
      stats.push_back(new_array<T>(per_channel ? args.channels : args.rows));
    }
    T* out[3] = {};
    for (size_t i = 0; i < stats.size(); ++i) out[i] = stats[i].mutable_data();
    {
      py::gil_scoped_release release;
      kernel(y.mutable_data(), out, x->data(), data_or_null(gamma), data_or_null(beta), s);
    }
    py::tuple result(stats.size() + 1);
    result[0] = y;
    for (size_t i = 0; i < stats.size(); ++i) result[i + 1] = stats[i];
    return result;
  });
}

py::tuple batch_norm_forward(py::handle x_obj, py::handle gamma_obj, py::handle beta_obj,
                             double epsilon) {
  return norm_forward("batch_norm_forward", true, x_obj, gamma_obj, beta_obj, epsilon,
                      [epsilon](auto* y, auto* const* stats, auto... in) {
                        dlcore::batch_norm_forward(y, stats[0], stats[1], stats[2], in..., epsilon);
                      });
}

py::array batch_norm_inference(py::handle x_obj, py::handle mean_obj, py::handle variance_obj,
                               py::handle gamma_obj, py::handle beta_obj, double epsilon) {
  const char* fn = "batch_norm_inference";
  for (const auto& [name, obj] : {std::pair{"mean", mean_obj}, {"variance", variance_obj}}) {
    if (obj.is_none()) {
      throw py::type_error(std::string(fn) + ": argument '" + name +
                           "' must be an array, got None");
    }
  }
  const NormArgs args(fn,
                      {{"x", x_obj},
                       {"mean", mean_obj},
                       {"variance", variance_obj},
                       {"gamma", gamma_obj},
                       {"beta", beta_obj}},
                      {"mean", "variance", "gamma", "beta"}, {});
  check_epsilon(fn, epsilon);
  const NormShape s(fn, args.x_shape);
  return dispatch(args.type, [&](auto zero) -> py::array {
    using T = decltype(zero);
    const auto x = args.get<T>(0), mean = args.get<T>(1), variance = args.get<T>(2);
    const auto gamma = args.get<T>(3), beta = args.get<T>(4);
    auto y = new_array<T>(args.x_shape);
    {
      py::gil_scoped_release release;
      dlcore::batch_norm_inference<T>(y.mutable_data(), x->data(), mean->data(), variance->data(),
                                      data_or_null(gamma), data_or_null(beta), s, epsilon);
    }
    return y;
  });
}

// dy, x, mean, inv_std, gamma -> (dx, dgamma, dbeta) of batch or layer norm.
template <typename Kernel>
py::tuple norm_backward(const char* fn, bool per_channel_stats, py::handle dy_obj, py::handle x_obj,
                        py::handle mean_obj, py::handle inv_std_obj, py::handle gamma_obj,
                        bool need_dx, bool need_dgamma, bool need_dbeta, Kernel&& kernel) {
  for (const auto& [name, obj] : {std::pair{"mean", mean_obj}, {"inv_std", inv_std_obj}}) {
    if (obj.is_none()) {
      throw py::type_error(std::string(fn) + ": argument '" + name +
                           "' must be an array, got None");
    }
  }
  const NormArgs args(fn,
                      {{"dy", dy_obj},
                       {"x", x_obj},
                       {"mean", mean_obj},
                       {"inv_std", inv_std_obj},
                       {"gamma", gamma_obj}},
                      per_channel_stats
                          ? std::initializer_list<const char*>{"mean", "inv_std", "gamma"}
                          : std::initializer_list<const char*>{"gamma"},
                      per_channel_stats ? std::initializer_list<const char*>{}
                                        : std::initializer_list<const char*>{"mean", "inv_std"});
  const NormShape s(fn, args.x_shape);
  return dispatch(args.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const auto dy = args.get<T>(0), x = args.get<T>(1), mean = args.get<T>(2);
    const auto inv_std = args.get<T>(3), gamma = args.get<T>(4);
    py::object dx = py::none(), dgamma = py::none(), dbeta = py::none();
    T *dx_p = nullptr, *dgamma_p = nullptr, *dbeta_p = nullptr;
    if (need_dx) {
      auto a = new_array<T>(args.x_shape);
      dx_p = a.mutable_data(), dx = a;
    }
    if (need_dgamma) {
      auto a = new_zeros<T>(args.channels);
      dgamma_p = a.mutable_data(), dgamma = a;
    }
    if (need_dbeta) {
      auto a = new_zeros<T>(args.channels);
      dbeta_p = a.mutable_data(), dbeta = a;
    }
    {
      py::gil_scoped_release release;
      kernel(dx_p, dgamma_p, dbeta_p, dy->data(), x->data(), data_or_null(gamma), mean->data(),
             inv_std->data(), s);
    }
    return py::make_tuple(dx, dgamma, dbeta);
  });
}

py::tuple layer_norm_forward(py::handle x_obj, py::handle gamma_obj, py::handle beta_obj,
                             double epsilon) {
  return norm_forward("layer_norm_forward", false, x_obj, gamma_obj, beta_obj, epsilon,
                      [epsilon](auto* y, auto* const* stats, auto... in) {
                        dlcore::layer_norm_forward(y, stats[0], stats[1], in..., epsilon);
                      });
}

}  // namespace

void register_norm(py::module_& m) {
  m.def("batch_norm_forward", &batch_norm_forward, py::arg("x"), py::arg("gamma") = py::none(),
        py::arg("beta") = py::none(), py::kw_only(), py::arg("epsilon") = 1e-3,
        R"doc(Batch normalisation in training mode over the last axis (Keras
``BatchNormalization(axis=-1)`` with ``training=True``).

Args:
    x: ``(..., C)``; the statistics of each channel are taken over all other axes.
    gamma: ``(C,)`` scale, or None (Keras ``scale=False``: 1).
    beta: ``(C,)`` offset, or None (Keras ``center=False``: 0).
    epsilon: added to the variance, >= 0 (Keras' default 1e-3).

Returns:
    ``(y, mean, variance, inv_std)``: ``y = (x - mean) * inv_std * gamma + beta`` of
    ``x``'s shape; the batch ``mean`` and biased ``variance`` per channel, ``(C,)``, which
    Keras folds into ``moving_mean`` / ``moving_variance`` as ``moving * momentum +
    batch * (1 - momentum)``; ``inv_std = 1 / sqrt(variance + epsilon)``, for
    :func:`batch_norm_backward`. One pass over ``x`` for the statistics (fixed chunks
    merged in order: the same bits at any thread count), one to normalise. An empty
    batch gives NaN statistics.)doc");
  m.def("batch_norm_inference", &batch_norm_inference, py::arg("x"), py::arg("mean"),
        py::arg("variance"), py::arg("gamma") = py::none(), py::arg("beta") = py::none(),
        py::kw_only(), py::arg("epsilon") = 1e-3,
        R"doc(Batch normalisation in inference mode: with given statistics (Keras'
``moving_mean`` and ``moving_variance``).

Args:
    x: ``(..., C)``.
    mean, variance: ``(C,)``.
    gamma, beta, epsilon: as :func:`batch_norm_forward`'s.

Returns:
    ``y = (x - mean) / sqrt(variance + epsilon) * gamma + beta``, ``x``'s shape. For its
    gradient call :func:`batch_norm_backward` with ``training=False`` and
    ``inv_std = 1 / sqrt(variance + epsilon)``.)doc");
  m.def(
      "batch_norm_backward",
      [](py::handle dy, py::handle x, py::handle mean, py::handle inv_std, py::handle gamma,
         bool training, bool need_dx, bool need_dgamma, bool need_dbeta) {
        return norm_backward(
            "batch_norm_backward", true, dy, x, mean, inv_std, gamma, need_dx, need_dgamma,
            need_dbeta, [training](auto... a) { dlcore::batch_norm_backward(a..., training); });
      },
      py::arg("dy"), py::arg("x"), py::arg("mean"), py::arg("inv_std"),
      py::arg("gamma") = py::none(), py::kw_only(), py::arg("training") = true,
      py::arg("need_dx") = true, py::arg("need_dgamma") = true, py::arg("need_dbeta") = true,
      R"doc(Gradients of batch normalisation.

Args:
    dy: ``(..., C)`` gradient of the loss with respect to ``y``.
    x: the forward's input.
    mean, inv_std: ``(C,)``, as :func:`batch_norm_forward` returned them (or, with
        ``training=False``, the moving mean and ``1 / sqrt(moving_variance + epsilon)``).
    gamma: the forward's ``(C,)`` scale, or None for 1.
    training: True when the forward used the batch's statistics: ``dx`` then includes
        their dependence on ``x``. False when they were constants.
    need_dx, need_dgamma, need_dbeta: a gradient not needed comes back as None and
        costs nothing; ``dgamma`` is computed even when ``gamma`` is None (the gradient
        a scale of 1 would get).

Returns:
    ``(dx, dgamma, dbeta)``: ``dx`` of ``x``'s shape, ``dgamma`` and ``dbeta`` ``(C,)``.
    Two passes over ``dy`` and ``x`` (the per-channel sums, then ``dx``), one with
    ``training=False``. The same bits at any thread count.)doc");
  m.def("layer_norm_forward", &layer_norm_forward, py::arg("x"), py::arg("gamma") = py::none(),
        py::arg("beta") = py::none(), py::kw_only(), py::arg("epsilon") = 1e-3,
        R"doc(Layer normalisation over the last axis (Keras ``LayerNormalization(axis=-1)``).

Args:
    x: ``(..., C)``; each row of ``C`` values is normalised on its own.
    gamma: ``(C,)`` scale, or None (Keras ``scale=False``).
    beta: ``(C,)`` offset, or None (Keras ``center=False``).
    epsilon: added to each row's variance, >= 0 (Keras' default 1e-3).

Returns:
    ``(y, mean, inv_std)``: ``y = (x - mean) * inv_std * gamma + beta`` of ``x``'s
    shape; each row's mean and ``1 / sqrt(biased variance + epsilon)``, of shape
    ``x.shape[:-1]``, for :func:`layer_norm_backward`.)doc");
  m.def(
      "layer_norm_backward",
      [](py::handle dy, py::handle x, py::handle mean, py::handle inv_std, py::handle gamma,
         bool need_dx, bool need_dgamma, bool need_dbeta) {
        return norm_backward("layer_norm_backward", false, dy, x, mean, inv_std, gamma, need_dx,
                             need_dgamma, need_dbeta,
                             [](auto... a) { dlcore::layer_norm_backward(a...); });
      },
      py::arg("dy"), py::arg("x"), py::arg("mean"), py::arg("inv_std"),
      py::arg("gamma") = py::none(), py::kw_only(), py::arg("need_dx") = true,
      py::arg("need_dgamma") = true, py::arg("need_dbeta") = true,
      R"doc(Gradients of layer normalisation.

Args:
    dy: ``(..., C)`` gradient of the loss with respect to ``y``.
    x: the forward's input.
    mean, inv_std: ``x.shape[:-1]``, as :func:`layer_norm_forward` returned them.
    gamma: the forward's ``(C,)`` scale, or None for 1.
    need_dx, need_dgamma, need_dbeta: a gradient not needed comes back as None and
        costs nothing.

Returns:
    ``(dx, dgamma, dbeta)``: ``dx`` of ``x``'s shape, ``dgamma`` and ``dbeta`` ``(C,)``,
    summed over the rows in fixed chunks: the same bits at any thread count.)doc");
}

}  // namespace dlcore::bind
