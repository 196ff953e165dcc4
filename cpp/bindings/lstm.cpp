#include "dlcore/lstm.hpp"

#include <optional>
#include <string>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"
#include "recurrent.hpp"

namespace dlcore::bind {

namespace {

// What a backward needs from its forward: the inputs (held, not copied), the forward's
// saved state, and whether a backward has consumed it (the backward overwrites `gates`).
struct LstmState {
  LstmShape shape;
  FloatType type;
  py::array x, kernel, recurrent_kernel, gates, cells;
  py::object h0, c0;  // None when the forward got None (zeros)
  py::object mask;    // None, or the steps that run as uint8 (N, T)
  bool used = false;

  std::string describe(const char* cls) const {
    return describe_cache(cls, shape.N, shape.T, shape.I, shape.U, type, used,
                          mask.is_none() ? "" : ", masked");
  }
};

struct LstmCache : LstmState {
  py::array y;  // every h_t: the backward's h_{t-1}
};

// For the cell, `cells` holds c_next.
struct LstmCellCache : LstmState {};

struct ForwardOperands {
  py::array x, kernel, recurrent_kernel, bias;
  std::optional<py::array> h0, c0, mask;
  LstmShape shape;
  FloatType type;
};

ForwardOperands forward_operands(const char* fn, bool cell, py::handle x_obj, py::handle h0_obj,
                                 py::handle c0_obj, py::handle kernel_obj, py::handle rec_obj,
                                 py::handle bias_obj, py::handle mask_obj = py::none()) {
  ForwardOperands o;
  const char* x_name = cell ? "x_t" : "x";
  o.x = to_numeric_array(x_obj, fn, x_name);
  check_ndim(o.x, cell ? 2 : 3, fn, x_name, cell ? "(N, I)" : "(N, T, I)");
  o.h0 = optional_state(h0_obj, fn, cell ? "h" : "h0");
  o.c0 = optional_state(c0_obj, fn, cell ? "c" : "c0");
  o.kernel = to_numeric_array(kernel_obj, fn, "kernel");
  check_ndim(o.kernel, 2, fn, "kernel", "(I, 4U)");
  o.recurrent_kernel = to_numeric_array(rec_obj, fn, "recurrent_kernel");
  check_ndim(o.recurrent_kernel, 2, fn, "recurrent_kernel", "(U, 4U)");
  o.bias = to_numeric_array(bias_obj, fn, "bias");
  check_ndim(o.bias, 1, fn, "bias", "(4U,)");
  o.mask = optional_mask(mask_obj, fn);
  o.shape = LstmShape::from_operands(
      fn, cell, shape_of(o.x), optional_shape(o.h0), optional_shape(o.c0), shape_of(o.kernel),
      shape_of(o.recurrent_kernel), shape_of(o.bias), optional_shape(o.mask));
  o.type = common_float_type({&o.x, &o.kernel, &o.recurrent_kernel, &o.bias,
                              o.h0 ? &*o.h0 : nullptr, o.c0 ? &*o.c0 : nullptr});
  return o;
}

// The inputs converted once to T, and room for what the forward saves: gates and cells
// shaped like x with 4U and U features (none for an inference forward, which saves
// nothing).
template <typename T>
void start_state(LstmState& state, const ForwardOperands& o, bool saves = true) {
  state.shape = o.shape;
  state.type = o.type;
  state.x = as_c_array<T>(o.x);
  state.kernel = as_c_array<T>(o.kernel);
  state.recurrent_kernel = as_c_array<T>(o.recurrent_kernel);
  state.h0 = optional_c_array<T>(o.h0);
  state.c0 = optional_c_array<T>(o.c0);
  state.mask = o.mask ? py::object(*o.mask) : py::none();
  if (!saves) return;
  std::vector<int64_t> shape = shape_of(o.x);
  shape.back() = 4 * o.shape.U;
  state.gates = new_array<T>(shape);
  shape.back() = o.shape.U;
  state.cells = new_array<T>(shape);
}

// A backward's results, zeroed (the kernels accumulate): dx shaped like the input, the
// two state gradients (N, U), the weight gradients as the kernels' one (I+U, 4U) buffer
// and dbias.
template <typename T>
struct Gradients {
  py::array dx, dh, dc, dweights, dbias;

