#include "dlcore/lstm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

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

// The products (the input projection with the bias as each tile's init, so the gates
// buffer needs no initialising pass; every step's h_{t-1} @ recurrent_kernel; the
// backward's dh = dz @ recurrent_kernel^T and dx = dz @ kernel^T) run on packed panels
// of the weights: see common/packed_panels.hpp.

// ---------------------------------------------------------------- gates
// One packet of units at a time, every unit through the same vector arithmetic (the
// last few through a zero-padded packet), so a unit's result does not depend on where a
// thread's slice of units begins or ends: the result is the same for any thread count.
// (simd::FullPacket and PartialPacket say which units a packet covers.)

// The forward of one packet of units: z* hold the pre-activations and receive the
// activations (what the backward needs); c receives c_t, h receives h_t.
template <typename T, bool HasPrev, typename Lanes>
EIGEN_STRONG_INLINE void gates_forward_packet(Lanes at, T* zi, T* zf, T* zg, T* zo, const T* c_prev,
                                              T* c, T* h) {
  using P = Packet<T>;
  const P i = simd::sigmoid<T>(at.load(zi)), f = simd::sigmoid<T>(at.load(zf));
  const P g = simd::tanh<T>(at.load(zg)), o = simd::sigmoid<T>(at.load(zo));
  const P ig = ei::pmul(i, g);
  const P ct = HasPrev ? ei::pmadd(f, at.load(c_prev), ig) : ig;
  at.store(zi, i);
  at.store(zf, f);
  at.store(zg, g);
  at.store(zo, o);
  at.store(c, ct);
  at.store(h, ei::pmul(o, simd::tanh<T>(ct)));
}

// The backward of one packet: z* hold the activations and receive the gradients of the
// pre-activations, which b* accumulate; dc holds dL/dc_t and receives dL/dc_{t-1}.
template <typename T, bool HasPrev, typename Lanes>
EIGEN_STRONG_INLINE void gates_backward_packet(Lanes at, T* zi, T* zf, T* zg, T* zo, T* dc, T* bi,
                                               T* bf, T* bg, T* bo, const T* dh, const T* c,
                                               const T* c_prev) {
  using P = Packet<T>;
  const P one = ei::pset1<P>(T(1));
  const P i = at.load(zi), f = at.load(zf), g = at.load(zg), o = at.load(zo), dht = at.load(dh);
  const P tc = simd::tanh<T>(at.load(c));
  const P dct = ei::pmadd(ei::pmul(dht, o), ei::psub(one, ei::pmul(tc, tc)), at.load(dc));
  const P di = ei::pmul(ei::pmul(dct, g), ei::pmul(i, ei::psub(one, i)));
  const P dcf = HasPrev ? ei::pmul(dct, at.load(c_prev)) : ei::pset1<P>(T(0));
  const P df = ei::pmul(dcf, ei::pmul(f, ei::psub(one, f)));
  const P dg = ei::pmul(ei::pmul(dct, i), ei::psub(one, ei::pmul(g, g)));
  const P dout = ei::pmul(ei::pmul(dht, tc), ei::pmul(o, ei::psub(one, o)));
  at.store(zi, di);
  at.store(zf, df);
  at.store(zg, dg);
  at.store(zo, dout);
  at.store(bi, ei::padd(at.load(bi), di));
  at.store(bf, ei::padd(at.load(bf), df));
  at.store(bg, ei::padd(at.load(bg), dg));
  at.store(bo, ei::padd(at.load(bo), dout));
  at.store(dc, ei::pmul(dct, f));
}

// The fused gate pass of one row over L units: z points at the first unit's i gate, the
// f, c, o gates follow U, 2U, 3U further. The pre-activations are replaced by the
// activations i, f, g, o. c_prev null means zeros.
template <typename T, bool HasPrev>
void gates_forward_row(T* z, int64_t U, const T* c_prev, T* c, T* h, int64_t L) {
  int64_t j = 0;
  for (; j + simd::kLanes<T> <= L; j += simd::kLanes<T>) {
    gates_forward_packet<T, HasPrev>(simd::FullPacket<T>{j}, z, z + U, z + 2 * U, z + 3 * U, c_prev,
                                     c, h);
  }
  if (j < L) {
    gates_forward_packet<T, HasPrev>(simd::PartialPacket<T>{j, L - j}, z, z + U, z + 2 * U,
                                     z + 3 * U, c_prev, c, h);
  }
}

