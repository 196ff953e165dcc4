// Pooling, channels-last: max-pool x (N,H,W,C) -> y, argmax (N,OH,OW,C); average pool
// x (N,H,W,C) -> y (N,OH,OW,C); global average pool x (N,L,C) -> y (N,C).
#pragma once

#include <cstdint>
#include <vector>

#include "dlcore/window.hpp"

namespace dlcore {

// The window's size, strides (2x2 by default) and padding; dilation stays 1.
struct Pool2dParams : Window2d {
  int64_t pool_h = 2, pool_w = 2;

  Pool2dParams() : Window2d{2, 2} {}
};

// The validated geometry of a pooling, shared by forward and backward. Constructors
// throw std::invalid_argument naming fn, the argument and the values received/expected.
// Padding is smaller than the window on every side, so every window holds a cell of x.
struct Pool2dShape {
  int64_t N, H, W, C;  // x
  int64_t OH, OW;      // y and argmax (N, OH, OW, C)
  Pool2dParams p;      // the max-pool's backward needs just the shapes

  // Forward: x's shape and the window.
  Pool2dShape(const char* fn, const int64_t (&x_shape)[4], const Pool2dParams& params);
  // Max-pool backward: x_shape as the caller passes it, and dy's shape.
  Pool2dShape(const char* fn, const int64_t (&x_shape)[4], const int64_t (&dy_shape)[4]);
  // Average-pool backward: x_shape as the caller passes it, the window, and dy's shape,
  // which must be the forward's y's.
  Pool2dShape(const char* fn, const int64_t (&x_shape)[4], const Pool2dParams& params,
              const int64_t (&dy_shape)[4]);
};

// y = the max of each window, argmax = the flat C-order index into x of that max: the
// first in window order (kh, then kw) on ties, a NaN over any number; padding never wins.
// argmax may be null (inference): then only y is written, with the same values.
template <typename T>
void maxpool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dShape& s);

// dy (N,OH,OW,C) -> dx (N,H,W,C) = dy scattered to argmax (overlapping windows add up;
// zeros elsewhere: every element of dx is written). Each argmax must index x within its own sample
// (as the forward's do); otherwise throws std::invalid_argument naming the first bad one.
template <typename T>
void maxpool2d_backward(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s);

// y = the mean of each window over its cells inside x: padding is left out of the
// count, as Keras' 'same' average pooling does.
template <typename T>
void avgpool2d_forward(T* y, const T* x, const Pool2dShape& s);

// dy (N,OH,OW,C) -> dx (N,H,W,C) = the sum of each covering window's dy / its count
// over its cells (overlapping windows add up; a cell no window covers gets 0). Every
// element of dx is written: the caller need not zero it.
template <typename T>
void avgpool2d_backward(T* dx, const T* dy, const Pool2dShape& s);

// The geometry of a global pooling: x (N, L, C), its positions L the product of the
// axes between the first and the last ((N, T, C) or (N, H, W, C)). The constructor
// throws std::invalid_argument naming fn unless x_shape has at least 3 sizes, all >= 0,
// whose product a float64 array can hold.
struct GlobalPoolShape {
  int64_t N, L, C;

  GlobalPoolShape(const char* fn, const std::vector<int64_t>& x_shape);
};

// y (N, C) = the mean over the positions of each sample; with a mask (N, L), over the
// positions where it is true (NaN where none is, as 0 / 0; Keras gives the same).
// mask may be null.
template <typename T>
void global_avgpool_forward(T* y, const T* x, const bool* mask, const GlobalPoolShape& s);

// dy (N, C) -> dx (N, L, C) = dy / the count at the positions the mask keeps (all
// without one), 0 at the others: every element of dx is written.
template <typename T>
void global_avgpool_backward(T* dx, const T* dy, const bool* mask, const GlobalPoolShape& s);

}  // namespace dlcore
