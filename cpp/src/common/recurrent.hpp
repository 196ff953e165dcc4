// What the recurrent families (lstm.cpp, gru.cpp, simple_rnn.cpp) share, private to the
// kernel sources: how the threads share a sequence, the steps a mask skips, where a
// step's previous state lives, the bias gradient's partial sums, and the weight
// operands packed for a team (see packed_panels.hpp).
//
// A family's forward and backward are each one parallel region over the whole sequence,
// written once for both ways of sharing it (Share says which rows and units a thread
// owns): every step a product against the packed recurrent weights for the thread's
// rows and units, then a pass over the gates of the same rows and units.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dlcore/checks.hpp"
#include "dlcore/gemm.hpp"
#include "dlcore/parallel.hpp"
#include "packed_panels.hpp"
#include "simd.hpp"
#include "workspace.hpp"

namespace dlcore {
namespace {

// ---------------------------------------------------------------- shapes
// "4U" for an LSTM's 4 gate groups, "U" for one.
inline std::string units_times(int64_t gates) {
  return gates == 1 ? std::string("U") : std::to_string(gates) + "U";
}

// kernel (I, gU) and recurrent_kernel (U, gU) for g = `gates` gate groups of U units.
inline void check_recurrent_weights(const char* fn, int64_t I, int64_t U, int64_t gates,
                                    const std::vector<int64_t>& kernel,
                                    const std::vector<int64_t>& recurrent_kernel) {
  const std::string gU = units_times(gates);
  if (recurrent_kernel[1] != gates * recurrent_kernel[0]) {
    fail(fn, ": argument 'recurrent_kernel' has shape ", shape_str(recurrent_kernel),
         "; expected (U, ", gU, ") for U hidden units, i.e. (", recurrent_kernel[0], ", ",
         gates * recurrent_kernel[0], ")");
  }
  if (kernel[0] != I || kernel[1] != gates * U) {
    fail(fn, ": argument 'kernel' has shape ", shape_str(kernel), "; expected (I, ", gU, ") = (", I,
         ", ", gates * U, ") for I=", I, " input features and U=", U, " units");
  }
}

// A state (N, U), or an empty shape (not given).
inline void check_state(const char* fn, const char* name, const std::vector<int64_t>& got,
                        int64_t N, int64_t U) {
  if (!got.empty() && (got[0] != N || got[1] != U)) {
    fail(fn, ": argument '", name, "' has shape ", shape_str(got), "; expected (N, U) = (", N, ", ",
         U, ") for batch N=", N, " and U=", U, " units");
  }
}

// A mask (N, T), or an empty shape (every step runs).
inline void check_mask(const char* fn, const std::vector<int64_t>& got, int64_t N, int64_t T) {
  if (!got.empty() && (got.size() != 2 || got[0] != N || got[1] != T)) {
    fail(fn, ": argument 'mask' has shape ", shape_str(got), "; expected (N, T) = (", N, ", ", T,
         "), a flag per sequence and step of x");
  }
}

// T >= 1.
inline void check_steps(const char* fn, const std::vector<int64_t>& x, int64_t T) {
  if (T == 0) {
    fail(fn, ": argument 'x' has shape ", shape_str(x),
         ", a sequence of length T=0; expected T >= 1 steps");
  }
}

// An incoming gradient `name` of the `expected` shape, its forward output's.
inline void check_gradient_shape(const char* fn, const char* name, const std::vector<int64_t>& got,
                                 const std::vector<int64_t>& expected) {
  if (got != expected) {
    fail(fn, ": argument '", name, "' has shape ", shape_str(got), "; expected ",
         shape_str(expected), ", the shape of the forward output it is the gradient of");
  }
}

// ---------------------------------------------------------------- plan
// How a sequence is shared between threads; both ways are one parallel region for the
// whole sequence. By units: every thread owns a slice of the hidden units (and the gate
// columns of each) for all sequences of the batch, and steps meet at a barrier, because
// every unit's h_t feeds every unit's next step; this is how a small batch (batch 1: a
// matrix-vector product per step) gets split. By batch: every thread owns whole
// sequences and needs nothing from the others between steps; each then streams all the
// packed weights every step.
struct Plan {
  int threads;
  bool by_batch;
};

// For N sequences of T steps, I inputs, U units and `gates` gate groups (LSTM 4, GRU 3,
// SimpleRNN 1). Measured fwd+bwd on 2 cores with the LSTM: by batch, 2 threads beat 1
// by 1.1-2.5x on every shape tried down to 120K multiply-adds in all (batch 8-64,
// U=8-256), and beat the split by units by 8-39% from 4 sequences per thread up; with 2
// per thread (batch 4, U=256) the split by units was 12% faster. By units, with three
// or more panels of 16 units, 2 threads beat 1 from 16K multiply-adds per step
// (e.g. batch 1, U=64); with two panels, one per thread, nothing below 128K. The
// GRU and the SimpleRNN are cut at the same sizes of work (see their benchmarks).
inline Plan recurrent_plan(int64_t N, int64_t T, int64_t I, int64_t U, int64_t gates) {
  constexpr int64_t kSequencesPerThread = 4;
  const int threads = get_num_threads();
  const int64_t work = N * T * gates * U * (I + U);
  if (threads > 1 && N >= 2 * kSequencesPerThread && work >= (64 << 10)) {
    return {int(std::min<int64_t>(threads, N / kSequencesPerThread)), true};
  }
  const int64_t panels = panels_for<float>(U);
  const int64_t step_work = N * gates * U * U;
  const int64_t min_work = panels >= 3 ? 16 << 10 : 128 << 10;
  if (panels < 2 || step_work < min_work) return {1, false};
  return {int(std::min<int64_t>(threads, panels)), false};
}

// ---------------------------------------------------------------- a thread's share
// The sequences [n0, n1) and the units [j0, j1) of every gate group a thread owns: a
// slice of the sequences and every unit by batch, every sequence and a slice of the
// units (whole panels, column_slice) by units.
struct Share {
  int64_t n0, n1, j0, j1;
  bool by_batch;
  int64_t units() const { return j1 - j0; }
};

template <typename T>
Share share_of(bool by_batch, int64_t N, int64_t U, int team, int p) {
  if (by_batch) return {N * p / team, N * (p + 1) / team, 0, U, true};
  const ColumnSlice units = column_slice<T>(U, team, p);
  return {0, N, units.begin, units.end, false};
}

// Between the phases of a step split by units: every unit written before any thread
// reads the row. Threads owning whole sequences need nothing from each other.
inline void step_barrier(const Share& s) {
  if (!s.by_batch) {
#pragma omp barrier
  }
}

// ---------------------------------------------------------------- packed weights
// A weight operand as a thread multiplies with it: its packed panels and their layout.
template <typename T>
struct Packed {
  const T* data;
  Panels<T> panels;
};

// Packs b(k, col) = b[k * ldk + col * ldn] over the columns of `whole` (all of a
// group's columns: col0 0, width U) that the thread's products write: its own units
// of every group when the team splits units (packed by the thread alone, at its own
// place in `buffer`, packed_bound() values), every column when it splits the batch
// (each thread packs a share of the panels). A barrier comes before any use.
template <typename T>
Packed<T> pack_share(T* buffer, const T* b, int64_t ldk, int64_t ldn, const Panels<T>& whole,
                     const Share& s, int team, int p) {
  if (s.by_batch) {
    pack_panels(buffer, b, ldk, ldn, whole, whole.count() * p / team,
                whole.count() * (p + 1) / team);
    return {buffer, whole};
  }
  const Panels<T> own{whole.K, whole.groups, whole.group_stride, s.j0, s.units()};
  T* mine = buffer + packed_offset<T>(whole.K, whole.groups, whole.width, team, p);
  pack_panels(mine, b, ldk, ldn, own);
  return {mine, own};
}

// The packed size pack_share needs for any share of a team of at most P.
template <typename T>
int64_t share_bound(const char* fn, const Panels<T>& whole, int P) {
  return packed_bound<T>(fn, whole.K, whole.groups, whole.width, P);
}

// Every column of `whole`, packed by the team together (each thread a share of the
// panels): an operand every thread needs whole, as kernel^T for dx. A barrier comes
// before any use.
template <typename T>
Packed<T> pack_whole(T* buffer, const T* b, int64_t ldk, int64_t ldn, const Panels<T>& whole,
                     int team, int p) {
  pack_panels(buffer, b, ldk, ldn, whole, whole.count() * p / team, whole.count() * (p + 1) / team);
  return {buffer, whole};
}

// ---------------------------------------------------------------- gate passes
// f(lanes) for every packet of a row of L units: whole packets, then the last few
// through a zero-padded one (simd::FullPacket, PartialPacket), so that every unit goes
// through the same vector arithmetic and a unit's result does not depend on where a
// thread's slice of the units begins or ends.
template <typename T, typename F>
EIGEN_STRONG_INLINE void for_each_packet(int64_t L, F&& f) {
  int64_t j = 0;
  for (; j + simd::kLanes<T> <= L; j += simd::kLanes<T>) f(simd::FullPacket<T>{j});
  if (j < L) f(simd::PartialPacket<T>{j, L - j});
}

// A packet of a row that may be null (zeros): an initial state that was not given.
template <typename T, typename Lanes>
EIGEN_STRONG_INLINE simd::Packet<T> load_or_zero(Lanes at, const T* row) {
  return row ? at.load(row) : simd::zero<T>();
}

// row += v, one packet.
template <typename T, typename Lanes>
EIGEN_STRONG_INLINE void add_to(Lanes at, T* row, const simd::Packet<T>& v) {
  at.store(row, Eigen::internal::padd(at.load(row), v));
}

// ---------------------------------------------------------------- masks and states
// Which steps run: mask (N, T), nonzero where a step runs; null runs every step. A
// masked step carries the state through (its output is the state of the step before)
// and its gates get no gradient.
struct StepMask {
  const uint8_t* mask;
  int64_t T;

