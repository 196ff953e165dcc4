#include "dlcore/softmax.hpp"

#include <string>
#include <vector>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

// x's rows over its last axis: (rows, classes). A 0-D x has no class axis.
std::pair<int64_t, int64_t> rows_of(const py::array& x, const char* fn, const char* name) {
  if (x.ndim() == 0) {
    fail(fn, ": argument '", name, "' is 0-D; expected an array of shape (..., classes)");
  }
  const std::vector<int64_t> shape = shape_of(x);
  const int64_t C = shape.back();
  std::vector<int64_t> lead(shape.begin(), shape.end() - 1);
  return {checked_numel(lead, fn), C};
}

void check_same_shape(const py::array& a, const char* a_name, const py::array& b,
                      const char* b_name, const char* fn) {
  if (shape_of(a) != shape_of(b)) {
    fail(fn, ": argument '", a_name, "' has shape ", shape_str(a), " but '", b_name, "' has shape ",
         shape_str(b), "; expected the same shape");
  }
}

py::array softmax_forward(py::handle x_obj) {
  const char* fn = "softmax_forward";
  const py::array x = to_numeric_array(x_obj, fn, "x");
  const auto [R, C] = rows_of(x, fn, "x");
  return dispatch(float_type_of(x), [&, R = R, C = C](auto zero) -> py::array {
    using T = decltype(zero);
    const CArray<T> xc = as_c_array<T>(x);
    py::array_t<T> y = new_array<T>(shape_of(x));
    {
      py::gil_scoped_release release;
      dlcore::softmax_forward<T>(y.mutable_data(), xc.data(), R, C);
    }
    return y;
  });
}

py::array softmax_backward(py::handle dy_obj, py::handle y_obj) {
  const char* fn = "softmax_backward";
  const py::array dy = to_numeric_array(dy_obj, fn, "dy");
  const py::array y = to_numeric_array(y_obj, fn, "y");
  check_same_shape(dy, "dy", y, "y", fn);
  const auto [R, C] = rows_of(y, fn, "y");
  return dispatch(common_float_type({&dy, &y}), [&, R = R, C = C](auto zero) -> py::array {
    using T = decltype(zero);
    const CArray<T> dyc = as_c_array<T>(dy), yc = as_c_array<T>(y);
    py::array_t<T> dx = new_array<T>(shape_of(y));
    {
      py::gil_scoped_release release;
      dlcore::softmax_backward<T>(dx.mutable_data(), dyc.data(), yc.data(), R, C);
    }
    return dx;
  });
}

// The per-row losses (logits' shape without the class axis) and, with_grad, the
// gradient (logits' shape), or None.
template <typename T>
struct CrossEntropyResult {
  py::array_t<T> loss;
  py::object grad = py::none();

  CrossEntropyResult(const py::array& logits, bool with_grad) {
    std::vector<int64_t> shape = shape_of(logits);
    if (with_grad) grad = new_array<T>(shape);
    shape.pop_back();
    loss = new_array<T>(shape);
  }
  T* grad_data() { return grad.is_none() ? nullptr : py::array_t<T>(grad).mutable_data(); }
  py::tuple result() const { return py::make_tuple(loss, grad); }
};

void check_classes(int64_t R, int64_t C, const py::array& logits, const char* fn) {
  if (C == 0 && R > 0) {
    fail(fn, ": argument 'logits' has shape ", shape_str(logits),
         ", no classes; expected at least one class on the last axis");
  }
}

py::tuple sparse_softmax_cross_entropy(py::handle logits_obj, py::handle labels_obj,
                                       bool with_grad) {
  const char* fn = "sparse_softmax_cross_entropy";
  const py::array logits = to_numeric_array(logits_obj, fn, "logits");
  const py::array labels =
      index_array(labels_obj, fn, "labels", "class indices; round float labels first");
  const auto [R, C] = rows_of(logits, fn, "logits");
  std::vector<int64_t> want = shape_of(logits);
  want.pop_back();
  if (shape_of(labels) != want) {
    fail(fn, ": argument 'labels' has shape ", shape_str(labels), " but 'logits' has shape ",
         shape_str(logits), "; expected labels of shape logits.shape[:-1]");
  }
  check_classes(R, C, logits, fn);
  return dispatch(float_type_of(logits), [&, R = R, C = C](auto zero) -> py::tuple {
    using T = decltype(zero);
    const CArray<T> z = as_c_array<T>(logits);
    CrossEntropyResult<T> out(logits, with_grad);
    T* grad = out.grad_data();
    dispatch_index(labels, [&](auto izero) {
      using I = decltype(izero);
      const CArray<I> lc = as_c_array<I>(labels);
      py::gil_scoped_release release;
      dlcore::sparse_softmax_cross_entropy<T, I>(out.loss.mutable_data(), grad, z.data(), lc.data(),
                                                 R, C, fn);
    });
    return out.result();
  });
}