template <typename T>
void gates_forward(T* z, int64_t U, const T* c_prev, T* c, T* h, int64_t L) {
  if (c_prev) {
    gates_forward_row<T, true>(z, U, c_prev, c, h, L);
  } else {
    gates_forward_row<T, false>(z, U, nullptr, c, h, L);
  }
}

// Backward of gates_forward for one row. a holds the activations (laid out as z above)
// and is overwritten with the gradients of the pre-activations, which dbias (same
// layout) accumulates; dc holds dL/dc_t on entry and dL/dc_{t-1} on return; dh is
// dL/dh_t.
template <typename T, bool HasPrev>
void gates_backward_row(T* a, T* dc, T* b, const T* dh, const T* c, const T* c_prev, int64_t U,
                        int64_t L) {
  int64_t j = 0;
  for (; j + simd::kLanes<T> <= L; j += simd::kLanes<T>) {
    gates_backward_packet<T, HasPrev>(simd::FullPacket<T>{j}, a, a + U, a + 2 * U, a + 3 * U, dc, b,
                                      b + U, b + 2 * U, b + 3 * U, dh, c, c_prev);
  }
  if (j < L) {
    gates_backward_packet<T, HasPrev>(simd::PartialPacket<T>{j, L - j}, a, a + U, a + 2 * U,
                                      a + 3 * U, dc, b, b + U, b + 2 * U, b + 3 * U, dh, c, c_prev);
  }
}

template <typename T>
void gates_backward(T* a, T* dc, T* dbias, const T* dh, const T* c, const T* c_prev, int64_t U,
                    int64_t L) {
  if (c_prev) {
    gates_backward_row<T, true>(a, dc, dbias, dh, c, c_prev, U, L);
  } else {
    gates_backward_row<T, false>(a, dc, dbias, dh, c, nullptr, U, L);
  }
}

// ---------------------------------------------------------------- shapes
// The scratch of an LSTM call, kept by the calling thread for its next call.
struct LstmScratch {};

}  // namespace

LstmShape LstmShape::from_operands(const char* fn, bool cell, const std::vector<int64_t>& x,
                                   const std::vector<int64_t>& h0, const std::vector<int64_t>& c0,
                                   const std::vector<int64_t>& kernel,
                                   const std::vector<int64_t>& recurrent_kernel,
                                   const std::vector<int64_t>& bias,
                                   const std::vector<int64_t>& mask) {
  LstmShape s{x[0], cell ? 1 : x[1], x.back(), recurrent_kernel[0]};
  check_steps(fn, x, s.T);
  check_recurrent_weights(fn, s.I, s.U, 4, kernel, recurrent_kernel);
  if (bias[0] != 4 * s.U) {
    fail(fn, ": argument 'bias' has shape ", shape_str(bias), "; expected (4U,) = (", 4 * s.U,
         ",) for U=", s.U, " units");
  }
  check_state(fn, cell ? "h" : "h0", h0, s.N, s.U);
  check_state(fn, cell ? "c" : "c0", c0, s.N, s.U);
  check_mask(fn, mask, s.N, s.T);
  checked_mul(checked_mul(s.N, s.T, fn), 4 * s.U, fn);  // the saved gates
  return s;
}

void LstmShape::check_gradient(const char* fn, const char* name, const std::vector<int64_t>& got,
                               const std::vector<int64_t>& expected) {
  check_gradient_shape(fn, name, got, expected);
}

namespace {

Plan plan(const LstmShape& s) { return recurrent_plan(s.N, s.T, s.I, s.U, 4); }

}  // namespace

int lstm_num_threads(const LstmShape& s) { return plan(s).threads; }

