#include "dlcore/optim.hpp"

#include <functional>
#include <string>
#include <vector>

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

// One prepared update: the kernel call with its pointers bound, and the arrays it reads
// kept alive (a gradient converted to the parameter's dtype is a new array).
struct Update {
  std::function<void()> run;
  py::object keep;
};

// Checks param and grad (and, through `bind`, the state arrays) and returns the update;
// bind(p, g, n, zero) -> std::function<void()>.
template <typename F>
Update prepare(const char* fn, py::handle param_obj, py::handle grad_obj, F&& bind) {
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
  Update update;
  dispatch(f32 ? FloatType::f32 : FloatType::f64, [&](auto zero) {
    using T = decltype(zero);
    T* p = state_array<T>(fn, "param", param, param);
    CArray<T> g = as_c_array<T>(grad);
    update.run = bind(p, g.data(), static_cast<int64_t>(param.size()), zero);
    update.keep = g;
  });
  return update;
}

bool is_list(py::handle obj) {
  return py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj);
}

// The i-th of a per-parameter argument given as a list (None stays None).
py::handle item(py::handle obj, size_t i, size_t n, const char* fn, const char* name) {
  if (obj.is_none()) return obj;
  if (!is_list(obj)) {
    throw py::type_error(std::string(fn) + ": with a list of parameters, argument '" + name +
                         "' must be a list too (or None)");
  }
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  if (seq.size() != n) {
    fail(fn, ": argument '", name, "' has ", seq.size(), " arrays for ", n, " parameters");
  }
  return seq[i];
}

// Runs one update, or one per parameter when `param` is a list (the other per-parameter
// arguments then lists of the same length): every parameter is checked first, then the
// GIL is released once around all the kernels. make(param, grad, states..., i, n).
template <typename Make>
void run_updates(const char* fn, py::handle param, py::handle grad, Make&& make) {
  std::vector<Update> updates;
  // a list of arrays is a list of parameters; anything else is one (and refused below
  // unless it is an array: [1.0, 2.0] is not a parameter updated in place)
  bool many = is_list(param) && py::len(param) > 0;
  if (many) {
    for (auto p : py::reinterpret_borrow<py::sequence>(param)) {
      many = many && py::isinstance<py::array>(p);
    }
  }
  if (many) {
    auto params = py::reinterpret_borrow<py::sequence>(param);
    const size_t n = params.size();
    updates.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      updates.push_back(make(params[i], item(grad, i, n, fn, "grad"), i, n));
    }
  } else {
    updates.push_back(make(param, grad, 0, 0));
  }
  py::gil_scoped_release release;
  for (auto& u : updates) u.run();
}

// A per-parameter argument: itself for one parameter, its i-th for a list of n.
py::handle nth(py::handle obj, size_t i, size_t n, const char* fn, const char* name) {
  return n ? item(obj, i, n, fn, name) : obj;
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
        run_updates(fn, param, grad, [&](py::handle pi, py::handle gi, size_t i, size_t n) {
          return prepare(fn, pi, gi, [&](auto* p, const auto* g, int64_t count, auto zero) {
            using T = decltype(zero);
            const py::array pa = py::reinterpret_borrow<py::array>(pi);
            T* mm = state_array<T>(fn, "m", nth(m_, i, n, fn, "m"), pa);
            T* vv = state_array<T>(fn, "v", nth(v, i, n, fn, "v"), pa);
            if (!mm || !vv) fail(fn, ": m and v are required");
            T* vh = state_array<T>(fn, "vhat", nth(vhat, i, n, fn, "vhat"), pa);
            return std::function<void()>([=] {
              adam_update<T>(p, mm, vv, vh, g, count, lr, beta_1, beta_2, epsilon, step);
            });
          });
        });
      },
      py::arg("param"), py::arg("grad"), py::arg("m"), py::arg("v"), py::kw_only(), py::arg("lr"),
      py::arg("beta_1"), py::arg("beta_2"), py::arg("epsilon"), py::arg("step"),
      py::arg("vhat") = py::none(),
      "In-place Adam update (Keras' form) of ``param`` and its moments ``m``, ``v`` (and "
      "``vhat`` with AMSGrad); ``step`` counts from 1. ``param`` may be a list of parameters, "
      "with ``grad``, ``m``, ``v`` (``vhat``) lists of the same length: all are checked, "
      "then updated with the GIL released once.");
  m.def(
      "sgd_update",
      [](py::handle param, py::handle grad, double lr, double momentum, bool nesterov,
         py::handle velocity) {
        const char* fn = "sgd_update";
        run_updates(fn, param, grad, [&](py::handle pi, py::handle gi, size_t i, size_t n) {
          return prepare(fn, pi, gi, [&](auto* p, const auto* g, int64_t count, auto zero) {
            using T = decltype(zero);
            T* vel = state_array<T>(fn, "velocity", nth(velocity, i, n, fn, "velocity"),
                                    py::reinterpret_borrow<py::array>(pi));
            if (momentum != 0 && !vel) fail(fn, ": momentum needs a velocity array");
            T* used = momentum != 0 ? vel : nullptr;
            return std::function<void()>(
                [=] { sgd_update<T>(p, used, g, count, lr, momentum, nesterov); });
          });
        });
      },
      py::arg("param"), py::arg("grad"), py::kw_only(), py::arg("lr"), py::arg("momentum") = 0.0,
      py::arg("nesterov") = false, py::arg("velocity") = py::none(),
      "In-place SGD update, with momentum / Nesterov (Keras' form) when ``velocity`` is given. "
      "``param`` may be a list, with ``grad`` (``velocity``) lists of the same length.");
  m.def(
      "rmsprop_update",
      [](py::handle param, py::handle grad, py::handle v, double lr, double rho, double momentum,
         double epsilon, py::handle mg, py::handle mom) {
        const char* fn = "rmsprop_update";
        run_updates(fn, param, grad, [&](py::handle pi, py::handle gi, size_t i, size_t n) {
          return prepare(fn, pi, gi, [&](auto* p, const auto* g, int64_t count, auto zero) {
            using T = decltype(zero);
            const py::array pa = py::reinterpret_borrow<py::array>(pi);
            T* vv = state_array<T>(fn, "v", nth(v, i, n, fn, "v"), pa);
            if (!vv) fail(fn, ": v is required");
            T* mgp = state_array<T>(fn, "mg", nth(mg, i, n, fn, "mg"), pa);
            T* momp = state_array<T>(fn, "mom", nth(mom, i, n, fn, "mom"), pa);
            if (momentum != 0 && !momp) fail(fn, ": momentum needs a mom array");
            T* used = momentum != 0 ? momp : nullptr;
            return std::function<void()>(
                [=] { rmsprop_update<T>(p, vv, mgp, used, g, count, lr, rho, momentum, epsilon); });
          });
        });
      },
      py::arg("param"), py::arg("grad"), py::arg("v"), py::kw_only(), py::arg("lr"), py::arg("rho"),
      py::arg("momentum") = 0.0, py::arg("epsilon") = 1e-7, py::arg("mg") = py::none(),
      py::arg("mom") = py::none(),
      "In-place RMSprop update (Keras' form); ``mg`` for centered, ``mom`` with momentum. "
      "``param`` may be a list, with the other per-parameter arguments lists of its length.");
}

}  // namespace dlcore::bind