  Gradients(const std::vector<int64_t>& x_shape, const LstmShape& s)
      : dx(new_zeros<T>(x_shape)),
        dh(new_zeros<T>({s.N, s.U})),
        dc(new_zeros<T>({s.N, s.U})),
        dweights(new_zeros<T>({s.I + s.U, 4 * s.U})),
        dbias(new_zeros<T>({4 * s.U})) {}

  // (dx, dh, dc, dkernel, drecurrent_kernel, dbias): dkernel and drecurrent_kernel are
  // the two C-contiguous row blocks of dweights.
  py::tuple result(int64_t I) const {
    return py::make_tuple(dx, dh, dc, dweights[py::slice(0, I, 1)],
                          dweights[py::slice(I, dweights.shape(0), 1)], dbias);
  }
};

py::tuple lstm_forward(py::handle x_obj, py::handle h0_obj, py::handle c0_obj,
                       py::handle kernel_obj, py::handle rec_obj, py::handle bias_obj,
                       py::handle mask_obj, bool keep_cache) {
  const ForwardOperands o = forward_operands("lstm_forward", false, x_obj, h0_obj, c0_obj,
                                             kernel_obj, rec_obj, bias_obj, mask_obj);
  return dispatch(o.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const LstmShape& s = o.shape;
    LstmCache cache;
    start_state<T>(cache, o, keep_cache);  // inference: no gates or cells are written out
    auto bias = as_c_array<T>(o.bias);
    cache.y = new_array<T>({s.N, s.T, s.U});
    py::array h_n = new_array<T>({s.N, s.U}), c_n = new_array<T>({s.N, s.U});
    T* const gates = keep_cache ? mutable_data_of<T>(cache.gates) : nullptr;
    T* const cells = keep_cache ? mutable_data_of<T>(cache.cells) : nullptr;
    {
      py::gil_scoped_release release;
      dlcore::lstm_forward<T>(mutable_data_of<T>(cache.y), mutable_data_of<T>(h_n),
                              mutable_data_of<T>(c_n), gates, cells, data_of<T>(cache.x),
                              data_of<T>(cache.h0), data_of<T>(cache.c0), data_of<T>(cache.kernel),
                              data_of<T>(cache.recurrent_kernel), bias.data(),
                              data_of<uint8_t>(cache.mask), s);
    }
    py::array y = cache.y;
    py::object kept = keep_cache ? py::cast(std::move(cache)) : py::none();
    return py::make_tuple(y, h_n, c_n, kept);
  });
}

py::tuple lstm_backward(py::handle dy_obj, py::handle dh_n_obj, py::handle dc_n_obj,
                        py::handle cache_obj) {
  const char* fn = "lstm_backward";
  LstmCache& cache = cache_arg<LstmCache>(fn, cache_obj, "LstmCache", "lstm_forward");
  return dispatch(cache.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const LstmShape& s = cache.shape;
    py::object dy = gradient_arg<T, LstmShape>(fn, "dy", dy_obj, {s.N, s.T, s.U});
    py::object dh_n = gradient_arg<T, LstmShape>(fn, "dh_n", dh_n_obj, {s.N, s.U});
    py::object dc_n = gradient_arg<T, LstmShape>(fn, "dc_n", dc_n_obj, {s.N, s.U});
    Gradients<T> g({s.N, s.T, s.I}, s);
    claim(cache, fn, "lstm_forward");
    {
      py::gil_scoped_release release;
      dlcore::lstm_backward<T>(mutable_data_of<T>(g.dx), mutable_data_of<T>(g.dh),
                               mutable_data_of<T>(g.dc), mutable_data_of<T>(g.dweights),
                               mutable_data_of<T>(g.dbias), mutable_data_of<T>(cache.gates),
                               data_of<T>(cache.cells), data_of<T>(cache.y), data_of<T>(cache.x),
                               data_of<T>(cache.h0), data_of<T>(cache.c0), data_of<T>(cache.kernel),
                               data_of<T>(cache.recurrent_kernel), data_of<T>(dy), data_of<T>(dh_n),
                               data_of<T>(dc_n), data_of<uint8_t>(cache.mask), s);
    }
    return g.result(s.I);
  });
}

