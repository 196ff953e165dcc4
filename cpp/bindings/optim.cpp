#include "dlcore/optim.hpp"

#include <string>

#include "arrays.hpp"
#include "dlcore/checks.hpp"
#include "module.hpp"

namespace dlcore::bind {

namespace {

// The parameter and the optimizer's state are updated in place, so they must be
// writeable, aligned, C-contiguous float32/float64 arrays in native byte order, of one
// dtype and shape (the kernels write T into them: a byte-swapped '>f4' parameter was
// silently filled with garbage); the gradient is converted to that dtype once if it is
// not already.
template <typename T>
T* state_array(const char* fn, const char* name, py::handle obj, const py::array& param) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name +
                         "' must be a numpy array updated in place");
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!py::isinstance<py::array_t<T>>(a)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' has dtype " +
                         std::string(py::str(a.dtype())) + "; expected " +
                         std::string(py::str(py::dtype::of<T>())) +
                         " in native byte order, the parameter's");
  }
  if (shape_of(a) != shape_of(param)) {
    fail(fn, ": argument '", name, "' has shape ", shape_str(a), "; expected the parameter's ",
         shape_str(param));
  }
  if (!(a.flags() & py::array::c_style) || !a.writeable() || !is_aligned_for<T>(a)) {
    fail(fn, ": argument '", name, "' must be a writeable, aligned, C-contiguous array");
  }
  return static_cast<T*>(a.mutable_data());
}

template <typename F>
void with_param(const char* fn, py::handle param_obj, py::handle grad_obj, F&& run) {
  if (!py::isinstance<py::array>(param_obj)) {
    throw py::type_error(std::string(fn) +
                         ": argument 'param' must be a numpy array updated "
                         "in place");
  }
  auto param = py::reinterpret_borrow<py::array>(param_obj);
  const bool f32 = py::isinstance<py::array_t<float>>(param);
  if (!f32 && !py::isinstance<py::array_t<double>>(param)) {
    throw py::type_error(std::string(fn) + ": argument 'param' has dtype " +
                         std::string(py::str(param.dtype())) +
                         "; expected float32 or float64 in native byte order");
  }
  py::array grad = to_numeric_array(grad_obj, fn, "grad");
  if (shape_of(grad) != shape_of(param)) {
    fail(fn, ": argument 'grad' has shape ", shape_str(grad), "; expected the parameter's ",
         shape_str(param));
  }
  dispatch(f32 ? FloatType::f32 : FloatType::f64, [&](auto zero) {
    using T = decltype(zero);
    T* p = state_array<T>(fn, "param", param, param);
    CArray<T> g = as_c_array<T>(grad);
    run(p, g.data(), static_cast<int64_t>(param.size()), zero);
  });
}

void check_positive_step(const char* fn, int64_t step) {
  if (step < 1) fail(fn, ": step must be >= 1 (the update being applied), got ", step);
}

}  // namespace

void register_optim(py::module_& m) {
  m.def(
      "adam_update",
      [](py::handle param, py::handle grad, py::handle m_, py::handle v, double lr, double beta_1,
         double beta_2, double epsilon, int64_t step, py::handle vhat) {
        const char* fn = "adam_update";
        check_positive_step(fn, step);
        with_param(fn, param, grad, [&](auto* p, const auto* g, int64_t n, auto zero) {
          using T = decltype(zero);
          const py::array pa = py::reinterpret_borrow<py::array>(param);
          T* mm = state_array<T>(fn, "m", m_, pa);
          T* vv = state_array<T>(fn, "v", v, pa);
          if (!mm || !vv) fail(fn, ": m and v are required");
          T* vh = state_array<T>(fn, "vhat", vhat, pa);
          py::gil_scoped_release release;
          adam_update<T>(p, mm, vv, vh, g, n, lr, beta_1, beta_2, epsilon, step);
        });
      },
      py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::kw_only(), py::arg("lr"),
      py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("step"),
      py::arg("vhat") = py::none(),
      "In-place Adam update (Keras' form) of ``param`` and its moments ``m``, ``v`` (and "
      "``vhat`` with AMSGrad); ``step`` counts from 1.");
  m.def(
      "sgd_update",
      [](py::handle param, py::handle grad, double lr, double momentum, bool nesterov,
         py::handle velocity) {
        const char* fn = "sgd_update";
        with_param(fn, param, grad, [&](auto* p, const auto* g, int64_t n, auto zero) {
          using T = decltype(zero);
          T* vel =
              state_array<T>(fn, "velocity", velocity, py::reinterpret_borrow<py::array>(param));
          if (momentum != 0 && !vel) fail(fn, ": momentum needs a velocity array");
          py::gil_scoped_release release;
          sgd_update<T>(p, momentum != 0 ? vel : nullptr, g, n, lr, momentum, nesterov);
        });
      },
      py::arg("param"), py::arg("grad"), py::kw_only(), py::arg("lr"), py::arg("momentum") = 0.0,
      py::arg("nesterov") = false, py::arg("velocity") = py::none(),
      "In-place SGD update, with momentum / Nesterov (Keras' form) when ``velocity`` is given.");
  m.def(
      "rmsprop_update",
      [](py::handle param, py::handle grad, py::handle v, double lr, double rho, double momentum,
         double epsilon, py::handle mg, py::handle mom) {
        const char* fn = "rmsprop_update";
        with_param(fn, param, grad, [&](auto* p, const auto* g, int64_t n, auto zero) {
          using T = decltype(zero);
          const py::array pa = py::reinterpret_borrow<py::array>(param);
          T* vv = state_array<T>(fn, "v", v, pa);
          if (!vv) fail(fn, ": v is required");
          T* mgp = state_array<T>(fn, "mg", mg, pa);
          T* momp = state_array<T>(fn, "mom", mom, pa);
          if (momentum != 0 && !momp) fail(fn, ": momentum needs a mom array");
          py::gil_scoped_release release;
          rmsprop_update<T>(p, vv, mgp, momentum != 0 ? momp : nullptr, g, n, lr, rho, momentum,
                            epsilon);
        });
      },
      py::arg("param"), py::arg("grad"), py::arg("v"), py::kw_only(), py::arg("lr"), py::arg("rho"),
      py::arg("momentum") = 0.0, py::arg("epsilon") = 1e-7, py::arg("mg") = py::none(),
      py::arg("mom") = py::none(),
      "In-place RMSprop update (Keras' form); ``mg`` for centered, ``mom`` with momentum.");
}

}  // namespace dlcore::bind
