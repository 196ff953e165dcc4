// LSTM in Keras' layout: x (N,T,I), kernel (I,4U), recurrent_kernel (U,4U), bias (4U,),
// gate columns in the order i, f, c, o; gates sigmoid, cell and output tanh:
//   z = x_t kernel + h_{t-1} recurrent_kernel + bias,  i, f, o = sigmoid(z_i, z_f, z_o),
//   g = tanh(z_c),  c_t = f c_{t-1} + i g,  h_t = o tanh(c_t).
// A mask (N,T), nonzero where a step runs, makes the other steps carry h and c through:
// y holds the carried h there, as Keras' recurrent layers output.
#pragma once

#include <cstdint>
#include <vector>

namespace dlcore {

struct LstmShape {
  int64_t N, T, I, U;

  // Validates the forward's operands from their shapes; ranks are checked by the caller.
  // x is (N, T, I), or (N, I) for a single cell step (then T = 1). An empty h0 / c0 shape
  // means "not given" (zeros), as does an empty mask shape (every step runs). Throws
  // std::invalid_argument naming the argument, the shape received and the one expected.
  static LstmShape from_operands(const char* fn, bool cell, const std::vector<int64_t>& x,
                                 const std::vector<int64_t>& h0, const std::vector<int64_t>& c0,
                                 const std::vector<int64_t>& kernel,
                                 const std::vector<int64_t>& recurrent_kernel,
                                 const std::vector<int64_t>& bias,
                                 const std::vector<int64_t>& mask = {});

  // Throws unless an incoming gradient `name` has the `expected` shape.
  static void check_gradient(const char* fn, const char* name, const std::vector<int64_t>& got,
                             const std::vector<int64_t>& expected);
};

// ---------------------------------------------------------------- whole sequence
// x (N,T,I), h0, c0 (N,U) or null (zeros), mask (N,T) or null (every step) -> y (N,T,U)
// every step's h, h_n, c_n (N,U); saves gates (N,T,4U) (the activations i, f, g, o) and
// cells (N,T,U) (every c_t). Threads: one parallel region for the whole sequence; each
// thread owns whole sequences of the batch (no synchronisation between steps) when
// there are at least 4 per thread, else a slice of the hidden units (one barrier per
// step). A step no sequence runs costs a copy. With gates and cells both null nothing is
// saved (inference): the same bits, without keeping (N,T,5U) values.
template <typename T>
void lstm_forward(T* y, T* h_n, T* c_n, T* gates, T* cells, const T* x, const T* h0, const T* c0,
                  const T* kernel, const T* recurrent_kernel, const T* bias, const uint8_t* mask,
                  const LstmShape& s);

// dy (N,T,U), dh_n, dc_n (N,U), each nullable (zeros) -> dx (N,T,I), dh0, dc0 (N,U),
// dweights (I+U,4U): dkernel (I,4U) stacked on drecurrent_kernel (U,4U), one buffer so
// that one product over [x_t, h_{t-1}] computes both, and dbias (4U,); all accumulated
// (+=) into buffers the caller zeroed. `gates` holds what lstm_forward saved and is
// overwritten with the gradients of the gate pre-activations: a forward's state serves
// one backward. mask is the forward's.
template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dweights, T* dbias, T* gates, const T* cells,
                   const T* y, const T* x, const T* h0, const T* c0, const T* kernel,
                   const T* recurrent_kernel, const T* dy, const T* dh_n, const T* dc_n,
                   const uint8_t* mask, const LstmShape& s);

// ---------------------------------------------------------------- one cell step
// x (N,I), h, c (N,U) or null (zeros) -> h_next, c_next (N,U); saves gates (N,4U).
// s.T must be 1. Threads: Eigen's threaded GEMMs, then the gate pass split by units.
template <typename T>
void lstm_cell_forward(T* h_next, T* c_next, T* gates, const T* x, const T* h, const T* c,
                       const T* kernel, const T* recurrent_kernel, const T* bias,
                       const LstmShape& s);

// dh_next, dc_next (N,U), nullable -> dx (N,I), dh, dc (N,U), dweights (I+U,4U) and
// dbias as in lstm_backward, accumulated (+=) into zeroed buffers. `gates` is
// overwritten as in lstm_backward.
template <typename T>
void lstm_cell_backward(T* dx, T* dh, T* dc, T* dweights, T* dbias, T* gates, const T* c_next,
                        const T* x, const T* h, const T* c, const T* kernel,
                        const T* recurrent_kernel, const T* dh_next, const T* dc_next,
                        const LstmShape& s);

// Threads the sequence kernels use for this shape: get_num_threads(), fewer when the
// problem is too small to pay for them.
int lstm_num_threads(const LstmShape& s);

}  // namespace dlcore
