#include "dlcore/lstm.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "common/packed_panels.hpp"
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

// ---------------------------------------------------------------- threads
// Thread p of P owns the hidden units column_slice<T>(U, P, p) and with them the four
// gate columns of each.
using UnitRange = ColumnSlice;

// The scratch of an LSTM call, kept by the calling thread for its next call.
struct LstmScratch {};

// Rows [r0, r1) of xh (N*T, I+U), row n*T+t = [x_t, h_{t-1}] of sequence n with h_{-1} =
// h0 (zeros when null): the left operand of both weight gradients at once.
template <typename T>
void gather_inputs(T* xh, const T* x, const T* y, const T* h0, int64_t TT, int64_t I, int64_t U,
                   int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    T* row = xh + r * (I + U);
    std::copy(x + r * I, x + (r + 1) * I, row);
    const T* h_prev = r % TT ? y + (r - 1) * U : (h0 ? h0 + r / TT * U : nullptr);
    if (h_prev) {
      std::copy(h_prev, h_prev + U, row + I);
    } else {
      std::fill(row + I, row + I + U, T(0));
    }
  }
}

// c_{t-1} for row n*T+t of the cells (N*T, U) from unit j0 on: the cell of the step
// before, c0 at t = 0, null (zeros) when c0 is.
template <typename T>
const T* cell_before(const T* cells, const T* c0, int64_t row, int64_t t, int64_t n, int64_t U,
                     int64_t j0) {
  if (t > 0) return cells + (row - 1) * U + j0;
  return c0 ? c0 + n * U + j0 : nullptr;
}

// dL/dh and dL/dc of the last step for the sequences [n0, n1) and units [j0, j1): dy's
// last step plus dh_n, and dc_n; each of them null means zeros.
template <typename T>
void last_step_gradients(T* dh, T* dc, const T* dy, const T* dh_n, const T* dc_n, int64_t n0,
                         int64_t n1, int64_t TT, int64_t U, int64_t j0, int64_t j1) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t j = j0; j < j1; ++j) {
      const T dy_last = dy ? dy[(n * TT + TT - 1) * U + j] : T(0);
      dh[n * U + j] = dy_last + (dh_n ? dh_n[n * U + j] : T(0));
      dc[n * U + j] = dc_n ? dc_n[n * U + j] : T(0);
    }
  }
}

// dweights (I+U, 4U) += xh^T @ dz: dkernel and drecurrent_kernel from one product that
// reads dz once, on Eigen's threads.
template <typename T>
void weight_gradients(T* dweights, const T* xh, const T* dz, int64_t rows, int64_t I, int64_t U) {
  const int64_t G = 4 * U;
  gemm_accumulate<T>({dweights, G, false}, {xh, I + U, true}, {dz, G, false}, I + U, G, rows);
}

}  // namespace

// ---------------------------------------------------------------- shapes
namespace {

void check_weights(const char* fn, int64_t I, int64_t U, const std::vector<int64_t>& kernel,
                   const std::vector<int64_t>& recurrent_kernel, const std::vector<int64_t>& bias) {
  if (recurrent_kernel[1] != 4 * recurrent_kernel[0]) {
    fail(fn, ": argument 'recurrent_kernel' has shape ", shape_str(recurrent_kernel),
         "; expected (U, 4U) for U hidden units, i.e. (", recurrent_kernel[0], ", ",
         4 * recurrent_kernel[0], ")");
  }
  if (kernel[0] != I || kernel[1] != 4 * U) {
    fail(fn, ": argument 'kernel' has shape ", shape_str(kernel), "; expected (I, 4U) = (", I, ", ",
         4 * U, ") for I=", I, " input features and U=", U, " units");
  }
  if (bias[0] != 4 * U) {
    fail(fn, ": argument 'bias' has shape ", shape_str(bias), "; expected (4U,) = (", 4 * U,
         ",) for U=", U, " units");
  }
}

void check_state(const char* fn, const char* name, const std::vector<int64_t>& got, int64_t N,
                 int64_t U) {
  if (!got.empty() && (got[0] != N || got[1] != U)) {
    fail(fn, ": argument '", name, "' has shape ", shape_str(got), "; expected (N, U) = (", N, ", ",
         U, ") for batch N=", N, " and U=", U, " units");
  }
}

}  // namespace