// ---------------------------------------------------------------- sequence
namespace {

// The operands of lstm_forward and lstm_backward, handed whole to the team.
template <typename T>
struct ForwardBuffers {
  T *y, *h_n, *c_n, *gates, *cells;
  const T *x, *h0, *c0, *kernel, *recurrent_kernel, *bias;
  const uint8_t* mask;
};

template <typename T>
struct BackwardBuffers {
  T *dx, *dh0, *dc0, *dweights, *dbias, *gates;
  const T *cells, *y, *x, *h0, *c0, *kernel, *recurrent_kernel, *dy, *dh_n, *dc_n;
  const uint8_t* mask;
};

// Both splits (common/recurrent.hpp): every step adds h_{t-1} @ recurrent_kernel to the
// thread's gate columns of its rows, then runs their gates.
//
// With no gates and cells to save (inference), the gates go to the calling thread's
// kept scratch instead of a fresh (N,T,4U) array that a cache would hold, and c lives in
// c_n instead of every step's cells (N,T,U): the same arithmetic, so the same bits, and
// 1.0-1.13x as fast. (Running each step's input projection just before its recurrent
// product, so that a step's gates stay in cache, measured 0.71-1.07x: every step
// streams the packed kernel again.)
template <typename T>
void forward(const ForwardBuffers<T>& b, const LstmShape& s, Plan how) {
  auto [y, h_n, c_n, saved_gates, cells, x, h0, c0, kernel, recurrent_kernel, bias, mask] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 4 * U;
  const Panels<T> wl{I, 4, U, 0, U}, rl{U, 4, U, 0, U};  // every gate column
  WorkspaceLayout layout;
  const size_t w_off = layout.add<T>(share_bound<T>("lstm", wl, how.threads));
  const size_t r_off = layout.add<T>(share_bound<T>("lstm", rl, how.threads));
  const size_t z_off = saved_gates ? 0 : layout.add<T>(checked_mul(N * TT, G, "lstm_forward"));
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());
  T* const gates = saved_gates ? saved_gates : ws.at<T>(z_off);
  const StepMask steps{mask, TT};

#pragma omp parallel num_threads(how.threads)
  {
    const int team = team_size(), p = thread_index();
    const Share sh = share_of<T>(how.by_batch, N, U, team, p);
    const Packed<T> w = pack_share(ws.at<T>(w_off), kernel, G, 1, wl, sh, team, p);
    const Packed<T> r = pack_share(ws.at<T>(r_off), recurrent_kernel, G, 1, rl, sh, team, p);
    const int64_t n0 = sh.n0, j0 = sh.j0, L = sh.units();
#pragma omp barrier  // every panel is packed
    // Every step's input projection in one product: this thread's gate columns of its
    // rows of x (N*T, I) @ kernel + bias. Steps then only add h_{t-1} @ recurrent_kernel.
    panel_product(gates + n0 * TT * G, G, bias, 0, x + n0 * TT * I, I, (sh.n1 - n0) * TT, w.data,
                  w.panels);
    for (int64_t t = 0; t < TT; ++t) {
      if (t > 0) step_barrier(sh);  // every unit of h_{t-1} is written
      const auto [a, e] = steps.live_rows(t, n0, sh.n1);
      const StateRows<T> h_prev = states_before(y, h0, a, t, TT, U);
      T* zt = gates + t * G;
      if (h_prev.data && e > a && L > 0) {
        T* za = zt + a * TT * G;
        panel_product(za, TT * G, za, TT * G, h_prev.data, h_prev.ld, e - a, r.data, r.panels);
      }
      for (int64_t n = n0; n < sh.n1; ++n) {
        const int64_t row = n * TT + t;
        T* c = cells ? cells + row * U + j0 : c_n + n * U + j0;  // c_n: c_{t-1} in, c_t out
        const T* c_prev = cells || t == 0 ? state_before(cells, c0, n, t, TT, U, j0) : c;
        if (steps.live(n, t)) {
          gates_forward(zt + n * TT * G + j0, U, c_prev, c, y + row * U + j0, L);
        } else {
          carry_state(y + row * U + j0, state_before(y, h0, n, t, TT, U, j0), L);
          if (c != c_prev) carry_state(c, c_prev, L);
        }
      }
    }
    copy_last_states(h_n, y, sh, TT, U);
    if (cells) copy_last_states(c_n, cells, sh, TT, U);
  }
}

