// Max-pool 2-D, channels-last: x (N,H,W,C) -> y, argmax (N,OH,OW,C).
#pragma once

#include <cstdint>

#include "dlcore/window.hpp"

namespace dlcore {

// The window's size, strides (2x2 by default) and padding; dilation stays 1.
struct Pool2dParams : Window2d {
  int64_t pool_h = 2, pool_w = 2;

  Pool2dParams() : Window2d{2, 2} {}
};

// The validated geometry of a max-pool, shared by forward and backward. Constructors
// throw std::invalid_argument naming fn, the argument and the values received/expected.
struct Pool2dShape {
  int64_t N, H, W, C;  // x
  int64_t OH, OW;      // y and argmax (N, OH, OW, C)
  Pool2dParams p;      // forward only: the backward needs just the shapes

  // Forward: x's shape and the window.
  Pool2dShape(const char* fn, const int64_t (&x_shape)[4], const Pool2dParams& params);
  // Backward: x_shape as the caller passes it, and dy's shape.
  Pool2dShape(const char* fn, const int64_t (&x_shape)[4], const int64_t (&dy_shape)[4]);
};

// y = the max of each window, argmax = the flat C-order index into x of that max: the
// first in window order (kh, then kw) on ties, a NaN over any number; padding never wins.
template <typename T>
void maxpool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dShape& s);

// dy (N,OH,OW,C) -> dx (N,H,W,C) += dy scattered to argmax (overlapping windows add up),
// into memory the caller zeroed. Each argmax must index x within its own sample (as the
// forward's do); otherwise throws std::invalid_argument naming the first bad one.
template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s);

}  // namespace dlcore
