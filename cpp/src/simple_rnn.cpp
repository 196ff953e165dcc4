#include "dlcore/simple_rnn.hpp"

#include <Eigen/Core>
#include <algorithm>

#include "common/packed_panels.hpp"
#include "common/recurrent.hpp"
#include "common/simd.hpp"
#include "common/workspace.hpp"
#include "dlcore/checks.hpp"
#include "dlcore/gemm.hpp"
#include "dlcore/parallel.hpp"

namespace dlcore {
namespace {

namespace ei = Eigen::internal;
using simd::Packet;

// The products run on packed panels of the weights (common/packed_panels.hpp): the
// input projection with the bias as each tile's init, written straight into y; each
// step's h_{t-1} @ recurrent_kernel added to it; the backward's transposed products.

// ---------------------------------------------------------------- activation
// h = activation(z) in place over a row of L units.
template <typename T, RnnActivation A>
void activate_row(T* h, int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    const Packet<T> z = at.load(h);
    if constexpr (A == RnnActivation::tanh) {
      at.store(h, simd::tanh<T>(z));
    } else {
      at.store(h, ei::pmax(z, simd::zero<T>()));
    }
  });
}

// dz = dh * activation'(z), from h = activation(z): 1 - h^2 for tanh, h > 0 for relu;
// the bias sums b accumulate it.
template <typename T, RnnActivation A>
void derivative_row(T* dz, T* b, const T* dh, const T* h, int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P hv = at.load(h), d = at.load(dh);
    P g;
    if constexpr (A == RnnActivation::tanh) {
      g = ei::pmul(d, ei::psub(ei::pset1<P>(T(1)), ei::pmul(hv, hv)));
    } else {
      g = ei::pand(ei::pcmp_lt(simd::zero<T>(), hv), d);
    }
    at.store(dz, g);
    add_to<T>(at, b, g);
  });
}

// The scratch of a SimpleRNN call, kept by the calling thread for its next call.
struct SimpleRnnScratch {};

}  // namespace

// ---------------------------------------------------------------- shapes
SimpleRnnShape SimpleRnnShape::from_operands(
    const char* fn, const std::vector<int64_t>& x, const std::vector<int64_t>& h0,
    const std::vector<int64_t>& kernel, const std::vector<int64_t>& recurrent_kernel,
    const std::vector<int64_t>& bias, const std::vector<int64_t>& mask, RnnActivation activation) {
  SimpleRnnShape s{x[0], x[1], x[2], recurrent_kernel[0], activation};
  check_steps(fn, x, s.T);
  check_recurrent_weights(fn, s.I, s.U, 1, kernel, recurrent_kernel);
  if (bias[0] != s.U) {
    fail(fn, ": argument 'bias' has shape ", shape_str(bias), "; expected (U,) = (", s.U,
         ",) for U=", s.U, " units");
  }
  check_state(fn, "h0", h0, s.N, s.U);
  check_mask(fn, mask, s.N, s.T);
  checked_mul(checked_mul(s.N, s.T, fn), s.U, fn);  // y
  return s;
}

void SimpleRnnShape::check_gradient(const char* fn, const char* name,
                                    const std::vector<int64_t>& got,
                                    const std::vector<int64_t>& expected) {
  check_gradient_shape(fn, name, got, expected);
}