py::tuple softmax_cross_entropy(py::handle logits_obj, py::handle targets_obj, bool with_grad) {
  const char* fn = "softmax_cross_entropy";
  const py::array logits = to_numeric_array(logits_obj, fn, "logits");
  const py::array targets = to_numeric_array(targets_obj, fn, "targets");
  check_same_shape(targets, "targets", logits, "logits", fn);
  const auto [R, C] = rows_of(logits, fn, "logits");
  check_classes(R, C, logits, fn);
  return dispatch(common_float_type({&logits, &targets}), [&, R = R, C = C](auto zero) {
    using T = decltype(zero);
    const CArray<T> z = as_c_array<T>(logits), t = as_c_array<T>(targets);
    CrossEntropyResult<T> out(logits, with_grad);
    T* grad = out.grad_data();
    {
      py::gil_scoped_release release;
      dlcore::softmax_cross_entropy<T>(out.loss.mutable_data(), grad, z.data(), t.data(), R, C);
    }
    return out.result();
  });
}

}  // namespace

void register_softmax(py::module_& m) {
  m.def("softmax_forward", &softmax_forward, py::arg("x"),
        R"doc(Softmax over the last axis: ``exp(x - max) / sum(exp(x - max))`` per row.

Args:
    x: array of shape ``(..., classes)``, at least 1-D.

Returns:
    ``y`` of x's shape, float32 (float64 when NumPy would promote). A NaN or +inf in a
    row makes that row NaN; a -inf logit gets probability 0. Every bit is the same at
    any thread count.)doc");
  m.def("softmax_backward", &softmax_backward, py::arg("dy"), py::arg("y"),
        R"doc(Gradient of :func:`softmax_forward`: ``dx = y * (dy - sum(dy * y))`` per row.

Args:
    dy: gradient of the loss with respect to ``y``.
    y: the forward's output, dy's shape.)doc");
  m.def("sparse_softmax_cross_entropy", &sparse_softmax_cross_entropy, py::arg("logits"),
        py::arg("labels"), py::arg("with_grad") = true,
        R"doc(Cross-entropy of ``softmax(logits)`` against integer class labels, from the
logits in one pass (Keras' ``sparse_categorical_crossentropy`` with ``from_logits``).

Args:
    logits: ``(..., classes)`` array, at least one class.
    labels: integer array of shape ``logits.shape[:-1]``, each in ``[0, classes)``
        (ValueError naming the first that is not, and its row).
    with_grad: also return the gradient.

Returns:
    ``(loss, grad)``: ``loss`` of shape ``logits.shape[:-1]``, ``logsumexp(z) - z[label]``
    per row (exact for any finite logit); ``grad`` of the logits' shape,
    ``softmax(z) - onehot(label)``, the gradient of each row's loss, or None without
    ``with_grad``.)doc");
  m.def("softmax_cross_entropy", &softmax_cross_entropy, py::arg("logits"), py::arg("targets"),
        py::arg("with_grad") = true,
        R"doc(Cross-entropy of ``softmax(logits)`` against target distributions, from the
logits in one pass (Keras' ``categorical_crossentropy`` with ``from_logits``).

Args:
    logits: ``(..., classes)`` array, at least one class.
    targets: one-hot or soft targets, the logits' shape.
    with_grad: also return the gradient.

Returns:
    ``(loss, grad)``: ``loss`` of shape ``logits.shape[:-1]``,
    ``-sum(targets * log_softmax(z))`` per row; ``grad`` of the logits' shape,
    ``softmax(z) * sum(targets) - targets``, or None without ``with_grad``.)doc");
}

}  // namespace dlcore::bind
