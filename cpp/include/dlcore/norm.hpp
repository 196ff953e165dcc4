// Batch and layer normalisation over the last axis: x (..., C) viewed as (M, C), M the
// product of the other axes. Batch norm takes statistics per channel over the M rows;
// layer norm per row over its C channels. gamma / beta (C) may be null (Keras
// scale=False / center=False: a scale of 1, an offset of 0).
#pragma once

#include <cstdint>
#include <vector>

namespace dlcore {

// The validated (M, C) view of x, shared by forward and backward: x has at least one
// axis and M * C elements. Throws std::invalid_argument naming fn otherwise.
struct NormShape {
  int64_t M, C;

  NormShape(const char* fn, const std::vector<int64_t>& x_shape);
};

// Throws std::invalid_argument naming fn unless epsilon is finite and >= 0.
void check_epsilon(const char* fn, double epsilon);

// x (M,C) -> y (M,C); mean, variance, inv_std (C). Training mode: mean and the biased
// variance of each channel over the batch (what Keras folds into moving_mean and
// moving_variance), inv_std = 1 / sqrt(variance + epsilon), y = (x - mean) * inv_std *
// gamma + beta. The statistics come from fixed chunks of rows merged in chunk order
// (Chan et al.), so every output has the same bits at any thread count. M = 0 gives
// NaN statistics.
template <typename T>
void batch_norm_forward(T* y, T* mean, T* variance, T* inv_std, const T* x, const T* gamma,
                        const T* beta, const NormShape& s, double epsilon);

// x (M,C), mean, variance (C) -> y (M,C): inference mode, with the given statistics.
template <typename T>
void batch_norm_inference(T* y, const T* x, const T* mean, const T* variance, const T* gamma,
                          const T* beta, const NormShape& s, double epsilon);

// dy, x (M,C) -> dx (M,C), written; dgamma, dbeta (C), added to (the caller zeroes them).
// Any output may be null (not wanted). mean and inv_std are the forward's. training: the
// statistics were the batch's, so dx carries their gradient too; otherwise they were
// constants (moving statistics, or a frozen layer).
template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                         const T* mean, const T* inv_std, const NormShape& s, bool training);

// x (M,C) -> y (M,C); mean, inv_std (M): each row normalised by its own mean and biased
// variance, y = (x - mean) * inv_std * gamma + beta. C = 0 gives NaN statistics.
template <typename T>
void layer_norm_forward(T* y, T* mean, T* inv_std, const T* x, const T* gamma, const T* beta,
                        const NormShape& s, double epsilon);

// dy, x (M,C) -> dx (M,C), written; dgamma, dbeta (C), added to. Any output may be null.
// dgamma and dbeta add fixed chunks of rows in chunk order: the same bits at any thread
// count.
template <typename T>
void layer_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                         const T* mean, const T* inv_std, const NormShape& s);

}  // namespace dlcore