py::tuple lstm_cell_forward(py::handle x_obj, py::handle h_obj, py::handle c_obj,
                            py::handle kernel_obj, py::handle rec_obj, py::handle bias_obj) {
  const ForwardOperands o = forward_operands("lstm_cell_forward", true, x_obj, h_obj, c_obj,
                                             kernel_obj, rec_obj, bias_obj);
  return dispatch(o.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const LstmShape& s = o.shape;
    LstmCellCache cache;
    start_state<T>(cache, o);
    auto bias = as_c_array<T>(o.bias);
    py::array h_next = new_array<T>({s.N, s.U});
    {
      py::gil_scoped_release release;
      dlcore::lstm_cell_forward<T>(mutable_data_of<T>(h_next), mutable_data_of<T>(cache.cells),
                                   mutable_data_of<T>(cache.gates), data_of<T>(cache.x),
                                   data_of<T>(cache.h0), data_of<T>(cache.c0),
                                   data_of<T>(cache.kernel), data_of<T>(cache.recurrent_kernel),
                                   bias.data(), s);
    }
    // c_next is returned as a copy: the cache's own stays as the forward left it.
    py::array c_next = py::array(cache.cells.attr("copy")());
    return py::make_tuple(h_next, c_next, py::cast(std::move(cache)));
  });
}

py::tuple lstm_cell_backward(py::handle dh_next_obj, py::handle dc_next_obj, py::handle cache_obj) {
  const char* fn = "lstm_cell_backward";
  LstmCellCache& cache =
      cache_arg<LstmCellCache>(fn, cache_obj, "LstmCellCache", "lstm_cell_forward");
  return dispatch(cache.type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    const LstmShape& s = cache.shape;
    py::object dh_next = gradient_arg<T, LstmShape>(fn, "dh_next", dh_next_obj, {s.N, s.U});
    py::object dc_next = gradient_arg<T, LstmShape>(fn, "dc_next", dc_next_obj, {s.N, s.U});
    Gradients<T> g({s.N, s.I}, s);
    claim(cache, fn, "lstm_cell_forward");
    {
      py::gil_scoped_release release;
      dlcore::lstm_cell_backward<T>(
          mutable_data_of<T>(g.dx), mutable_data_of<T>(g.dh), mutable_data_of<T>(g.dc),
          mutable_data_of<T>(g.dweights), mutable_data_of<T>(g.dbias),
          mutable_data_of<T>(cache.gates), data_of<T>(cache.cells), data_of<T>(cache.x),
          data_of<T>(cache.h0), data_of<T>(cache.c0), data_of<T>(cache.kernel),
          data_of<T>(cache.recurrent_kernel), data_of<T>(dh_next), data_of<T>(dc_next), s);
    }
    return g.result(s.I);
  });
}

}  // namespace

