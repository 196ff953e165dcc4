// What the recurrent families' bindings share (lstm.cpp, gru.cpp, simple_rnn.cpp):
// optional states and masks, the caches through which a forward serves one backward,
// and the incoming gradients.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "arrays.hpp"

namespace dlcore::bind {

// None, or a 2-D (N, U) state.
std::optional<py::array> optional_state(py::handle obj, const char* fn, const char* name);
// The shape of an optional array; empty for None.
std::vector<int64_t> optional_shape(const std::optional<py::array>& a);
// None, or an (N, T) mask of any numeric dtype as a C-contiguous uint8 array: 1 where the
// entry is nonzero (the step runs), 0 where it is 0 (the step is masked).
std::optional<py::array> optional_mask(py::handle obj, const char* fn);

// None stays None; an array becomes a C-contiguous array of T (the same one when it is).
template <typename T>
py::object optional_c_array(const std::optional<py::array>& a) {
  if (!a) return py::none();
  return as_c_array<T>(*a);
}

template <typename T>
const T* data_of(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(a).data());
}

template <typename T>
T* mutable_data_of(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

// "Cls(N=2, T=3, I=4, U=5, dtype=float32[, used])", a cache's repr.
std::string describe_cache(const char* cls, int64_t N, int64_t T, int64_t I, int64_t U,
                           FloatType type, bool used, const std::string& more = "");

// A forward's saved state serves one backward (the backward overwrites it).
void check_unused(bool used, const char* fn, const char* producer);

// Marks the cache used by this backward, or fails if another backward got there first.
// The test and the mark run under the GIL with no Python call between them: the
// conversions and NumPy allocations before it may release the GIL (numpy.zeros does while
// it allocates), so a check made there alone let two threads run a backward on one
// cache at once, each overwriting the state the other was reading.
template <typename Cache>
void claim(Cache& cache, const char* fn, const char* producer) {
  check_unused(cache.used, fn, producer);
  cache.used = true;
}

// The cache argument of a backward: a TypeError unless it is a Cache, a ValueError if a
// backward has used it.
template <typename Cache>
Cache& cache_arg(const char* fn, py::handle obj, const char* cls, const char* producer) {
  if (!py::isinstance<Cache>(obj)) {
    throw py::type_error(std::string(fn) + ": argument 'cache' must be the " + cls +
                         " returned by " + producer + ", got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  }
  Cache& cache = obj.cast<Cache&>();
  check_unused(cache.used, fn, producer);
  return cache;
}

// An incoming gradient: None, or an array of `expected` shape (Shape::check_gradient
// says otherwise) converted to T.
template <typename T, typename Shape>
py::object gradient_arg(const char* fn, const char* name, py::handle obj,
                        const std::vector<int64_t>& expected) {
  if (obj.is_none()) return py::none();
  py::array a = to_numeric_array(obj, fn, name);
  Shape::check_gradient(fn, name, shape_of(a), expected);
  return as_c_array<T>(a);
}

}  // namespace dlcore::bind
