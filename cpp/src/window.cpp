#include "dlcore/window.hpp"

#include "dlcore/checks.hpp"

namespace dlcore {

int64_t sliding_window_size(const char* fn, const char* what, int64_t in, int64_t pad_lo,
                            int64_t pad_hi, int64_t window, int64_t dilation, int64_t stride) {
  int64_t padded, span;
  if (__builtin_add_overflow(in, pad_lo, &padded) ||
      __builtin_add_overflow(padded, pad_hi, &padded) ||
      __builtin_mul_overflow(window - 1, dilation, &span) ||
      __builtin_add_overflow(span, 1, &span)) {
    fail(fn, ": ", what, " size ", in, " with padding (", pad_lo, ", ", pad_hi, "), window ",
         window, " and dilation ", dilation, " overflows a 64-bit integer");
  }
  if (span > padded) {
    fail(fn, ": the ", what, " window spans ", span, " (size ", window, ", dilation ", dilation,
         ") but the padded input has ", what, " ", padded, " (", in, " + padding ", pad_lo, " + ",
         pad_hi, "); expected a window no larger than the padded input");
  }
  return (padded - span) / stride + 1;
}

int64_t transposed_window_size(const char* fn, const char* what, int64_t in, int64_t pad_lo,
                               int64_t pad_hi, int64_t window, int64_t dilation, int64_t stride,
                               int64_t output_padding) {
  if (in < 1) {
    fail(fn, ": x has ", what, " ", in, "; expected >= 1 (a transposed window needs an input)");
  }
  if (output_padding < 0 || output_padding >= stride) {
    fail(fn, ": output_padding along the ", what, " is ", output_padding, " with stride ", stride,
         "; expected 0 <= output_padding < stride");
  }
  int64_t size, span;
  if (__builtin_mul_overflow(window - 1, dilation, &span) ||
      __builtin_mul_overflow(in - 1, stride, &size) || __builtin_add_overflow(size, span, &size) ||
      __builtin_add_overflow(size, 1 + output_padding, &size)) {
    fail(fn, ": ", what, " size ", in, " with stride ", stride, ", window ", window,
         " and dilation ", dilation, " overflows a 64-bit integer");
  }
  // pad_lo and pad_hi are >= 0 (Window2d::check) and size >= 1, so this cannot overflow.
  if (pad_lo >= size || pad_hi >= size - pad_lo) {
    fail(fn, ": padding (", pad_lo, ", ", pad_hi, ") crops the whole ", what, " of ", size, " (",
         in, " inputs, stride ", stride, ", window ", window, ", dilation ", dilation,
         "); expected padding that leaves at least one row");
  }
  return size - pad_lo - pad_hi;
}

void check_at_least_one(const char* fn, const char* name, int64_t h, int64_t w) {
  if (h < 1 || w < 1) fail(fn, ": ", name, " must be >= 1, got (", h, ", ", w, ")");
}

void Window2d::check(const char* fn) const {
  check_at_least_one(fn, "strides", stride_h, stride_w);
  check_at_least_one(fn, "dilation", dilation_h, dilation_w);
  if (pad_top < 0 || pad_bottom < 0 || pad_left < 0 || pad_right < 0) {
    fail(fn, ": padding must be >= 0, got ((", pad_top, ", ", pad_bottom, "), (", pad_left, ", ",
         pad_right, "))");
  }
}

int64_t Window2d::out_h(const char* fn, int64_t H, int64_t KH) const {
  return sliding_window_size(fn, "height", H, pad_top, pad_bottom, KH, dilation_h, stride_h);
}

int64_t Window2d::out_w(const char* fn, int64_t W, int64_t KW) const {
  return sliding_window_size(fn, "width", W, pad_left, pad_right, KW, dilation_w, stride_w);
}

}  // namespace dlcore
