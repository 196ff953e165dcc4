#include "dlcore/embedding.hpp"

#include <string>
#include <vector>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

py::array embedding_forward(py::handle idx_obj, py::handle table_obj) {
  const char* fn = "embedding_forward";
  const py::array idx =
      index_array(idx_obj, fn, "idx", "cast float indices first, as Keras' Embedding does");
  const py::array table_arr = to_numeric_array(table_obj, fn, "table");
  check_ndim(table_arr, 2, fn, "table", "(input_dim, output_dim)");
  const EmbeddingShape s(fn, shape_of(idx), table_arr.shape(0), table_arr.shape(1));
  std::vector<int64_t> y_shape(s.idx_shape);
  y_shape.push_back(s.D);
  return dispatch(float_type_of(table_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    const auto table = as_c_array<T>(table_arr);
    auto y = new_array<T>(y_shape);
    dispatch_index(idx, [&](auto izero) {
      using I = decltype(izero);
      const auto ic = as_c_array<I>(idx);
      py::gil_scoped_release release;
      dlcore::embedding_forward<T, I>(y.mutable_data(), ic.data(), table.data(), s);
    });
    return y;
  });
}

py::array embedding_backward(py::handle dy_obj, py::handle idx_obj, int64_t input_dim) {
  const char* fn = "embedding_backward";
  const py::array dy_arr = to_numeric_array(dy_obj, fn, "dy");
  const py::array idx =
      index_array(idx_obj, fn, "idx", "cast float indices first, as Keras' Embedding does");
  if (input_dim < 0) fail(fn, ": input_dim is ", input_dim, "; expected the table's rows, >= 0");
  const std::vector<int64_t> idx_shape = shape_of(idx), dy_shape = shape_of(dy_arr);
  const bool fits = dy_shape.size() == idx_shape.size() + 1 &&
                    std::equal(idx_shape.begin(), idx_shape.end(), dy_shape.begin());
  if (!fits) {
    fail(fn, ": argument 'dy' has shape ", shape_str(dy_arr), " but idx has shape ", shape_str(idx),
         "; expected dy of shape idx.shape + (output_dim,)");
  }
  const EmbeddingShape s(fn, idx_shape, input_dim, dy_shape.back());
  checked_numel({s.V, s.D}, fn);
  return dispatch(float_type_of(dy_arr), [&](auto zero) -> py::array {
    using T = decltype(zero);
    const auto dy = as_c_array<T>(dy_arr);
    auto dtable = new_array<T>({s.V, s.D});  // every row written
    dispatch_index(idx, [&](auto izero) {
      using I = decltype(izero);
      const auto ic = as_c_array<I>(idx);
      py::gil_scoped_release release;
      dlcore::embedding_backward<T, I>(dtable.mutable_data(), dy.data(), ic.data(), s);
    });
    return dtable;
  });
}

}  // namespace

void register_embedding(py::module_& m) {
  m.def("embedding_forward", &embedding_forward, py::arg("idx"), py::arg("table"),
        R"doc(Embedding lookup (Keras ``Embedding``): ``y[..., :] = table[idx[...]]``.

Args:
    idx: integer array of any shape and integer dtype (no copy for C-contiguous native
        ones); float and bool indices raise TypeError.
    table: ``(input_dim, output_dim)`` embedding matrix.

Returns:
    ``y`` of shape ``idx.shape + (output_dim,)``, the table's dtype (float32, or float64
    when NumPy would promote). An index outside ``[0, input_dim)`` raises ValueError
    naming its value, its position in ``idx`` and ``input_dim``.)doc");
  m.def("embedding_backward", &embedding_backward, py::arg("dy"), py::arg("idx"),
        py::arg("input_dim"),
        R"doc(Gradient of :func:`embedding_forward` with respect to the table.

Args:
    dy: ``idx.shape + (output_dim,)`` gradient of the loss with respect to ``y``.
    idx: the forward's indices.
    input_dim: the table's number of rows.

Returns:
    ``dtable`` ``(input_dim, output_dim)``, dense: zero except the rows ``idx`` hit, where
    the rows of ``dy`` that hit them are added up in position order. Every bit is the
    same at any thread count. Bad indices raise ValueError as the forward's do.)doc");
}

}  // namespace dlcore::bind
