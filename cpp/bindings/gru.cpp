#include "dlcore/gru.hpp"

#include <optional>
#include <string>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"
#include "recurrent.hpp"

namespace dlcore::bind {

namespace {

// What gru_backward needs from gru_forward: the inputs (held, not copied), y, the saved
// gates and recurrent parts, and whether a backward has consumed them (it overwrites
// them).
struct GruCache {
  GruShape shape;
  FloatType type;
  py::array x, kernel, recurrent_kernel, y, gates, recurrent;
  py::object h0;    // None when the forward got None (zeros)
  py::object mask;  // None, or the steps that run as uint8 (N, T)
  bool used = false;

  std::string describe() const {
    std::string more = shape.reset_after ? "" : ", reset_after=False";
    if (!mask.is_none()) more += ", masked";
    return describe_cache("GruCache", shape.N, shape.T, shape.I, shape.U, type, used, more);
  }
};

py::tuple gru_forward(py::handle x_obj, py::handle h0_obj, py::handle kernel_obj,
                      py::handle rec_obj, py::handle bias_obj, bool reset_after,
                      py::handle mask_obj, bool keep_cache) {
  const char* fn = "gru_forward";
  const py::array x_arr = to_numeric_array(x_obj, fn, "x");
  check_ndim(x_arr, 3, fn, "x", "(N, T, I)");
  const std::optional<py::array> h0 = optional_state(h0_obj, fn, "h0");
  const py::array kernel_arr = to_numeric_array(kernel_obj, fn, "kernel");
  check_ndim(kernel_arr, 2, fn, "kernel", "(I, 3U)");
  const py::array rec_arr = to_numeric_array(rec_obj, fn, "recurrent_kernel");
  check_ndim(rec_arr, 2, fn, "recurrent_kernel", "(U, 3U)");
  const py::array bias_arr = to_numeric_array(bias_obj, fn, "bias");
  check_ndim(bias_arr, reset_after ? 2 : 1, fn, "bias",
             reset_after ? "(2, 3U) with reset_after=True" : "(3U,) with reset_after=False");
  const std::optional<py::array> mask = optional_mask(mask_obj, fn);
  const GruShape s = GruShape::from_operands(fn, shape_of(x_arr), optional_shape(h0),
                                             shape_of(kernel_arr), shape_of(rec_arr),
                                             shape_of(bias_arr), optional_shape(mask), reset_after);
  const FloatType type =
      common_float_type({&x_arr, &kernel_arr, &rec_arr, &bias_arr, h0 ? &*h0 : nullptr});
  return dispatch(type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    GruCache cache{s, type};
    cache.x = as_c_array<T>(x_arr);
    cache.kernel = as_c_array<T>(kernel_arr);
    cache.recurrent_kernel = as_c_array<T>(rec_arr);
    cache.h0 = optional_c_array<T>(h0);
    cache.mask = mask ? py::object(*mask) : py::none();
    cache.y = new_array<T>({s.N, s.T, s.U});
    if (keep_cache) {  // inference saves nothing: no gates are written out
      cache.gates = new_array<T>({s.N, s.T, 3 * s.U});
      cache.recurrent = new_array<T>({s.N, s.T, s.U});
    }
    T* const gates = keep_cache ? mutable_data_of<T>(cache.gates) : nullptr;
    T* const recurrent = keep_cache ? mutable_data_of<T>(cache.recurrent) : nullptr;
    const auto bias = as_c_array<T>(bias_arr);
    py::array h_n = new_array<T>({s.N, s.U});
    {
      py::gil_scoped_release release;
      dlcore::gru_forward<T>(mutable_data_of<T>(cache.y), mutable_data_of<T>(h_n), gates, recurrent,
                             data_of<T>(cache.x), data_of<T>(cache.h0), data_of<T>(cache.kernel),
                             data_of<T>(cache.recurrent_kernel), bias.data(),
                             data_of<uint8_t>(cache.mask), s);
    }
    py::array y = cache.y;
    py::object kept = keep_cache ? py::cast(std::move(cache)) : py::none();
    return py::make_tuple(y, h_n, kept);
  });
}

py::tuple gru_backward(py::handle dy_obj, py::handle dh_n_obj, py::handle cache_obj) {
  const char* fn = "gru_backward";
  GruCache& cache = cache_arg<GruCache>(fn, cache_obj, "GruCache", "gru_forward");
  return dispatch(cache.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const GruShape& s = cache.shape;
    py::object dy = gradient_arg<T, GruShape>(fn, "dy", dy_obj, {s.N, s.T, s.U});
    py::object dh_n = gradient_arg<T, GruShape>(fn, "dh_n", dh_n_obj, {s.N, s.U});
    py::array dx = new_zeros<T>({s.N, s.T, s.I}), dh0 = new_zeros<T>({s.N, s.U});
    py::array dkernel = new_zeros<T>({s.I, 3 * s.U}), drec = new_zeros<T>({s.U, 3 * s.U});
    py::array dbias = s.reset_after ? new_zeros<T>({2, 3 * s.U}) : new_zeros<T>({3 * s.U});
    claim(cache, fn, "gru_forward");
    {
      py::gil_scoped_release release;
      dlcore::gru_backward<T>(
          mutable_data_of<T>(dx), mutable_data_of<T>(dh0), mutable_data_of<T>(dkernel),
          mutable_data_of<T>(drec), mutable_data_of<T>(dbias), mutable_data_of<T>(cache.gates),
          mutable_data_of<T>(cache.recurrent), data_of<T>(cache.y), data_of<T>(cache.x),
          data_of<T>(cache.h0), data_of<T>(cache.kernel), data_of<T>(cache.recurrent_kernel),
          data_of<T>(dy), data_of<T>(dh_n), data_of<uint8_t>(cache.mask), s);
    }
    return py::make_tuple(dx, dh0, dkernel, drec, dbias);
  });
}

}  // namespace