// ---------------------------------------------------------------- sequence
namespace {

Plan plan(const SimpleRnnShape& s) { return recurrent_plan(s.N, s.T, s.I, s.U, 1); }

template <typename T>
struct ForwardBuffers {
  T *y, *h_n;
  const T *x, *h0, *kernel, *recurrent_kernel, *bias;
  const uint8_t* mask;
};

template <typename T>
struct BackwardBuffers {
  T *dx, *dh0, *dweights, *dbias;
  const T *y, *x, *h0, *kernel, *recurrent_kernel, *dy, *dh_n;
  const uint8_t* mask;
};

// Both splits (common/recurrent.hpp): every step adds h_{t-1} @ recurrent_kernel to the
// thread's columns of its rows of y (which the projection filled), then activates them.
template <typename T, RnnActivation A>
void forward(const ForwardBuffers<T>& b, const SimpleRnnShape& s, Plan how) {
  auto [y, h_n, x, h0, kernel, recurrent_kernel, bias, mask] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U;
  const Panels<T> wl{I, 1, 0, 0, U}, rl{U, 1, 0, 0, U};
  WorkspaceLayout layout;
  const size_t w_off = layout.add<T>(share_bound<T>("simple_rnn", wl, how.threads));
  const size_t r_off = layout.add<T>(share_bound<T>("simple_rnn", rl, how.threads));
  const Workspace ws(kept_buffer<SimpleRnnScratch>(), layout.bytes());
  const StepMask steps{mask, TT};

#pragma omp parallel num_threads(how.threads)
  {
    const int team = team_size(), p = thread_index();
    const Share sh = share_of<T>(how.by_batch, N, U, team, p);
    const Packed<T> w = pack_share(ws.at<T>(w_off), kernel, U, 1, wl, sh, team, p);
    const Packed<T> r = pack_share(ws.at<T>(r_off), recurrent_kernel, U, 1, rl, sh, team, p);
    const int64_t n0 = sh.n0, n1 = sh.n1, j0 = sh.j0, L = sh.units();
#pragma omp barrier  // every panel is packed
    panel_product(y + n0 * TT * U, U, bias, 0, x + n0 * TT * I, I, (n1 - n0) * TT, w.data,
                  w.panels);
    for (int64_t t = 0; t < TT; ++t) {
      if (t > 0) step_barrier(sh);  // every unit of h_{t-1} is written
      const auto [a, e] = steps.live_rows(t, n0, n1);
      const StateRows<T> h_prev = states_before(y, h0, a, t, TT, U);
      T* yt = y + t * U;
      if (h_prev.data && e > a && L > 0) {
        T* ya = yt + a * TT * U;
        panel_product(ya, TT * U, ya, TT * U, h_prev.data, h_prev.ld, e - a, r.data, r.panels);
      }
      for (int64_t n = n0; n < n1; ++n) {
        T* h = yt + n * TT * U + j0;
        if (steps.live(n, t)) {
          activate_row<T, A>(h, L);
        } else {
          carry_state(h, state_before(y, h0, n, t, TT, U, j0), L);
        }
      }
    }
    copy_last_states(h_n, y, sh, TT, U);
  }
}

// Every step: dz = dh * activation' for the thread's rows and units, then
// dh_{t-1} += dz @ recurrent_kernel^T for its rows and units.
template <typename T, RnnActivation A>
void backward(const BackwardBuffers<T>& b, const SimpleRnnShape& s, Plan how) {
  auto [dx, dh0, dweights, dbias, y, x, h0, kernel, recurrent_kernel, dy, dh_n, mask] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, rows = N * TT;
  // Transposed packings (b(k, j) = w[j, k]): the thread's dh columns are rows of the
  // recurrent kernel; dx needs every row of the kernel.
  const Panels<T> rl{U, 1, 0, 0, U}, wl{U, 1, 0, 0, I};
  WorkspaceLayout layout;
  const size_t r_off = layout.add<T>(share_bound<T>("simple_rnn", rl, how.threads));
  const size_t w_off = layout.add<T>(wl.size());
  const size_t dh_off = layout.add<T>(N * U);
  const size_t dz_off = layout.add<T>(checked_mul(rows, U, "simple_rnn_backward"));
  const size_t xh_off = layout.add<T>(checked_mul(rows, I + U, "simple_rnn_backward"));
  const size_t bias_off = layout.add<T>(BiasSums<T>::size(U, how.threads));
  const Workspace ws(kept_buffer<SimpleRnnScratch>(), layout.bytes());
  T* dh = ws.at<T>(dh_off);
  T* dz = ws.at<T>(dz_off);
  T* xh = ws.at<T>(xh_off);
  const BiasSums<T> sums{ws.at<T>(bias_off), U};
  const StepMask steps{mask, TT};

#pragma omp parallel num_threads(how.threads)
  {
    const int team = team_size(), p = thread_index();
    const Share sh = share_of<T>(how.by_batch, N, U, team, p);
    const Packed<T> r = pack_share(ws.at<T>(r_off), recurrent_kernel, 1, U, rl, sh, team, p);
    const Packed<T> w = pack_whole(ws.at<T>(w_off), kernel, 1, U, wl, team, p);
    const int64_t n0 = sh.n0, n1 = sh.n1, j0 = sh.j0, L = sh.units();
    const int64_t r0 = rows * p / team, r1 = rows * (p + 1) / team;
    gather_inputs(xh, x, y, h0, TT, I, U, r0, r1);
    last_step_gradient(dh, dy, dh_n, sh, TT, U);
    T* bsum = sums.of(dbias, sh, p);
#pragma omp barrier  // every panel is packed
    for (int64_t t = TT - 1; t >= 0; --t) {
      T* dzt = dz + t * U;
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t row = n * TT + t;
        T* d = dz + row * U + j0;
        const T* dyb = dy_before(dy, n, t, TT, U, j0);
        if (steps.live(n, t)) {
          derivative_row<T, A>(d, bsum + j0, dh + n * U + j0, y + row * U + j0, L);
          gradient_before(dh + n * U + j0, dyb, L);
        } else {
          std::fill(d, d + L, T(0));
          carry_gradient(dh + n * U + j0, dyb, L);
        }
      }
      step_barrier(sh);  // every unit's dz_t is written
      const auto [a, e] = steps.live_rows(t, n0, n1);
      if (e > a && L > 0) {
        panel_product(dh + a * U, U, dh + a * U, U, dzt + a * TT * U, TT * U, e - a, r.data,
                      r.panels);
      }
    }
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t j = j0; j < sh.j1; ++j) dh0[n * U + j] += dh[n * U + j];
    }