// Every step: the gate pass of the thread's rows and units (dz into `gates`), then
// dh_{t-1} += dz @ recurrent_kernel^T for its rows and units.
template <typename T>
void backward(const BackwardBuffers<T>& b, const LstmShape& s, Plan how) {
  auto [dx, dh0, dc0, dweights, dbias, gates, cells, y, x, h0, c0, kernel, recurrent_kernel, dy,
        dh_n, dc_n, mask] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 4 * U, rows = N * TT;
  // dh = dz @ recurrent_kernel^T: the thread's dh columns are rows of the recurrent
  // kernel, packed transposed (b(k, j) = recurrent_kernel[j, k]); dx = dz @ kernel^T
  // likewise, every column for every thread.
  const Panels<T> rl{G, 1, 0, 0, U}, wl{G, 1, 0, 0, I};
  WorkspaceLayout layout;
  const size_t r_off = layout.add<T>(share_bound<T>("lstm", rl, how.threads));
  const size_t w_off = layout.add<T>(wl.size());
  const size_t dh_off = layout.add<T>(N * U), dc_off = layout.add<T>(N * U);
  const size_t xh_off = layout.add<T>(checked_mul(rows, I + U, "lstm_backward"));
  const size_t bias_off = layout.add<T>(BiasSums<T>::size(G, how.threads));
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());
  T* dh = ws.at<T>(dh_off);
  T* dc = ws.at<T>(dc_off);
  T* xh = ws.at<T>(xh_off);
  const BiasSums<T> sums{ws.at<T>(bias_off), G};
  const StepMask steps{mask, TT};

#pragma omp parallel num_threads(how.threads)
  {
    const int team = team_size(), p = thread_index();
    const Share sh = share_of<T>(how.by_batch, N, U, team, p);
    const Packed<T> r = pack_share(ws.at<T>(r_off), recurrent_kernel, 1, G, rl, sh, team, p);
    const Packed<T> w = pack_whole(ws.at<T>(w_off), kernel, 1, G, wl, team, p);
    const int64_t j0 = sh.j0, L = sh.units();
    const int64_t r0 = rows * p / team, r1 = rows * (p + 1) / team;
    gather_inputs(xh, x, y, h0, TT, I, U, r0, r1);
    last_step_gradient(dh, dy, dh_n, sh, TT, U);
    for (int64_t n = sh.n0; n < sh.n1; ++n) {
      carry_state(dc + n * U + j0, dc_n ? dc_n + n * U + j0 : nullptr, L);
    }
    T* bsum = sums.of(dbias, sh, p);
#pragma omp barrier  // every panel is packed
    for (int64_t t = TT - 1; t >= 0; --t) {
      T* zt = gates + t * G;
      for (int64_t n = sh.n0; n < sh.n1; ++n) {
        const int64_t row = n * TT + t;
        T* z = zt + n * TT * G + j0;
        if (steps.live(n, t)) {
          gates_backward(z, dc + n * U + j0, bsum + j0, dh + n * U + j0, cells + row * U + j0,
                         state_before(cells, c0, n, t, TT, U, j0), U, L);
          gradient_before(dh + n * U + j0, dy_before(dy, n, t, TT, U, j0), L);
        } else {
          for (int g = 0; g < 4; ++g) std::fill(z + g * U, z + g * U + L, T(0));
          carry_gradient(dh + n * U + j0, dy_before(dy, n, t, TT, U, j0), L);
        }
      }
      step_barrier(sh);  // every unit's dz_t is written
      const auto [a, e] = steps.live_rows(t, sh.n0, sh.n1);
      if (e > a && L > 0) {
        panel_product(dh + a * U, U, dh + a * U, U, zt + a * TT * G, TT * G, e - a, r.data,
                      r.panels);
      }
    }
    for (int64_t n = sh.n0; n < sh.n1; ++n) {
      for (int64_t j = j0; j < sh.j1; ++j) {
        dh0[n * U + j] += dh[n * U + j];
        dc0[n * U + j] += dc[n * U + j];
      }
    }
#pragma omp barrier  // every dz and every thread's bias sums are written
    // dx = dz @ kernel^T over all steps at once, this thread's rows.
    panel_product(dx + r0 * I, I, dx + r0 * I, I, gates + r0 * G, G, r1 - r0, w.data, w.panels);
    sums.add_into(dbias, sh, team, p);
  }
  // dkernel and drecurrent_kernel (stacked in dweights) over all steps at once, from one
  // product that reads dz once: xh^T @ dz.
  weight_gradient(dweights, G, xh, I + U, gates, G, rows, I + U, G);
}

}  // namespace

template <typename T>
void lstm_forward(T* y, T* h_n, T* c_n, T* gates, T* cells, const T* x, const T* h0, const T* c0,
                  const T* kernel, const T* recurrent_kernel, const T* bias, const uint8_t* mask,
                  const LstmShape& s) {
  if (s.N == 0 || s.U == 0) return;
  forward<T>({y, h_n, c_n, gates, cells, x, h0, c0, kernel, recurrent_kernel, bias, mask}, s,
             plan(s));
}

