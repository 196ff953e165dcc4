// Softmax over the last axis and the cross-entropy of its output, computed from the
// logits in one pass: x (R, C) -> y (R, C), R rows of C classes each.
#pragma once

#include <cstdint>

namespace dlcore {

// y = exp(x - max(x)) / sum(exp(x - max(x))) per row; a NaN or a +inf logit makes its
// row NaN, as NumPy's formula does (a -inf logit gets probability 0). Rows are independent: each is
// computed by one thread, so every bit is the same at any thread count.
template <typename T>
void softmax_forward(T* y, const T* x, int64_t R, int64_t C);

// dx = y * (dy - sum(dy * y)) per row, written (not added).
template <typename T>
void softmax_backward(T* dx, const T* dy, const T* y, int64_t R, int64_t C);

// The cross-entropy of softmax(logits) against integer labels (R,): loss[r] =
// logsumexp(logits[r]) - logits[r, labels[r]], exact for any finite logit. With `grad`
// (not null), grad (R, C) = softmax(logits) - onehot(labels), the gradient of each row's
// loss. A label outside [0, C) throws std::invalid_argument naming fn, the first such
// label's value, its row and C (loss and grad are then left partly written). Each label
// is read once.
template <typename T, typename I>
void sparse_softmax_cross_entropy(T* loss, T* grad, const T* logits, const I* labels, int64_t R,
                                  int64_t C, const char* fn);

// The same against target distributions (R, C) (one-hot or soft rows): loss[r] =
// -sum(targets[r] * log_softmax(logits[r])); grad = softmax(logits) * sum(targets[r]) -
// targets[r]. Needs C >= 1 when R > 0 (a row of no classes has no loss; the binding
// refuses it). As in Keras, a -inf logit whose target is 0 makes its row's loss NaN.
template <typename T>
void softmax_cross_entropy(T* loss, T* grad, const T* logits, const T* targets, int64_t R,
                           int64_t C);

}  // namespace dlcore