#pragma omp barrier  // every dz and every thread's bias sums are written
    // dx = dz @ kernel^T over all steps at once, this thread's rows.
    panel_product(dx + r0 * I, I, dx + r0 * I, I, dz + r0 * U, U, r1 - r0, w.data, w.panels);
    sums.add_into(dbias, sh, team, p);
  }
  // dkernel and drecurrent_kernel (stacked in dweights) from one product: xh^T @ dz.
  weight_gradient(dweights, U, xh, I + U, dz, U, rows, I + U, U);
}

}  // namespace

template <typename T>
void simple_rnn_forward(T* y, T* h_n, const T* x, const T* h0, const T* kernel,
                        const T* recurrent_kernel, const T* bias, const uint8_t* mask,
                        const SimpleRnnShape& s) {
  if (s.N == 0 || s.U == 0) return;
  const ForwardBuffers<T> b{y, h_n, x, h0, kernel, recurrent_kernel, bias, mask};
  if (s.activation == RnnActivation::relu) {
    forward<T, RnnActivation::relu>(b, s, plan(s));
  } else {
    forward<T, RnnActivation::tanh>(b, s, plan(s));
  }
}

template <typename T>
void simple_rnn_backward(T* dx, T* dh0, T* dweights, T* dbias, const T* y, const T* x, const T* h0,
                         const T* kernel, const T* recurrent_kernel, const T* dy, const T* dh_n,
                         const uint8_t* mask, const SimpleRnnShape& s) {
  if (s.N == 0 || s.U == 0) return;
  const BackwardBuffers<T> b{dx, dh0,    dweights,         dbias, y,    x,
                             h0, kernel, recurrent_kernel, dy,    dh_n, mask};
  if (s.activation == RnnActivation::relu) {
    backward<T, RnnActivation::relu>(b, s, plan(s));
  } else {
    backward<T, RnnActivation::tanh>(b, s, plan(s));
  }
}

#define DLCORE_INSTANTIATE_SIMPLE_RNN(T)                                                        \
  template void simple_rnn_forward<T>(T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                      const uint8_t*, const SimpleRnnShape&);                   \
  template void simple_rnn_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,  \
                                       const T*, const T*, const T*, const uint8_t*,            \
                                       const SimpleRnnShape&);
DLCORE_INSTANTIATE_SIMPLE_RNN(float)
DLCORE_INSTANTIATE_SIMPLE_RNN(double)
#undef DLCORE_INSTANTIATE_SIMPLE_RNN

}  // namespace dlcore