void register_gru(py::module_& m) {
  py::class_<GruCache>(m, "GruCache",
                       "What gru_backward needs from gru_forward; opaque. It holds the "
                       "forward's inputs and outputs (not copies) and serves one backward.")
      .def("__repr__", &GruCache::describe);

  m.def("gru_forward", &gru_forward, py::arg("x"), py::arg("h0"), py::arg("kernel"),
        py::arg("recurrent_kernel"), py::arg("bias"), py::kw_only(), py::arg("reset_after") = true,
        py::arg("mask") = py::none(), py::arg("keep_cache") = true,
        R"doc(GRU over a whole sequence, Keras' layout and gate order (z, r, h).

Args:
    x: ``(N, T, I)`` batch-major input sequence, T >= 1.
    h0: ``(N, U)`` initial state, or None for zeros.
    kernel: ``(I, 3U)`` input weights.
    recurrent_kernel: ``(U, 3U)`` recurrent weights.
    bias: ``(2, 3U)`` input and recurrent biases with ``reset_after`` (Keras 3's
        default and ``torch.nn.GRU``'s formulation: the reset gate multiplies the
        candidate's recurrent product), ``(3U,)`` without (the reset gate multiplies
        h before that product).
    reset_after: which formulation, as Keras' ``GRU(reset_after=...)``.
    mask: ``(N, T)``, nonzero where a step runs, or None (every step runs). A masked
        step carries h through unchanged; its ``y`` is the carried h (Keras' output
        for a masked step). A step no sequence runs costs a copy.
    keep_cache: False for inference: nothing is kept for a backward and the returned
        cache is None. The gates go to scratch that the calling thread reuses from call
        to call (no fresh arrays, no page faults in a predict loop); the memory in use
        during the call is the same. ``y`` and ``h_n`` are the same bits either way.

Returns:
    ``(y, h_n, cache)``: ``y (N, T, U)`` the state of every step, ``h_n (N, U)`` the
    last, and a :class:`GruCache` for :func:`gru_backward`, which holds x, the weights
    and y (modifying them in place before the backward changes its result); None with
    ``keep_cache=False``.

Gates are sigmoid (logistic), the candidate tanh; h_t = z h_{t-1} + (1 - z) n.
Computes in float32, or float64 when NumPy would promote the inputs to it. The GIL is
released while the kernel runs.)doc");
  m.def("gru_backward", &gru_backward, py::arg("dy"), py::arg("dh_n"), py::arg("cache"),
        R"doc(Gradients of :func:`gru_forward`.

Args:
    dy: ``(N, T, U)`` gradient of the loss with respect to ``y``, or None (zeros).
    dh_n: ``(N, U)`` gradient with respect to ``h_n``, or None.
    cache: the :class:`GruCache` of the forward. A cache serves one backward: the
        backward reuses its memory, and a second use raises ValueError.

Returns:
    ``(dx, dh0, dkernel, drecurrent_kernel, dbias)``, each shaped like its input
    (``dh0`` also when the forward's h0 was None), in the forward's dtype; incoming
    gradients are converted to it.)doc");
}

}  // namespace dlcore::bind