LstmShape LstmShape::from_operands(const char* fn, bool cell, const std::vector<int64_t>& x,
                                   const std::vector<int64_t>& h0, const std::vector<int64_t>& c0,
                                   const std::vector<int64_t>& kernel,
                                   const std::vector<int64_t>& recurrent_kernel,
                                   const std::vector<int64_t>& bias) {
  LstmShape s{x[0], cell ? 1 : x[1], x.back(), recurrent_kernel[0]};
  if (s.T == 0) {
    fail(fn, ": argument 'x' has shape ", shape_str(x),
         ", a sequence of length T=0; expected T >= 1 steps");
  }
  check_weights(fn, s.I, s.U, kernel, recurrent_kernel, bias);
  check_state(fn, cell ? "h" : "h0", h0, s.N, s.U);
  check_state(fn, cell ? "c" : "c0", c0, s.N, s.U);
  checked_mul(checked_mul(s.N, s.T, fn), 4 * s.U, fn);  // the saved gates
  return s;
}

void LstmShape::check_gradient(const char* fn, const char* name, const std::vector<int64_t>& got,
                               const std::vector<int64_t>& expected) {
  if (got != expected) {
    fail(fn, ": argument '", name, "' has shape ", shape_str(got), "; expected ",
         shape_str(expected), ", the shape of the forward output it is the gradient of");
  }
}

namespace {

// How a sequence is shared between threads; see forward_by_units below.
struct Plan {
  int threads;
  bool by_batch;
};

// Measured fwd+bwd on 2 cores. By batch, 2 threads beat 1 by 1.1-2.5x on every shape
// tried down to 120K multiply-adds in all (batch 8-64, U=8-256), and beat the split by
// units by 8-39% from 4 sequences per thread up; with 2 per thread (batch 4, U=256) the
// split by units was 12% faster. By units, with three or more panels of 16 units, 2
// threads gained 1.13-1.48x from 16K multiply-adds per step up (batch 1-4, U=48-100);
// with two panels, one per thread, nothing below 128K.
Plan plan(const LstmShape& s) {
  constexpr int64_t kSequencesPerThread = 4;
  const int threads = get_num_threads();
  const int64_t work = s.N * s.T * 4 * s.U * (s.I + s.U);
  if (threads > 1 && s.N >= 2 * kSequencesPerThread && work >= (64 << 10)) {
    return {int(std::min<int64_t>(threads, s.N / kSequencesPerThread)), true};
  }
  const int64_t panels = panels_for<float>(s.U);
  const int64_t step_work = s.N * 4 * s.U * s.U;
  const int64_t min_work = panels >= 3 ? 16 << 10 : 128 << 10;
  if (panels < 2 || step_work < min_work) return {1, false};
  return {int(std::min<int64_t>(threads, panels)), false};
}

}  // namespace

int lstm_num_threads(const LstmShape& s) { return plan(s).threads; }

