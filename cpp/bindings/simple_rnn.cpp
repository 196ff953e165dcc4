#include "dlcore/simple_rnn.hpp"

#include <optional>
#include <string>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"
#include "recurrent.hpp"

namespace dlcore::bind {

namespace {

// What simple_rnn_backward needs from simple_rnn_forward: the inputs and y (held, not
// copies). The backward only reads them, so a cache serves any number of backwards.
struct SimpleRnnCache {
  SimpleRnnShape shape;
  FloatType type;
  py::array x, kernel, recurrent_kernel, y;
  py::object h0;    // None when the forward got None (zeros)
  py::object mask;  // None, or the steps that run as uint8 (N, T)
  bool used = false;

  std::string describe() const {
    std::string more = shape.activation == RnnActivation::relu ? ", activation='relu'" : "";
    if (!mask.is_none()) more += ", masked";
    return describe_cache("SimpleRnnCache", shape.N, shape.T, shape.I, shape.U, type, false, more);
  }
};

RnnActivation activation_arg(const std::string& name, const char* fn) {
  if (name == "tanh") return RnnActivation::tanh;
  if (name == "relu") return RnnActivation::relu;
  fail(fn, ": argument 'activation' is '", name, "'; expected 'tanh' or 'relu'");
}

py::tuple simple_rnn_forward(py::handle x_obj, py::handle h0_obj, py::handle kernel_obj,
                             py::handle rec_obj, py::handle bias_obj, const std::string& activation,
                             py::handle mask_obj) {
  const char* fn = "simple_rnn_forward";
  const RnnActivation act = activation_arg(activation, fn);
  const py::array x_arr = to_numeric_array(x_obj, fn, "x");
  check_ndim(x_arr, 3, fn, "x", "(N, T, I)");
  const std::optional<py::array> h0 = optional_state(h0_obj, fn, "h0");
  const py::array kernel_arr = to_numeric_array(kernel_obj, fn, "kernel");
  check_ndim(kernel_arr, 2, fn, "kernel", "(I, U)");
  const py::array rec_arr = to_numeric_array(rec_obj, fn, "recurrent_kernel");
  check_ndim(rec_arr, 2, fn, "recurrent_kernel", "(U, U)");
  const py::array bias_arr = to_numeric_array(bias_obj, fn, "bias");
  check_ndim(bias_arr, 1, fn, "bias", "(U,)");
  const std::optional<py::array> mask = optional_mask(mask_obj, fn);
  const SimpleRnnShape s = SimpleRnnShape::from_operands(
      fn, shape_of(x_arr), optional_shape(h0), shape_of(kernel_arr), shape_of(rec_arr),
      shape_of(bias_arr), optional_shape(mask), act);
  const FloatType type =
      common_float_type({&x_arr, &kernel_arr, &rec_arr, &bias_arr, h0 ? &*h0 : nullptr});
  return dispatch(type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    SimpleRnnCache cache{s, type};
    cache.x = as_c_array<T>(x_arr);
    cache.kernel = as_c_array<T>(kernel_arr);
    cache.recurrent_kernel = as_c_array<T>(rec_arr);
    cache.h0 = optional_c_array<T>(h0);
    cache.mask = mask ? py::object(*mask) : py::none();
    cache.y = new_array<T>({s.N, s.T, s.U});
    const auto bias = as_c_array<T>(bias_arr);
    py::array h_n = new_array<T>({s.N, s.U});
    {
      py::gil_scoped_release release;
      dlcore::simple_rnn_forward<T>(mutable_data_of<T>(cache.y), mutable_data_of<T>(h_n),
                                    data_of<T>(cache.x), data_of<T>(cache.h0),
                                    data_of<T>(cache.kernel), data_of<T>(cache.recurrent_kernel),
                                    bias.data(), data_of<uint8_t>(cache.mask), s);
    }
    py::array y = cache.y;
    return py::make_tuple(y, h_n, py::cast(std::move(cache)));
  });
}

py::tuple simple_rnn_backward(py::handle dy_obj, py::handle dh_n_obj, py::handle cache_obj) {
  const char* fn = "simple_rnn_backward";
  const SimpleRnnCache& cache =
      cache_arg<SimpleRnnCache>(fn, cache_obj, "SimpleRnnCache", "simple_rnn_forward");
  return dispatch(cache.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const SimpleRnnShape& s = cache.shape;
    py::object dy = gradient_arg<T, SimpleRnnShape>(fn, "dy", dy_obj, {s.N, s.T, s.U});
    py::object dh_n = gradient_arg<T, SimpleRnnShape>(fn, "dh_n", dh_n_obj, {s.N, s.U});
    py::array dx = new_zeros<T>({s.N, s.T, s.I}), dh0 = new_zeros<T>({s.N, s.U});
    py::array dweights = new_zeros<T>({s.I + s.U, s.U}), dbias = new_zeros<T>({s.U});
    {
      py::gil_scoped_release release;
      dlcore::simple_rnn_backward<T>(
          mutable_data_of<T>(dx), mutable_data_of<T>(dh0), mutable_data_of<T>(dweights),
          mutable_data_of<T>(dbias), data_of<T>(cache.y), data_of<T>(cache.x), data_of<T>(cache.h0),
          data_of<T>(cache.kernel), data_of<T>(cache.recurrent_kernel), data_of<T>(dy),
          data_of<T>(dh_n), data_of<uint8_t>(cache.mask), s);
    }
    // dkernel and drecurrent_kernel are the two C-contiguous row blocks of dweights.
    return py::make_tuple(dx, dh0, dweights[py::slice(0, s.I, 1)],
                          dweights[py::slice(s.I, s.I + s.U, 1)], dbias);
  });
}

}  // namespace

