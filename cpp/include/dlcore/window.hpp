// Sliding-window geometry over (H, W), shared by the window families (conv2d, pooling):
// the strides, dilation and padding, their checks and the output size.
#pragma once

#include <cstdint>

namespace dlcore {

// Strides, dilation and padding of a 2-D sliding window as the caller gives them, before
// validation. Conv2dParams is this; Pool2dParams adds the window's size.
struct Window2d {
  int64_t stride_h = 1, stride_w = 1;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  // Throws std::invalid_argument naming fn unless strides and dilation are >= 1 and
  // every padding is >= 0 (in that order).
  void check(const char* fn) const;

  // (OH, OW) of a KH x KW window over an H x W input; throws when the dilated window is
  // larger than the padded input or a size overflows.
  int64_t out_h(const char* fn, int64_t H, int64_t KH) const;
  int64_t out_w(const char* fn, int64_t W, int64_t KW) const;

  bool unit_stride() const { return stride_h == 1 && stride_w == 1; }
  bool undilated() const { return dilation_h == 1 && dilation_w == 1; }
  bool unpadded() const {
    return pad_top == 0 && pad_bottom == 0 && pad_left == 0 && pad_right == 0;
  }
};

// Output size along one axis: (in + pad_lo + pad_hi - span) / stride + 1 with span =
// dilation * (window - 1) + 1. Throws std::invalid_argument when the window is larger
// than the padded input or a size overflows; `what` names the axis ("height", "width").
int64_t sliding_window_size(const char* fn, const char* what, int64_t in, int64_t pad_lo,
                            int64_t pad_hi, int64_t window, int64_t dilation, int64_t stride);

// Output size along one axis of a transposed window (the adjoint of a sliding window):
// (in - 1) * stride + span - pad_lo - pad_hi + output_padding, the rows of the input
// whose sliding window of this geometry has `in` positions (output_padding picks one of
// the stride's sizes that all have). Throws std::invalid_argument when in < 1, when
// output_padding is not in [0, stride), when the padding crops every row, or on overflow.
int64_t transposed_window_size(const char* fn, const char* what, int64_t in, int64_t pad_lo,
                               int64_t pad_hi, int64_t window, int64_t dilation, int64_t stride,
                               int64_t output_padding);

// h and w >= 1 (strides, dilation, a window's size; `name` says which).
void check_at_least_one(const char* fn, const char* name, int64_t h, int64_t w);

}  // namespace dlcore