// ---------------------------------------------------------------- sequence
namespace {

// The operands of lstm_forward and lstm_backward, handed whole to a strategy.
template <typename T>
struct ForwardBuffers {
  T *y, *h_n, *c_n, *gates, *cells;
  const T *x, *h0, *c0, *kernel, *recurrent_kernel, *bias;
};

template <typename T>
struct BackwardBuffers {
  T *dx, *dh0, *dc0, *dweights, *dbias, *gates;
  const T *cells, *y, *x, *h0, *c0, *kernel, *recurrent_kernel, *dy, *dh_n, *dc_n;
};

// Threads share a sequence in one of two ways, each one parallel region for the whole
// sequence. By units: every thread owns a slice of the hidden units for all sequences
// of the batch, and steps meet at a barrier, because every unit's h_t feeds every
// unit's next step; this is how a small batch (batch 1: a matrix-vector product per
// step) gets split. By batch: every thread owns whole sequences and needs nothing from
// the others between steps; each then streams all the packed weights every step.
template <typename T>
void forward_by_units(const ForwardBuffers<T>& b, const LstmShape& s, int P) {
  auto [y, h_n, c_n, gates, cells, x, h0, c0, kernel, recurrent_kernel, bias] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 4 * U;
  WorkspaceLayout layout;
  const size_t w_off = layout.add<T>(packed_bound<T>("lstm", I, 4, U, P));
  const size_t r_off = layout.add<T>(packed_bound<T>("lstm", U, 4, U, P));
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());

#pragma omp parallel num_threads(P)
  {
    const int team = team_size(), p = thread_index();
    const UnitRange units = column_slice<T>(U, team, p);
    const int64_t j0 = units.begin, L = units.size();
    const Panels<T> wl{I, 4, U, j0, L}, rl{U, 4, U, j0, L};
    T* wpack = ws.at<T>(w_off) + packed_offset<T>(I, 4, U, team, p);
    T* rpack = ws.at<T>(r_off) + packed_offset<T>(U, 4, U, team, p);
    pack_panels(wpack, kernel, G, 1, wl);
    pack_panels(rpack, recurrent_kernel, G, 1, rl);
    // Every step's input projection in one product: this thread's gate columns of
    // x (N*T, I) @ kernel + bias. Steps then only add h_{t-1} @ recurrent_kernel.
    panel_product(gates, G, bias, 0, x, I, N * TT, wpack, wl);
    for (int64_t t = 0; t < TT; ++t) {
      if (t > 0) {
#pragma omp barrier  // every unit of h_{t-1} is written
      }
      T* zt = gates + t * G;
      const T* h_prev = t > 0 ? y + (t - 1) * U : h0;
      if (h_prev && L > 0) {
        panel_product(zt, TT * G, zt, TT * G, h_prev, t > 0 ? TT * U : U, N, rpack, rl);
      }
      for (int64_t n = 0; n < N; ++n) {
        const int64_t row = n * TT + t;
        const T* c_prev = cell_before(cells, c0, row, t, n, U, j0);
        gates_forward(zt + n * TT * G + j0, U, c_prev, cells + row * U + j0, y + row * U + j0, L);
      }
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t last = (n * TT + TT - 1) * U + j0;
      std::copy(y + last, y + last + L, h_n + n * U + j0);
      std::copy(cells + last, cells + last + L, c_n + n * U + j0);
    }
  }
}

template <typename T>
void forward_by_batch(const ForwardBuffers<T>& b, const LstmShape& s, [[maybe_unused]] int P) {
  auto [y, h_n, c_n, gates, cells, x, h0, c0, kernel, recurrent_kernel, bias] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 4 * U;
  const Panels<T> wl{I, 4, U, 0, U}, rl{U, 4, U, 0, U};  // every gate column
  WorkspaceLayout layout;
  const size_t w_off = layout.add<T>(wl.size()), r_off = layout.add<T>(rl.size());
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());
  T* wpack = ws.at<T>(w_off);
  T* rpack = ws.at<T>(r_off);

#pragma omp parallel num_threads(P)
  {
    const int team = team_size(), p = thread_index();
    pack_panels(wpack, kernel, G, 1, wl, wl.count() * p / team, wl.count() * (p + 1) / team);
    pack_panels(rpack, recurrent_kernel, G, 1, rl, rl.count() * p / team,
                rl.count() * (p + 1) / team);
#pragma omp barrier  // every panel is packed
    const int64_t n0 = N * p / team, n1 = N * (p + 1) / team, rows = n1 - n0;
    // This thread's sequences are rows n0*T.. of x and of the gates: their input
    // projection is one product, their steps need no other thread.
    panel_product(gates + n0 * TT * G, G, bias, 0, x + n0 * TT * I, I, rows * TT, wpack, wl);
    for (int64_t t = 0; t < TT && rows > 0; ++t) {
      T* zt = gates + (n0 * TT + t) * G;
      const T* h_prev = t > 0 ? y + (n0 * TT + t - 1) * U : (h0 ? h0 + n0 * U : nullptr);
      if (h_prev) {
        panel_product(zt, TT * G, zt, TT * G, h_prev, t > 0 ? TT * U : U, rows, rpack, rl);
      }
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t row = n * TT + t;
        gates_forward(gates + row * G, U, cell_before(cells, c0, row, t, n, U, 0), cells + row * U,
                      y + row * U, U);
      }
    }
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t last = (n * TT + TT - 1) * U;
      std::copy(y + last, y + last + U, h_n + n * U);
      std::copy(cells + last, cells + last + U, c_n + n * U);
    }
  }
}

