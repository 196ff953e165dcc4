// Winograd F(2x2, 3x3) for 3x3, stride-1, dilation-1 convolutions, channels-last
// (private to the kernel sources; conv2d.cpp chooses when it runs).
#pragma once

#include <cstddef>

#include "dlcore/conv2d.hpp"

namespace dlcore {

// y (N,OH,OW,OC) = conv(x (N,H,W,C), kernel (3,3,C,OC)) + bias; bias may be null. With
// accumulate (and no bias), y += conv(x, kernel).
template <typename T>
void winograd_forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s,
                      bool accumulate);

// dx (N,H,W,C) += the input gradient of dy (N,OH,OW,OC) through kernel (3,3,C,OC).
template <typename T>
void winograd_input_grad(T* dx, const T* dy, const T* kernel, const Conv2dShape& s);

// dkernel (3,3,C,OC) += the kernel gradient of dy (N,OH,OW,OC) for x (N,H,W,C).
template <typename T>
void winograd_kernel_grad(T* dkernel, const T* dy, const T* x, const Conv2dShape& s);

}  // namespace dlcore
