// Conv2D, channels-last: x (N,H,W,C), kernel (KH,KW,C,OC), bias (OC), y (N,OH,OW,OC).
// Conv2DTranspose: x (N,H,W,C), kernel (KH,KW,OC,C), bias (OC), y (N,OH,OW,OC).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dlcore/window.hpp"

namespace dlcore {

// Strides, dilation and padding as the caller gives them, before validation.
using Conv2dParams = Window2d;

// The validated geometry of one convolution, shared by forward and backward (like
// PyTorch's slow_conv2d_shape_check). The constructor throws std::invalid_argument
// naming fn, the argument and the values received and expected.
struct Conv2dShape {
  int64_t N, H, W, C;  // x
  int64_t KH, KW, OC;  // kernel (KH, KW, C, OC)
  int64_t OH, OW;      // y (N, OH, OW, OC)
  Conv2dParams p;

  Conv2dShape(const char* fn, const int64_t (&x_shape)[4], const int64_t (&kernel_shape)[4],
              const Conv2dParams& params);

  int64_t K() const { return KH * KW * C; }       // depth of the im2col GEMM
  int64_t pixels() const { return N * OH * OW; }  // rows of y seen as (N*OH*OW, OC)

  // x is already the GEMM operand: no im2col, no col2im.
  bool is_pointwise() const;
  // 3x3, stride 1, dilation 1: the shapes Winograd F(2x2, 3x3) computes.
  bool is_winograd() const;
};

// How the kernels split the work; chosen from the shape, for each pass on its own (see
// conv2d.cpp for the measurements behind each choice).
enum class Conv2dPlan {
  pointwise,    // 1x1, stride 1, unpadded: y = x @ kernel, one Eigen-threaded GEMM
  direct,       // K = KH*KW*C <= 32 (a first layer): pixel tiles, no GEMM
  pixel_tiles,  // im2col over tiles of the N*OH*OW output pixels, parallel over tiles
  winograd,     // 3x3 stride 1, C >= 16: Winograd F(2x2, 3x3), parallel over blocks of
                // 2x2 output tiles (y, dx and dkernel; dbias stays on pixel tiles)
  row_views,    // KH = 1 (every Conv1D), undilated, rows of >= 32 outputs: each output row's
                // im2col rows read in place from x (dx: at stride 1, from a padded copy
                // of dy's row), one GEMM per row, parallel over rows (fewer rows than
                // threads: one after another, each GEMM Eigen-threaded)
};
enum class Conv2dPass {
  forward,       // y
  input_grad,    // dx
  weight_grads,  // dkernel and dbias
};
Conv2dPlan conv2d_plan(const Conv2dShape& s, Conv2dPass pass = Conv2dPass::forward);

// y = conv(x, kernel) + bias. bias may be null.
template <typename T>
void conv2d_forward(T* y, const T* x, const T* kernel, const T* bias, const Conv2dShape& s);

// dy (N,OH,OW,OC) -> dx (N,H,W,C), dkernel (KH,KW,C,OC), dbias (OC): each accumulated
// (+=) into memory the caller zeroed; a null pointer skips that gradient. Results are
// bit-identical from run to run for a given thread count.
template <typename T>
void conv2d_backward(T* dx, T* dkernel, T* dbias, const T* dy, const T* x, const T* kernel,
                     const Conv2dShape& s);

// ------------------------------------------------------------------ transposed
// A transposed convolution is the adjoint of a convolution: its forward is that
// convolution's input gradient and its backward the convolution's forward (dx) and
// kernel gradient, so it runs conv2d's plans (Winograd included) with the roles of x
// and y swapped. Its kernel (KH, KW, OC, C) is the convolution's (KH, KW, C, OC) read
// as is, as Keras stores Conv2DTranspose's kernel.

// The window as for Conv2dParams, where padding crops the output (as PyTorch's
// ConvTranspose2d padding does, top/bottom and left/right apart), and output_padding
// rows and columns are added at the bottom and right, each below the stride.
struct Conv2dTransposeParams : Window2d {
  int64_t output_pad_h = 0, output_pad_w = 0;
};

// The validated geometry, shared by forward and backward: y (N, OH, OW, OC) with
// OH = (H - 1) * stride_h + dilation_h * (KH - 1) + 1 - pad_top - pad_bottom +
// output_pad_h (OW alike). `conv` is the convolution it transposes: x of y's shape,
// kernel (KH, KW, OC, C), giving y of x's shape.
struct Conv2dTransposeShape {
  int64_t N, H, W, C;  // x
  int64_t KH, KW, OC;  // kernel (KH, KW, OC, C)
  int64_t OH, OW;      // y (N, OH, OW, OC)
  Conv2dShape conv;

  Conv2dTransposeShape(const char* fn, const int64_t (&x_shape)[4],
                       const int64_t (&kernel_shape)[4], const Conv2dTransposeParams& params);
};

// y = the transposed convolution of x with kernel, + bias (may be null).
template <typename T>
void conv2d_transpose_forward(T* y, const T* x, const T* kernel, const T* bias,
                              const Conv2dTransposeShape& s);

// dy (N,OH,OW,OC) -> dx (N,H,W,C), dkernel (KH,KW,OC,C), dbias (OC): each accumulated
// (+=) into memory the caller zeroed; a null pointer skips that gradient. Bit-identical
// from run to run for a given thread count.
template <typename T>
void conv2d_transpose_backward(T* dx, T* dkernel, T* dbias, const T* dy, const T* x,
                               const T* kernel, const Conv2dTransposeShape& s);

// ------------------------------------------------------------------ depthwise
// Each input channel convolved with its own M filters: x (N,H,W,C), kernel (KH,KW,C,M)
// (Keras' DepthwiseConv2D layout), bias (C*M), y (N,OH,OW,C*M) with
// y[.., c*M + m] = bias[c*M + m] + sum over the window of x[.., c] * kernel[kh, kw, c, m].

// The validated geometry, shared by forward and backward; the window as Conv2dParams.
struct DepthwiseConv2dShape {
  int64_t N, H, W, C;  // x
  int64_t KH, KW, M;   // kernel (KH, KW, C, M)
  int64_t OC;          // C * M
  int64_t OH, OW;      // y (N, OH, OW, OC)
  Conv2dParams p;

  DepthwiseConv2dShape(const char* fn, const int64_t (&x_shape)[4],
                       const int64_t (&kernel_shape)[4], const Conv2dParams& params);
};

// y = the depthwise convolution of x with kernel, + bias (may be null).
template <typename T>
void depthwise_conv2d_forward(T* y, const T* x, const T* kernel, const T* bias,
                              const DepthwiseConv2dShape& s);

// dy (N,OH,OW,C*M) -> dx (N,H,W,C), dkernel (KH,KW,C,M), dbias (C*M): each accumulated
// (+=) into memory the caller zeroed; a null pointer skips that gradient. Every element
// is summed by one thread in a fixed order, so the results are the same bits at any
// thread count.
template <typename T>
void depthwise_conv2d_backward(T* dx, T* dkernel, T* dbias, const T* dy, const T* x,
                               const T* kernel, const DepthwiseConv2dShape& s);

}  // namespace dlcore