template <typename T>
void backward_by_units(const BackwardBuffers<T>& b, const LstmShape& s, int P) {
  auto [dx, dh0, dc0, dweights, dbias, gates, cells, y, x, h0, c0, kernel, recurrent_kernel, dy,
        dh_n, dc_n] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 4 * U, rows = N * TT;
  WorkspaceLayout layout;
  const size_t r_off = layout.add<T>(packed_bound<T>("lstm", G, 1, U, P));
  const size_t dh_off = layout.add<T>(N * U), dc_off = layout.add<T>(N * U);
  const size_t xh_off = layout.add<T>(checked_mul(rows, I + U, "lstm_backward"));
  const Panels<T> wl{G, 1, 0, 0, I};  // kernel^T (b(k, i) = kernel[i, k]) for dx
  const size_t w_off = layout.add<T>(wl.size());
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());
  T* dh = ws.at<T>(dh_off);
  T* dc = ws.at<T>(dc_off);
  T* xh = ws.at<T>(xh_off);

#pragma omp parallel num_threads(P)
  {
    const int team = team_size(), p = thread_index();
    const UnitRange units = column_slice<T>(U, team, p);
    const int64_t j0 = units.begin, j1 = units.end, L = units.size();
    // dh = dz @ recurrent_kernel^T: this thread's dh columns are rows j0..j1 of the
    // recurrent kernel, packed transposed (b(k, j) = recurrent_kernel[j, k]).
    const Panels<T> rl{G, 1, 0, j0, L};
    T* rpack = ws.at<T>(r_off) + packed_offset<T>(G, 1, U, team, p);
    pack_panels(rpack, recurrent_kernel, 1, G, rl);
    // Every thread packs its share of kernel^T; the barriers of the steps come before
    // anyone reads it.
    T* wpack = ws.at<T>(w_off);
    pack_panels(wpack, kernel, 1, G, wl, wl.count() * p / team, wl.count() * (p + 1) / team);
    const int64_t r0 = rows * p / team, r1 = rows * (p + 1) / team;
    gather_inputs(xh, x, y, h0, TT, I, U, r0, r1);
    last_step_gradients(dh, dc, dy, dh_n, dc_n, 0, N, TT, U, j0, j1);
    for (int64_t t = TT - 1; t >= 0; --t) {
      T* zt = gates + t * G;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t row = n * TT + t;
        const T* c_prev = cell_before(cells, c0, row, t, n, U, j0);
        gates_backward(zt + n * TT * G + j0, dc + n * U + j0, dbias + j0, dh + n * U + j0,
                       cells + row * U + j0, c_prev, U, L);
      }
#pragma omp barrier  // every unit's dz_t is written
      if (L == 0) continue;
      if (t > 0) {
        panel_product(dh, U, dy ? dy + (t - 1) * U : nullptr, TT * U, zt, TT * G, N, rpack, rl);
      } else {
        panel_product(dh0, U, dh0, U, zt, TT * G, N, rpack, rl);
      }
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = j0; j < j1; ++j) dc0[n * U + j] += dc[n * U + j];
    // dx = dz @ kernel^T over all steps at once (every dz is written: the last step's
    // barrier is behind us), this thread's rows.
    panel_product(dx + r0 * I, I, dx + r0 * I, I, gates + r0 * G, G, r1 - r0, wpack, wl);
  }
  // The weight gradients over all steps at once; dz is in `gates`.
  weight_gradients(dweights, xh, gates, rows, I, U);
}