  bool live(int64_t n, int64_t t) const { return !mask || mask[n * T + t]; }

  // The rows [first, last) of [n0, n1) from the first to the last sequence whose step t
  // runs (empty when none does): the rows the step's products cover. A sequence in
  // between that is masked is computed and its result dropped.
  std::pair<int64_t, int64_t> live_rows(int64_t t, int64_t n0, int64_t n1) const {
    if (!mask) return {n0, n1};
    while (n0 < n1 && !mask[n0 * T + t]) ++n0;
    while (n1 > n0 && !mask[(n1 - 1) * T + t]) --n1;
    return {n0, n1};
  }
};

// The state of sequence n before step t, from unit j0 on, in a buffer of every step's
// states (N, T, U) (y, or an LSTM's cells): the step before's, the initial state's at
// t = 0, null (zeros) when there is none.
template <typename T>
const T* state_before(const T* states, const T* initial, int64_t n, int64_t t, int64_t TT,
                      int64_t U, int64_t j0) {
  if (t > 0) return states + (n * TT + t - 1) * U + j0;
  return initial ? initial + n * U + j0 : nullptr;
}

// The states before step t of the sequences from n on, as the left operand of a
// product: rows `ld` apart; data null (zeros) at t = 0 without an initial state.
template <typename T>
struct StateRows {
  const T* data;
  int64_t ld;
};

template <typename T>
StateRows<T> states_before(const T* states, const T* initial, int64_t n, int64_t t, int64_t TT,
                           int64_t U) {
  if (t > 0) return {states + (n * TT + t - 1) * U, TT * U};
  return {initial ? initial + n * U : nullptr, U};
}

// L values of a masked step's state: the state before (zeros when null) carried on.
template <typename T>
void carry_state(T* out, const T* before, int64_t L) {
  if (before) {
    std::copy(before, before + L, out);
  } else {
    std::fill(out, out + L, T(0));
  }
}

// The last states of the thread's sequences and units: h_n (N, U) from y (N, T, U).
template <typename T>
void copy_last_states(T* last, const T* states, const Share& s, int64_t TT, int64_t U) {
  for (int64_t n = s.n0; n < s.n1; ++n) {
    const T* src = states + (n * TT + TT - 1) * U;
    std::copy(src + s.j0, src + s.j1, last + n * U + s.j0);
  }
}

// ---------------------------------------------------------------- gradients
// dL/dh of the last step for the thread's sequences and units: dy's last step plus dh_n
// (each null means zeros).
template <typename T>
void last_step_gradient(T* dh, const T* dy, const T* dh_n, const Share& s, int64_t TT, int64_t U) {
  for (int64_t n = s.n0; n < s.n1; ++n) {
    for (int64_t j = s.j0; j < s.j1; ++j) {
      const T dy_last = dy ? dy[(n * TT + TT - 1) * U + j] : T(0);
      dh[n * U + j] = dy_last + (dh_n ? dh_n[n * U + j] : T(0));
    }
  }
}

// After a step's gate pass, dL/dh of the step before (L values of a sequence) before
// the recurrent product adds to it: dy of the step before (null: zeros) where the
// step's gates took all of dh (an LSTM's, a SimpleRNN's), plus dh itself where a masked
// step carried the state through (carry_gradient; a GRU's gates add z dh themselves).
template <typename T>
void gradient_before(T* dh, const T* dy_before, int64_t L) {
  for (int64_t j = 0; j < L; ++j) dh[j] = dy_before ? dy_before[j] : T(0);
}

template <typename T>
void carry_gradient(T* dh, const T* dy_before, int64_t L) {
  if (!dy_before) return;
  for (int64_t j = 0; j < L; ++j) dh[j] += dy_before[j];
}

// dy of sequence n at step t - 1 from unit j0 (null at t = 0 or without dy).
template <typename T>
const T* dy_before(const T* dy, int64_t n, int64_t t, int64_t TT, int64_t U, int64_t j0) {
  return dy && t > 0 ? dy + (n * TT + t - 1) * U + j0 : nullptr;
}

// Rows [r0, r1) of xh (N*T, I+U), row n*T+t = [x_t, h_{t-1}] of sequence n with
// h_{-1} = h0 (zeros when null): the left operand of both weight gradients at once.
// I = 0 gathers the previous states alone.
template <typename T>
void gather_inputs(T* xh, const T* x, const T* y, const T* h0, int64_t TT, int64_t I, int64_t U,
                   int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    T* row = xh + r * (I + U);
    std::copy(x + r * I, x + (r + 1) * I, row);
    carry_state(row + I, state_before(y, h0, r / TT, r % TT, TT, U, 0), U);
  }
}

// The bias gradient's partial sums, B values: a thread splitting the units adds its
// columns straight into dbias; threads splitting the batch each into a zeroed row of
// their own, which add_into() sums into dbias in thread order (after a barrier), so
// the result does not depend on timing.
template <typename T>
struct BiasSums {
  T* rows;  // one per thread, `stride` apart: bytes() of the workspace
  int64_t B;

  static int64_t stride(int64_t B) { return (B + 15) / 16 * 16; }  // 64-byte aligned
  static int64_t size(int64_t B, int P) { return stride(B) * P; }

  T* of(T* dbias, const Share& s, int p) const {
    if (!s.by_batch) return dbias;
    T* own = rows + p * stride(B);
    std::fill(own, own + B, T(0));
    return own;
  }

  void add_into(T* dbias, const Share& s, int team, int p) const {
    if (!s.by_batch) return;
    for (int64_t c = B * p / team; c < B * (p + 1) / team; ++c) {
      for (int q = 0; q < team; ++q) dbias[c] += rows[q * stride(B) + c];
    }
  }
};

// d (K, G) += a^T @ dz over `rows` rows: a weight gradient over all steps at once, on
// Eigen's threads. a is (rows, K) with rows lda apart, dz (rows, G) ldz apart.
template <typename T>
void weight_gradient(T* d, int64_t ldd, const T* a, int64_t lda, const T* dz, int64_t ldz,
                     int64_t rows, int64_t K, int64_t G) {
  gemm_accumulate<T>({d, ldd, false}, {a, lda, true}, {dz, ldz, false}, K, G, rows);
}

}  // namespace
}  // namespace dlcore
