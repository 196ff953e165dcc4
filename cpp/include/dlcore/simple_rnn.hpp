// SimpleRNN in Keras' layout: x (N,T,I), kernel (I,U), recurrent_kernel (U,U), bias (U,):
//   h_t = activation(x_t kernel + h_{t-1} recurrent_kernel + bias), activation tanh or relu.
// A mask (N,T), nonzero where a step runs, makes the other steps carry h through: y
// holds the carried h there, as Keras' recurrent layers output.
#pragma once

#include <cstdint>
#include <vector>

namespace dlcore {

enum class RnnActivation { tanh, relu };

struct SimpleRnnShape {
  int64_t N, T, I, U;
  RnnActivation activation;

  // Validates the forward's operands from their shapes; ranks are checked by the caller.
  // An empty h0 shape means "not given" (zeros), an empty mask shape "every step runs".
  // Throws std::invalid_argument naming the argument, the shape received and the one
  // expected.
  static SimpleRnnShape from_operands(const char* fn, const std::vector<int64_t>& x,
                                      const std::vector<int64_t>& h0,
                                      const std::vector<int64_t>& kernel,
                                      const std::vector<int64_t>& recurrent_kernel,
                                      const std::vector<int64_t>& bias,
                                      const std::vector<int64_t>& mask, RnnActivation activation);

  // Throws unless an incoming gradient `name` has the `expected` shape.
  static void check_gradient(const char* fn, const char* name, const std::vector<int64_t>& got,
                             const std::vector<int64_t>& expected);
};

// x (N,T,I), h0 (N,U) or null (zeros), mask (N,T) or null (every step) -> y (N,T,U) every
// step's h, h_n (N,U). y is all the backward needs besides the inputs. Threads: one
// parallel region for the whole sequence, each thread owning whole sequences or a slice
// of the units as the LSTM's. A step no sequence runs costs a copy.
template <typename T>
void simple_rnn_forward(T* y, T* h_n, const T* x, const T* h0, const T* kernel,
                        const T* recurrent_kernel, const T* bias, const uint8_t* mask,
                        const SimpleRnnShape& s);

// dy (N,T,U), dh_n (N,U), each nullable (zeros) -> dx (N,T,I), dh0 (N,U), dweights (I+U,U):
// dkernel (I,U) stacked on drecurrent_kernel (U,U), one buffer so that one product over
// [x_t, h_{t-1}] computes both, and dbias (U,); all accumulated (+=) into buffers the
// caller zeroed. y and mask are the forward's.
template <typename T>
void simple_rnn_backward(T* dx, T* dh0, T* dweights, T* dbias, const T* y, const T* x, const T* h0,
                         const T* kernel, const T* recurrent_kernel, const T* dy, const T* dh_n,
                         const uint8_t* mask, const SimpleRnnShape& s);

}  // namespace dlcore