template <typename T>
void backward_by_batch(const BackwardBuffers<T>& b, const LstmShape& s, int P) {
  auto [dx, dh0, dc0, dweights, dbias, gates, cells, y, x, h0, c0, kernel, recurrent_kernel, dy,
        dh_n, dc_n] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 4 * U;
  // dh = dz @ recurrent_kernel^T and dx = dz @ kernel^T, packed transposed.
  const Panels<T> rl{G, 1, 0, 0, U}, wl{G, 1, 0, 0, I};
  WorkspaceLayout layout;
  const size_t r_off = layout.add<T>(rl.size()), w_off = layout.add<T>(wl.size());
  const size_t dh_off = layout.add<T>(N * U), dc_off = layout.add<T>(N * U);
  const size_t xh_off = layout.add<T>(checked_mul(N * TT, I + U, "lstm_backward"));
  const int64_t own = (G + 15) / 16 * 16;  // every thread's dbias, 64-byte aligned
  const size_t bias_off = layout.add<T>(own * P);
  const Workspace ws(kept_buffer<LstmScratch>(), layout.bytes());
  T* rpack = ws.at<T>(r_off);
  T* wpack = ws.at<T>(w_off);
  T* dh = ws.at<T>(dh_off);
  T* dc = ws.at<T>(dc_off);
  T* xh = ws.at<T>(xh_off);

#pragma omp parallel num_threads(P)
  {
    const int team = team_size(), p = thread_index();
    pack_panels(rpack, recurrent_kernel, 1, G, rl, rl.count() * p / team,
                rl.count() * (p + 1) / team);
    pack_panels(wpack, kernel, 1, G, wl, wl.count() * p / team, wl.count() * (p + 1) / team);
    const int64_t n0 = N * p / team, n1 = N * (p + 1) / team, rows = n1 - n0;
    gather_inputs(xh, x, y, h0, TT, I, U, n0 * TT, n1 * TT);
    last_step_gradients(dh, dc, dy, dh_n, dc_n, n0, n1, TT, U, 0, U);
    T* own_dbias = ws.at<T>(bias_off) + p * own;
    std::fill(own_dbias, own_dbias + G, T(0));
#pragma omp barrier  // every panel is packed
    for (int64_t t = TT - 1; t >= 0 && rows > 0; --t) {
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t row = n * TT + t;
        gates_backward(gates + row * G, dc + n * U, own_dbias, dh + n * U, cells + row * U,
                       cell_before(cells, c0, row, t, n, U, 0), U, U);
      }
      const T* dzt = gates + (n0 * TT + t) * G;
      if (t > 0) {
        const T* dy_prev = dy ? dy + (n0 * TT + t - 1) * U : nullptr;
        panel_product(dh + n0 * U, U, dy_prev, TT * U, dzt, TT * G, rows, rpack, rl);
      } else {
        panel_product(dh0 + n0 * U, U, dh0 + n0 * U, U, dzt, TT * G, rows, rpack, rl);
      }
    }
    for (int64_t k = n0 * U; k < n1 * U; ++k) dc0[k] += dc[k];
    T* dx_rows = dx + n0 * TT * I;
    panel_product(dx_rows, I, dx_rows, I, gates + n0 * TT * G, G, rows * TT, wpack, wl);
#pragma omp barrier  // every thread's dbias is summed
    // The threads' sums in thread order, each thread a share of the columns.
    for (int64_t c = G * p / team; c < G * (p + 1) / team; ++c) {
      for (int q = 0; q < team; ++q) dbias[c] += ws.at<T>(bias_off)[q * own + c];
    }
  }
  weight_gradients(dweights, xh, gates, N * TT, I, U);
}

}  // namespace

template <typename T>
void lstm_forward(T* y, T* h_n, T* c_n, T* gates, T* cells, const T* x, const T* h0, const T* c0,
                  const T* kernel, const T* recurrent_kernel, const T* bias, const LstmShape& s) {
  if (s.N == 0 || s.U == 0) return;
  const Plan how = plan(s);
  const ForwardBuffers<T> b{y, h_n, c_n, gates, cells, x, h0, c0, kernel, recurrent_kernel, bias};
  if (how.by_batch) {
    forward_by_batch(b, s, how.threads);
  } else {
    forward_by_units(b, s, how.threads);
  }
}

template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dweights, T* dbias, T* gates, const T* cells,
                   const T* y, const T* x, const T* h0, const T* c0, const T* kernel,
                   const T* recurrent_kernel, const T* dy, const T* dh_n, const T* dc_n,
                   const LstmShape& s) {
  if (s.N == 0 || s.U == 0) return;
  const Plan how = plan(s);
  const BackwardBuffers<T> b{dx, dh0, dc0,    dweights,         dbias, gates, cells, y, x,
                             h0, c0,  kernel, recurrent_kernel, dy,    dh_n,  dc_n};
  if (how.by_batch) {
    backward_by_batch(b, s, how.threads);
  } else {
    backward_by_units(b, s, how.threads);
  }
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
  weight_gradients(dweights, xh, gates, N, I, U);
}

#define DLCORE_INSTANTIATE_LSTM(T)                                                                 \
  template void lstm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                const T*, const T*, const LstmShape&);                             \
  template void lstm_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                 const T*, const T*, const T*, const T*, const T*, const T*,       \
                                 const LstmShape&);                                                \
  template void lstm_cell_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                     const T*, const LstmShape&);                                  \
  template void lstm_cell_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,        \
                                      const T*, const T*, const T*, const T*, const T*,            \
                                      const LstmShape&);
DLCORE_INSTANTIATE_LSTM(float)
DLCORE_INSTANTIATE_LSTM(double)
#undef DLCORE_INSTANTIATE_LSTM

}  // namespace dlcore