template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dweights, T* dbias, T* gates, const T* cells,
                   const T* y, const T* x, const T* h0, const T* c0, const T* kernel,
                   const T* recurrent_kernel, const T* dy, const T* dh_n, const T* dc_n,
                   const uint8_t* mask, const LstmShape& s) {
  if (s.N == 0 || s.U == 0) return;
  backward<T>({dx, dh0, dc0, dweights, dbias, gates, cells, y, x, h0, c0, kernel, recurrent_kernel,
               dy, dh_n, dc_n, mask},
              s, plan(s));
}

// ---------------------------------------------------------------- cell
namespace {

// Runs f(units) on every thread of a team splitting the hidden units.
template <typename T, typename F>
void for_unit_slices(const LstmShape& s, F&& f) {
  [[maybe_unused]] const int P = lstm_num_threads(s);  // used by the pragma only
#pragma omp parallel num_threads(P)
  f(column_slice<T>(s.U, team_size(), thread_index()));
}

using UnitRange = ColumnSlice;

}  // namespace

template <typename T>
void lstm_cell_forward(T* h_next, T* c_next, T* gates, const T* x, const T* h, const T* c,
                       const T* kernel, const T* recurrent_kernel, const T* bias,
                       const LstmShape& s) {
  const int64_t N = s.N, I = s.I, U = s.U, G = 4 * U;
  if (N == 0 || U == 0) return;
  for (int64_t n = 0; n < N; ++n) std::copy(bias, bias + G, gates + n * G);
  gemm_accumulate<T>({gates, G, false}, {x, I, false}, {kernel, G, false}, N, G, I);
  if (h) {
    gemm_accumulate<T>({gates, G, false}, {h, U, false}, {recurrent_kernel, G, false}, N, G, U);
  }
  for_unit_slices<T>(s, [&](UnitRange units) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t at = n * U + units.begin;
      gates_forward(gates + n * G + units.begin, U, c ? c + at : nullptr, c_next + at, h_next + at,
                    units.size());
    }
  });
}

template <typename T>
void lstm_cell_backward(T* dx, T* dh, T* dc, T* dweights, T* dbias, T* gates, const T* c_next,
                        const T* x, const T* h, const T* c, const T* kernel,
                        const T* recurrent_kernel, const T* dh_next, const T* dc_next,
                        const LstmShape& s) {
  const int64_t N = s.N, I = s.I, U = s.U, G = 4 * U;
  if (N == 0 || U == 0) return;
  WorkspaceLayout layout;
  const size_t zero_off = layout.add<T>(U);
  const size_t xh_off = layout.add<T>(checked_mul(N, I + U, "lstm_cell_backward"));
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());
  T* zeros = ws.at<T>(zero_off);
  T* xh = ws.at<T>(xh_off);
  std::fill(zeros, zeros + U, T(0));
  gather_inputs(xh, x, static_cast<const T*>(nullptr), h, 1, I, U, 0, N);
  if (dc_next) {
    for (int64_t k = 0; k < N * U; ++k) dc[k] += dc_next[k];
  }
  for_unit_slices<T>(s, [&](UnitRange units) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t at = n * U + units.begin;
      gates_backward(gates + n * G + units.begin, dc + at, dbias + units.begin,
                     dh_next ? dh_next + at : zeros + units.begin, c_next + at,
                     c ? c + at : nullptr, U, units.size());
    }
  });
  gemm_accumulate<T>({dh, U, false}, {gates, G, false}, {recurrent_kernel, G, true}, N, U, G);
  gemm_accumulate<T>({dx, I, false}, {gates, G, false}, {kernel, G, true}, N, I, G);
  weight_gradient(dweights, G, xh, I + U, gates, G, N, I + U, G);
}

#define DLCORE_INSTANTIATE_LSTM(T)                                                                 \
  template void lstm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                const T*, const T*, const uint8_t*, const LstmShape&);             \
  template void lstm_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                 const T*, const T*, const T*, const T*, const T*, const T*,       \
                                 const uint8_t*, const LstmShape&);                                \
  template void lstm_cell_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                     const T*, const LstmShape&);                                  \
  template void lstm_cell_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,        \
                                      const T*, const T*, const T*, const T*, const T*,            \
                                      const LstmShape&);
DLCORE_INSTANTIATE_LSTM(float)
DLCORE_INSTANTIATE_LSTM(double)
#undef DLCORE_INSTANTIATE_LSTM

}  // namespace dlcore
