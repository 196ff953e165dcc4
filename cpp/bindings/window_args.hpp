// Python arguments of the sliding-window ops (conv2d, max-pool): strides, dilation,
// pool_size and padding as ints or tuples, checked and turned into int64 values.
#pragma once

#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "dlcore/window.hpp"

namespace dlcore::bind {

// strides, padding and dilation (each as below) as the Window2d of dlcore/window.hpp,
// unvalidated: the kernel's shape struct checks it. A null dilation handle (an op
// without one) leaves it at 1; strides None is an error unless strides_if_none is
// given (pooling's non-overlapping windows).
Window2d window_arg(const char* fn, pybind11::handle strides, pybind11::handle padding,
                    pybind11::handle dilation,
                    std::optional<std::pair<int64_t, int64_t>> strides_if_none = std::nullopt);

// An int or a pair of ints (h, w), as int or (h, w) arguments take them.
std::pair<int64_t, int64_t> int_pair_arg(pybind11::handle obj, const char* fn, const char* name);

// An int, (pad_h, pad_w) or ((top, bottom), (left, right)) -> {top, bottom, left, right}.
std::array<int64_t, 4> padding_arg(pybind11::handle obj, const char* fn);

// A shape given as a tuple or list of 4 ints, e.g. x_shape.
std::array<int64_t, 4> shape4_arg(pybind11::handle obj, const char* fn, const char* name);

// A shape given as a tuple or list of min_size to max_size ints; `expected` describes it
// for the error ("a tuple of 3 or 4 ints (N, ..., C)").
std::vector<int64_t> shape_arg(pybind11::handle obj, const char* fn, const char* name,
                               size_t min_size, size_t max_size, const char* expected);

// The four dims of a 4-D array.
template <typename A>
void dims4(const A& a, int64_t (&out)[4]) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<int64_t>(a.shape(i));
}

}  // namespace dlcore::bind
