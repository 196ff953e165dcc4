#include "dlcore/gemm.hpp"

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

struct GemmArgs {
  py::array a, b;
  GemmShape shape;
  FloatType type;
};

GemmArgs gemm_args(const char* fn, py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b) {
  py::array a = to_numeric_array(a_obj, fn, "a");
  py::array b = to_numeric_array(b_obj, fn, "b");
  check_ndim(a, 2, fn, "a", "(rows, cols)");
  check_ndim(b, 2, fn, "b", "(rows, cols)");
  const GemmShape s = GemmShape::from_operands(fn, a.shape(0), a.shape(1), trans_a, b.shape(0),
                                               b.shape(1), trans_b);
  return {a, b, s, common_float_type({&a, &b})};
}

py::array gemm(py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b) {
  GemmArgs args = gemm_args("gemm", a_obj, b_obj, trans_a, trans_b);
  return dispatch(args.type, [&](auto zero) -> py::array {
    using T = decltype(zero);
    const GemmShape& s = args.shape;
    auto a = matrix_operand<T>(args.a, trans_a);
    auto b = matrix_operand<T>(args.b, trans_b);
    py::array_t<T> c = new_zeros<T>({s.M, s.N});
    MutMatRef<T> c_ref{c.mutable_data(), std::max<int64_t>(s.N, 1), false};
    {
      py::gil_scoped_release release;
      gemm_forward<T>(c_ref, a.ref, b.ref, s, /*accumulate=*/true);
    }
    return c;
  });
}

py::tuple gemm_backward(py::handle dc_obj, py::handle a_obj, py::handle b_obj, bool trans_a,
                        bool trans_b, bool need_da, bool need_db) {
  const char* fn = "gemm_backward";
  GemmArgs args = gemm_args(fn, a_obj, b_obj, trans_a, trans_b);
  py::array dc_arr = to_numeric_array(dc_obj, fn, "dc");
  check_ndim(dc_arr, 2, fn, "dc", "(M, N)");
  const GemmShape& s = args.shape;
  if (dc_arr.shape(0) != s.M || dc_arr.shape(1) != s.N) {
    fail(fn, ": argument 'dc' has shape ", shape_str(dc_arr), " but the product of a ",
         shape_str(args.a), " and b ", shape_str(args.b), " has shape ",
         dlcore::shape_str({s.M, s.N}));
  }
  const FloatType type = common_float_type({&args.a, &args.b, &dc_arr});
  return dispatch(type, [&](auto zero) -> py::tuple {
    using T = decltype(zero);
    auto a = matrix_operand<T>(args.a, trans_a);
    auto b = matrix_operand<T>(args.b, trans_b);
    auto dc = matrix_operand<T>(dc_arr, false);
    py::object da_obj = py::none(), db_obj = py::none();
    // Gradients come back in the layout of the operand they belong to, C-ordered.
    MutMatRef<T> da{nullptr, 0, trans_a}, db{nullptr, 0, trans_b};
    if (need_da) {
      auto da_arr = new_zeros<T>(shape_of(args.a));
      da = {da_arr.mutable_data(), std::max<int64_t>(args.a.shape(1), 1), trans_a};
      da_obj = da_arr;
    }
    if (need_db) {
      auto db_arr = new_zeros<T>(shape_of(args.b));
      db = {db_arr.mutable_data(), std::max<int64_t>(args.b.shape(1), 1), trans_b};
      db_obj = db_arr;
    }
    {
      py::gil_scoped_release release;
      dlcore::gemm_backward<T>(da, db, dc.ref, a.ref, b.ref, s);
    }
    return py::make_tuple(da_obj, db_obj);
  });
}

}  // namespace

void register_gemm(py::module_& m) {
  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::kw_only(), py::arg("trans_a") = false,
        py::arg("trans_b") = false,
        R"doc(Matrix product ``op(a) @ op(b)`` where ``op(x)`` is ``x.T`` when its flag is set.

Args:
    a: 2-D array, ``(M, K)`` or ``(K, M)`` with ``trans_a``.
    b: 2-D array, ``(K, N)`` or ``(N, K)`` with ``trans_b``.

Returns:
    ``(M, N)`` array, float64 when NumPy would promote the inputs to float64
    (a float64 or 32/64-bit integer input), else float32.

C- and Fortran-ordered inputs, and row slices of them, are used in place; other
layouts are copied once. The GIL is released while the product runs.)doc");
  m.def("gemm_backward", &gemm_backward, py::arg("dc"), py::arg("a"), py::arg("b"), py::kw_only(),
        py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("need_da") = true,
        py::arg("need_db") = true,
        R"doc(Gradients of ``c = gemm(a, b, trans_a=..., trans_b=...)``.

Args:
    dc: ``(M, N)`` gradient of the loss with respect to ``c``.
    a, b, trans_a, trans_b: as given to :func:`gemm`.
    need_da, need_db: a gradient that is not needed comes back as ``None``
        and costs nothing.

Returns:
    ``(da, db)``, each shaped like its operand.)doc");
}

}  // namespace dlcore::bind