void register_simple_rnn(py::module_& m) {
  py::class_<SimpleRnnCache>(m, "SimpleRnnCache",
                             "What simple_rnn_backward needs from simple_rnn_forward; opaque. "
                             "It holds the forward's inputs and outputs (not copies); the "
                             "backward only reads it, so it serves any number of backwards.")
      .def("__repr__", &SimpleRnnCache::describe);

  m.def("simple_rnn_forward", &simple_rnn_forward, py::arg("x"), py::arg("h0"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("bias"), py::kw_only(), py::arg("activation") = "tanh",
        py::arg("mask") = py::none(),
        R"doc(A fully connected recurrent layer over a whole sequence, Keras' SimpleRNN.

Args:
    x: ``(N, T, I)`` batch-major input sequence, T >= 1.
    h0: ``(N, U)`` initial state, or None for zeros.
    kernel: ``(I, U)`` input weights.
    recurrent_kernel: ``(U, U)`` recurrent weights.
    bias: ``(U,)``.
    activation: ``'tanh'`` or ``'relu'``:
        h_t = activation(x_t kernel + h_{t-1} recurrent_kernel + bias).
    mask: ``(N, T)``, nonzero where a step runs, or None (every step runs). A masked
        step carries h through unchanged; its ``y`` is the carried h (Keras' output
        for a masked step). A step no sequence runs costs a copy.

Returns:
    ``(y, h_n, cache)``: ``y (N, T, U)`` the state of every step, ``h_n (N, U)`` the
    last, and a :class:`SimpleRnnCache` for :func:`simple_rnn_backward`, which holds
    x, the weights and y (modifying them in place before the backward changes its
    result).

Computes in float32, or float64 when NumPy would promote the inputs to it. The GIL is
released while the kernel runs.)doc");
  m.def("simple_rnn_backward", &simple_rnn_backward, py::arg("dy"), py::arg("dh_n"),
        py::arg("cache"),
        R"doc(Gradients of :func:`simple_rnn_forward`.

Args:
    dy: ``(N, T, U)`` gradient of the loss with respect to ``y``, or None (zeros).
    dh_n: ``(N, U)`` gradient with respect to ``h_n``, or None.
    cache: the :class:`SimpleRnnCache` of the forward; it may serve several backwards.

Returns:
    ``(dx, dh0, dkernel, drecurrent_kernel, dbias)``, each shaped like its input
    (``dh0`` also when the forward's h0 was None), in the forward's dtype; incoming
    gradients are converted to it.)doc");
}

}  // namespace dlcore::bind