void register_lstm(py::module_& m) {
  py::class_<LstmCache>(m, "LstmCache",
                        "What lstm_backward needs from lstm_forward; opaque. It holds the "
                        "forward's inputs and outputs (not copies) and serves one backward.")
      .def("__repr__", [](const LstmCache& c) { return c.describe("LstmCache"); });
  py::class_<LstmCellCache>(m, "LstmCellCache",
                            "What lstm_cell_backward needs from lstm_cell_forward; opaque. "
                            "It holds the step's inputs (not copies) and serves one backward.")
      .def("__repr__", [](const LstmCellCache& c) { return c.describe("LstmCellCache"); });

  m.def("lstm_forward", &lstm_forward, py::arg("x"), py::arg("h0"), py::arg("c0"),
        py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"), py::kw_only(),
        py::arg("mask") = py::none(), py::arg("keep_cache") = true,
        R"doc(LSTM over a whole sequence, Keras' layout and gate order (i, f, c, o).

Args:
    x: ``(N, T, I)`` batch-major input sequence, T >= 1.
    h0, c0: ``(N, U)`` initial hidden and cell state, or None for zeros.
    kernel: ``(I, 4U)`` input weights.
    recurrent_kernel: ``(U, 4U)`` recurrent weights.
    bias: ``(4U,)``.
    mask: ``(N, T)``, nonzero where a step runs, or None (every step runs). A masked
        step carries h and c through unchanged; its ``y`` is the carried h (Keras'
        output for a masked step). A step no sequence runs costs a copy.
    keep_cache: False for inference: nothing is kept for a backward and the returned
        cache is None. The gates go to scratch that the calling thread reuses from call
        to call, and c is carried in ``c_n`` instead of every step's cells (``N T U``
        values less memory). ``y``, ``h_n`` and ``c_n`` are the same bits either way.

Returns:
    ``(y, h_n, c_n, cache)``: ``y (N, T, U)`` the hidden state of every step,
    ``h_n, c_n (N, U)`` the last states, and an :class:`LstmCache` for
    :func:`lstm_backward`, which holds x, the weights and y (modifying them in place
    before the backward changes its result); None with ``keep_cache=False``.

Gates are sigmoid (logistic), cell and output activations tanh. Computes in float32,
or float64 when NumPy would promote the inputs to it. The GIL is released while the
kernel runs.)doc");
  m.def("lstm_backward", &lstm_backward, py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"),
        py::arg("cache"),
        R"doc(Gradients of :func:`lstm_forward`.

Args:
    dy: ``(N, T, U)`` gradient of the loss with respect to ``y``, or None (zeros).
    dh_n, dc_n: ``(N, U)`` gradients with respect to ``h_n`` and ``c_n``, or None.
    cache: the :class:`LstmCache` of the forward. A cache serves one backward: the
        backward reuses its memory, and a second use raises ValueError.

Returns:
    ``(dx, dh0, dc0, dkernel, drecurrent_kernel, dbias)``, each shaped like its input
    (``dh0``/``dc0`` also when the forward's states were None), in the forward's dtype;
    incoming gradients are converted to it.)doc");
  m.def("lstm_cell_forward", &lstm_cell_forward, py::arg("x_t"), py::arg("h"), py::arg("c"),
        py::arg("kernel"), py::arg("recurrent_kernel"), py::arg("bias"),
        R"doc(One LSTM step, the same cell as :func:`lstm_forward`.

Args:
    x_t: ``(N, I)`` input of this step.
    h, c: ``(N, U)`` hidden and cell state, or None for zeros.
    kernel, recurrent_kernel, bias: as for :func:`lstm_forward`.

Returns:
    ``(h_next, c_next, cache)``, the states ``(N, U)`` and an :class:`LstmCellCache`
    for :func:`lstm_cell_backward`.)doc");
  m.def("lstm_cell_backward", &lstm_cell_backward, py::arg("dh_next"), py::arg("dc_next"),
        py::arg("cache"),
        R"doc(Gradients of :func:`lstm_cell_forward`.

Args:
    dh_next, dc_next: ``(N, U)`` gradients with respect to ``h_next`` and ``c_next``,
        or None (zeros).
    cache: the :class:`LstmCellCache` of the step; it serves one backward.

Returns:
    ``(dx_t, dh, dc, dkernel, drecurrent_kernel, dbias)``, each shaped like its input.)doc");
}

}  // namespace dlcore::bind
