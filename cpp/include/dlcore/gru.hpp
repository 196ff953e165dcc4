// GRU in Keras' layout: x (N,T,I), kernel (I,3U), recurrent_kernel (U,3U), gate columns
// in the order z, r, h; gates sigmoid, candidate tanh. With the reset gate after the
// product (reset_after, Keras 3's default and torch.nn.GRU's formulation), bias (2,3U),
// an input and a recurrent row:
//   [x_z, x_r, x_h] = x_t kernel + bias[0],  [h_z, h_r, h_h] = h_{t-1} recurrent_kernel + bias[1],
//   z = sigmoid(x_z + h_z),  r = sigmoid(x_r + h_r),  n = tanh(x_h + r h_h);
// before it, bias (3U,): [x_z, x_r, x_h] = x_t kernel + bias, z and r as above with no
// recurrent bias, n = tanh(x_h + (r h_{t-1}) recurrent_kernel[:, 2U:]). Then
//   h_t = z h_{t-1} + (1 - z) n.
// A mask (N,T), nonzero where a step runs, makes the other steps carry h through: y
// holds the carried h there, as Keras' recurrent layers output.
#pragma once

#include <cstdint>
#include <vector>

namespace dlcore {

struct GruShape {
  int64_t N, T, I, U;
  bool reset_after;

  // Validates the forward's operands from their shapes; ranks are checked by the caller.
  // An empty h0 shape means "not given" (zeros), an empty mask shape "every step runs".
  // Throws std::invalid_argument naming the argument, the shape received and the one
  // expected.
  static GruShape from_operands(const char* fn, const std::vector<int64_t>& x,
                                const std::vector<int64_t>& h0, const std::vector<int64_t>& kernel,
                                const std::vector<int64_t>& recurrent_kernel,
                                const std::vector<int64_t>& bias, const std::vector<int64_t>& mask,
                                bool reset_after);

  // Throws unless an incoming gradient `name` has the `expected` shape.
  static void check_gradient(const char* fn, const char* name, const std::vector<int64_t>& got,
                             const std::vector<int64_t>& expected);
};

// x (N,T,I), h0 (N,U) or null (zeros), mask (N,T) or null (every step) -> y (N,T,U)
// every step's h, h_n (N,U); saves gates (N,T,3U) (the activations z, r, n) and
// recurrent (N,T,U): with the reset after, h_{t-1} recurrent_kernel[:, 2U:] + bias[1][2U:]
// (the candidate's recurrent part, before the reset gate), before it r h_{t-1}.
// Threads: one parallel region for the whole sequence, each thread owning whole
// sequences or a slice of the units as the LSTM's (one barrier per step with the reset
// after, two before it). A step no sequence runs costs a copy. With gates and recurrent
// both null nothing is saved (inference): they go to the calling thread's kept scratch
// instead; the same bits.
template <typename T>
void gru_forward(T* y, T* h_n, T* gates, T* recurrent, const T* x, const T* h0, const T* kernel,
                 const T* recurrent_kernel, const T* bias, const uint8_t* mask, const GruShape& s);

// dy (N,T,U), dh_n (N,U), each nullable (zeros) -> dx (N,T,I), dh0 (N,U), dkernel (I,3U),
// drecurrent_kernel (U,3U) and dbias (bias's shape), all accumulated (+=) into buffers
// the caller zeroed. gates and recurrent hold what gru_forward saved and are
// overwritten with gradients: a forward's state serves one backward. mask is the
// forward's.
template <typename T>
void gru_backward(T* dx, T* dh0, T* dkernel, T* drecurrent_kernel, T* dbias, T* gates, T* recurrent,
                  const T* y, const T* x, const T* h0, const T* kernel, const T* recurrent_kernel,
                  const T* dy, const T* dh_n, const uint8_t* mask, const GruShape& s);

}  // namespace dlcore
