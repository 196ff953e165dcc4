#include "dlcore/gru.hpp"

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
// input projection (3 gate groups) with the bias as each tile's init; each step's
// h_{t-1} @ recurrent_kernel as two products, the z and r columns (2 groups) added to
// the gates and the candidate's columns (1 group) kept apart, where the reset gate
// applies after the product or takes r h_{t-1} before it; the backward's transposed
// products likewise.

// ---------------------------------------------------------------- gates
// A row's gates: g points at the row's z gate of its first unit, r and the candidate n
// follow U and 2U further. h_prev is h_{t-1} (null: zeros).

// Reset after: g holds the pre-activations (x_t kernel + bias, and the z and r columns
// of the recurrent product) and receives the activations z, r, n; hh is the
// candidate's recurrent part; h receives h_t.
template <typename T>
void forward_after_row(T* g, int64_t U, const T* hh, const T* h_prev, T* h, int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P z = simd::sigmoid<T>(at.load(g)), r = simd::sigmoid<T>(at.load(g + U));
    const P n = simd::tanh<T>(ei::pmadd(r, at.load(hh), at.load(g + 2 * U)));
    const P hp = load_or_zero<T>(at, h_prev);
    at.store(g, z);
    at.store(g + U, r);
    at.store(g + 2 * U, n);
    at.store(h, ei::pmadd(z, ei::psub(hp, n), n));  // z h_{t-1} + (1 - z) n
  });
}

// Its backward: g receives the gradients of the input-side pre-activations (da_z, da_r,
// da_n) and hh that of the candidate's recurrent part (r da_n), which the bias sums bx
// (bias[0]) and bh (bias[1]) accumulate; dh holds dL/dh_t and receives the part of
// dL/dh_{t-1} that bypasses the products, z dh + dy_{t-1} (dy_before null: zeros).
template <typename T>
void backward_after_row(T* g, int64_t U, T* hh, T* bx, T* bh, T* dh, const T* dy_before,
                        const T* h_prev, int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P one = ei::pset1<P>(T(1));
    const P z = at.load(g), r = at.load(g + U), n = at.load(g + 2 * U), d = at.load(dh);
    const P hp = load_or_zero<T>(at, h_prev);
    const P da_n = ei::pmul(ei::pmul(d, ei::psub(one, z)), ei::psub(one, ei::pmul(n, n)));
    const P da_z = ei::pmul(ei::pmul(d, ei::psub(hp, n)), ei::pmul(z, ei::psub(one, z)));
    const P da_r = ei::pmul(ei::pmul(da_n, at.load(hh)), ei::pmul(r, ei::psub(one, r)));
    const P dhh = ei::pmul(da_n, r);
    at.store(g, da_z);
    at.store(g + U, da_r);
    at.store(g + 2 * U, da_n);
    at.store(hh, dhh);
    add_to<T>(at, bx, da_z);
    add_to<T>(at, bx + U, da_r);
    add_to<T>(at, bx + 2 * U, da_n);
    add_to<T>(at, bh, da_z);
    add_to<T>(at, bh + U, da_r);
    add_to<T>(at, bh + 2 * U, dhh);
    at.store(dh, ei::pmadd(d, z, load_or_zero<T>(at, dy_before)));
  });
}

// Reset before, the forward's first pass: z and r from their pre-activations, and
// rh = r h_{t-1}, the left operand of the candidate's product.
template <typename T>
void forward_reset_before_row(T* g, int64_t U, const T* h_prev, T* rh, int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P z = simd::sigmoid<T>(at.load(g)), r = simd::sigmoid<T>(at.load(g + U));
    at.store(g, z);
    at.store(g + U, r);
    at.store(rh, ei::pmul(r, load_or_zero<T>(at, h_prev)));
  });
}

// The second pass, after the product added rh @ recurrent_kernel[:, 2U:] to the
// candidate's pre-activation: n and h_t.
template <typename T>
void forward_candidate_before_row(T* g, int64_t U, const T* h_prev, T* h, int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P z = at.load(g), n = simd::tanh<T>(at.load(g + 2 * U));
    at.store(g + 2 * U, n);
    at.store(h, ei::pmadd(z, ei::psub(load_or_zero<T>(at, h_prev), n), n));
  });
}

// The backward's first pass: da_z and da_n into g (r stays for the second pass), and
// dh as in backward_after_row.
template <typename T>
void backward_candidate_before_row(T* g, int64_t U, T* dh, const T* dy_before, const T* h_prev,
                                   int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P one = ei::pset1<P>(T(1));
    const P z = at.load(g), n = at.load(g + 2 * U), d = at.load(dh);
    const P hp = load_or_zero<T>(at, h_prev);
    at.store(g, ei::pmul(ei::pmul(d, ei::psub(hp, n)), ei::pmul(z, ei::psub(one, z))));
    at.store(g + 2 * U, ei::pmul(ei::pmul(d, ei::psub(one, z)), ei::psub(one, ei::pmul(n, n))));
    at.store(dh, ei::pmadd(d, z, load_or_zero<T>(at, dy_before)));
  });
}

// The second pass, after the product drh = da_n @ recurrent_kernel[:, 2U:]^T (the
// gradient of r h_{t-1}): da_r into g, r drh into dh, every gate's gradient into the
// bias sums b.
template <typename T>
void backward_reset_before_row(T* g, int64_t U, const T* drh, T* dh, T* b, const T* h_prev,
                               int64_t L) {
  for_each_packet<T>(L, [&](auto at) {
    using P = Packet<T>;
    const P one = ei::pset1<P>(T(1));
    const P r = at.load(g + U), d = at.load(drh);
    const P da_r =
        ei::pmul(ei::pmul(d, load_or_zero<T>(at, h_prev)), ei::pmul(r, ei::psub(one, r)));
    at.store(g + U, da_r);
    add_to<T>(at, dh, ei::pmul(d, r));
    add_to<T>(at, b, at.load(g));
    add_to<T>(at, b + U, da_r);
    add_to<T>(at, b + 2 * U, at.load(g + 2 * U));
  });
}

// L units of each of the `groups` gate groups of a masked step's row: no gradient.
template <typename T>
void zero_groups(T* g, int64_t U, int groups, int64_t L) {
  for (int k = 0; k < groups; ++k) std::fill(g + k * U, g + k * U + L, T(0));
}

// The scratch of a GRU call, kept by the calling thread for its next call.
struct GruScratch {};

}  // namespace

// ---------------------------------------------------------------- shapes
GruShape GruShape::from_operands(const char* fn, const std::vector<int64_t>& x,
                                 const std::vector<int64_t>& h0, const std::vector<int64_t>& kernel,
                                 const std::vector<int64_t>& recurrent_kernel,
                                 const std::vector<int64_t>& bias, const std::vector<int64_t>& mask,
                                 bool reset_after) {
  GruShape s{x[0], x[1], x[2], recurrent_kernel[0], reset_after};
  check_steps(fn, x, s.T);
  check_recurrent_weights(fn, s.I, s.U, 3, kernel, recurrent_kernel);
  const int64_t G = 3 * s.U;
  if (reset_after && bias != std::vector<int64_t>{2, G}) {
    fail(fn, ": argument 'bias' has shape ", shape_str(bias), "; expected (2, 3U) = (2, ", G,
         ") for U=", s.U, " units with reset_after=True (an input and a recurrent bias)");
  }
  if (!reset_after && bias != std::vector<int64_t>{G}) {
    fail(fn, ": argument 'bias' has shape ", shape_str(bias), "; expected (3U,) = (", G,
         ",) for U=", s.U, " units with reset_after=False");
  }
  check_state(fn, "h0", h0, s.N, s.U);
  check_mask(fn, mask, s.N, s.T);
  checked_mul(checked_mul(s.N, s.T, fn), G, fn);  // the saved gates
  return s;
}

void GruShape::check_gradient(const char* fn, const char* name, const std::vector<int64_t>& got,
                              const std::vector<int64_t>& expected) {
  check_gradient_shape(fn, name, got, expected);
}

// ---------------------------------------------------------------- sequence
namespace {

Plan plan(const GruShape& s) { return recurrent_plan(s.N, s.T, s.I, s.U, 3); }

template <typename T>
struct ForwardBuffers {
  T *y, *h_n, *gates, *recurrent;
  const T *x, *h0, *kernel, *recurrent_kernel, *bias;
  const uint8_t* mask;
};

template <typename T>
struct BackwardBuffers {
  T *dx, *dh0, *dkernel, *drecurrent_kernel, *dbias, *gates, *recurrent;
  const T *y, *x, *h0, *kernel, *recurrent_kernel, *dy, *dh_n;
  const uint8_t* mask;
};

// Both splits (common/recurrent.hpp). Every step: the z and r columns of
// h_{t-1} @ recurrent_kernel added to the thread's gates, then with the reset after the
// candidate's columns (plus bias[1]) into `recurrent` and the gate pass; with the reset
// before, z, r and r h_{t-1}, a barrier, (r h_{t-1}) @ recurrent_kernel[:, 2U:] added
// to the candidate, and its pass.
//
// With no gates and recurrent parts to save (inference), they go to the calling thread's
// kept scratch instead of fresh (N,T,3U) and (N,T,U) arrays that a cache would hold: the
// same arithmetic, so the same bits.
template <typename T>
void forward(const ForwardBuffers<T>& b, const GruShape& s, Plan how) {
  auto [y, h_n, saved_gates, saved_recurrent, x, h0, kernel, recurrent_kernel, bias, mask] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 3 * U;
  const Panels<T> wl{I, 3, U, 0, U}, zrl{U, 2, U, 0, U}, nl{U, 1, 0, 0, U};
  WorkspaceLayout layout;
  const size_t w_off = layout.add<T>(share_bound<T>("gru", wl, how.threads));
  const size_t zr_off = layout.add<T>(share_bound<T>("gru", zrl, how.threads));
  const size_t n_off = layout.add<T>(share_bound<T>("gru", nl, how.threads));
  const size_t bias_off = layout.add<T>(G);
  const bool keep = saved_gates != nullptr;
  const size_t z_off = keep ? 0 : layout.add<T>(checked_mul(N * TT, G, "gru_forward"));
  const size_t r_off = keep ? 0 : layout.add<T>(checked_mul(N * TT, U, "gru_forward"));
  const Workspace ws(kept_buffer<GruScratch>(), layout.bytes());
  T* const gates = keep ? saved_gates : ws.at<T>(z_off);
  T* const recurrent = keep ? saved_recurrent : ws.at<T>(r_off);
  // The projection's bias. With the reset after, z and r only ever see the sum of
  // their input and recurrent biases, so it goes here once; the candidate's recurrent
  // bias stays inside the reset gate.
  T* xbias = ws.at<T>(bias_off);
  std::copy(bias, bias + G, xbias);
  const T* hbias_n = s.reset_after ? bias + G + 2 * U : nullptr;
  if (s.reset_after) {
    for (int64_t k = 0; k < 2 * U; ++k) xbias[k] += bias[G + k];
  }
  const StepMask steps{mask, TT};

#pragma omp parallel num_threads(how.threads)
  {
    const int team = team_size(), p = thread_index();
    const Share sh = share_of<T>(how.by_batch, N, U, team, p);
    const Packed<T> w = pack_share(ws.at<T>(w_off), kernel, G, 1, wl, sh, team, p);
    const Packed<T> zr = pack_share(ws.at<T>(zr_off), recurrent_kernel, G, 1, zrl, sh, team, p);
    const Packed<T> nr =
        pack_share(ws.at<T>(n_off), recurrent_kernel + 2 * U, G, 1, nl, sh, team, p);
    const int64_t n0 = sh.n0, n1 = sh.n1, j0 = sh.j0, L = sh.units();
#pragma omp barrier  // every panel is packed
    panel_product(gates + n0 * TT * G, G, xbias, 0, x + n0 * TT * I, I, (n1 - n0) * TT, w.data,
                  w.panels);
    for (int64_t t = 0; t < TT; ++t) {
      if (t > 0) step_barrier(sh);  // every unit of h_{t-1} is written
      const auto [a, e] = steps.live_rows(t, n0, n1);
      const StateRows<T> h_prev = states_before(y, h0, a, t, TT, U);
      T* gt = gates + t * G;
      T* rt = recurrent + t * U;
      const bool run = e > a && L > 0;
      if (run && h_prev.data) {
        T* ga = gt + a * TT * G;
        panel_product(ga, TT * G, ga, TT * G, h_prev.data, h_prev.ld, e - a, zr.data, zr.panels);
      }
      if (s.reset_after) {
        if (run && h_prev.data) {
          panel_product(rt + a * TT * U, TT * U, hbias_n, 0, h_prev.data, h_prev.ld, e - a, nr.data,
                        nr.panels);
        } else if (run) {
          for (int64_t n = a; n < e; ++n) {
            std::copy(hbias_n + j0, hbias_n + j0 + L, rt + n * TT * U + j0);
          }
        }
        for (int64_t n = n0; n < n1; ++n) {
          const T* hp = state_before(y, h0, n, t, TT, U, j0);
          T* h = y + (n * TT + t) * U + j0;
          if (steps.live(n, t)) {
            forward_after_row(gt + n * TT * G + j0, U, rt + n * TT * U + j0, hp, h, L);
          } else {
            carry_state(h, hp, L);
          }
        }
        continue;
      }
      for (int64_t n = n0; n < n1; ++n) {
        T* rh = rt + n * TT * U + j0;
        if (steps.live(n, t)) {
          forward_reset_before_row(gt + n * TT * G + j0, U, state_before(y, h0, n, t, TT, U, j0),
                                   rh, L);
        } else {
          std::fill(rh, rh + L, T(0));  // read by the products, which drop it
        }
      }
      step_barrier(sh);  // every unit of r h_{t-1} is written
      if (run && h_prev.data) {
        T* na = gt + a * TT * G + 2 * U;
        panel_product(na, TT * G, na, TT * G, rt + a * TT * U, TT * U, e - a, nr.data, nr.panels);
      }
      for (int64_t n = n0; n < n1; ++n) {
        const T* hp = state_before(y, h0, n, t, TT, U, j0);
        T* h = y + (n * TT + t) * U + j0;
        if (steps.live(n, t)) {
          forward_candidate_before_row(gt + n * TT * G + j0, U, hp, h, L);
        } else {
          carry_state(h, hp, L);
        }
      }
    }
    copy_last_states(h_n, y, sh, TT, U);
  }
}

// Every step: the gate pass of the thread's rows and units, then
// dh_{t-1} += [da_z, da_r] @ recurrent_kernel[:, :2U]^T + (candidate) @
// recurrent_kernel[:, 2U:]^T for its rows and units; before that, with the reset before
// the products, drh = da_n @ recurrent_kernel[:, 2U:]^T and a second pass for da_r.
template <typename T>
void backward(const BackwardBuffers<T>& b, const GruShape& s, Plan how) {
  auto [dx, dh0, dkernel, drecurrent_kernel, dbias, gates, recurrent, y, x, h0, kernel,
        recurrent_kernel, dy, dh_n, mask] = b;
  const int64_t N = s.N, TT = s.T, I = s.I, U = s.U, G = 3 * U, rows = N * TT;
  const int64_t B = s.reset_after ? 2 * G : G;  // bias values
  // Transposed packings (b(k, j) = w[j, k]): the thread's dh columns are rows of the
  // recurrent kernel; dx needs every row of the kernel.
  const Panels<T> zrl{2 * U, 1, 0, 0, U}, nl{U, 1, 0, 0, U}, wl{G, 1, 0, 0, I};
  WorkspaceLayout layout;
  const size_t zr_off = layout.add<T>(share_bound<T>("gru", zrl, how.threads));
  const size_t n_off = layout.add<T>(share_bound<T>("gru", nl, how.threads));
  const size_t w_off = layout.add<T>(wl.size());
  const size_t dh_off = layout.add<T>(N * U), drh_off = layout.add<T>(N * U);
  const size_t hp_off = layout.add<T>(checked_mul(rows, U, "gru_backward"));
  const size_t bias_off = layout.add<T>(BiasSums<T>::size(B, how.threads));
  const Workspace ws(kept_buffer<GruScratch>(), layout.bytes());
  T* dh = ws.at<T>(dh_off);
  T* drh = ws.at<T>(drh_off);
  T* hprev = ws.at<T>(hp_off);  // every step's h_{t-1}: the recurrent weights' left operand
  const BiasSums<T> sums{ws.at<T>(bias_off), B};
  const StepMask steps{mask, TT};

#pragma omp parallel num_threads(how.threads)
  {
    const int team = team_size(), p = thread_index();
    const Share sh = share_of<T>(how.by_batch, N, U, team, p);
    const Packed<T> zr = pack_share(ws.at<T>(zr_off), recurrent_kernel, 1, G, zrl, sh, team, p);
    const Packed<T> nr =
        pack_share(ws.at<T>(n_off), recurrent_kernel + 2 * U, 1, G, nl, sh, team, p);
    const Packed<T> w = pack_whole(ws.at<T>(w_off), kernel, 1, G, wl, team, p);
    const int64_t n0 = sh.n0, n1 = sh.n1, j0 = sh.j0, L = sh.units();
    const int64_t r0 = rows * p / team, r1 = rows * (p + 1) / team;
    gather_inputs(hprev, x, y, h0, TT, 0, U, r0, r1);
    last_step_gradient(dh, dy, dh_n, sh, TT, U);
    T* bx = sums.of(dbias, sh, p);
    T* bh = bx + G;  // bias[1], with the reset after
#pragma omp barrier  // every panel is packed
    for (int64_t t = TT - 1; t >= 0; --t) {
      T* gt = gates + t * G;
      T* rt = recurrent + t * U;
      const auto [a, e] = steps.live_rows(t, n0, n1);
      const bool run = e > a && L > 0;
      for (int64_t n = n0; n < n1; ++n) {
        T* g = gt + n * TT * G + j0;
        const T* dyb = dy_before(dy, n, t, TT, U, j0);
        if (!steps.live(n, t)) {
          zero_groups(g, U, 3, L);
          if (s.reset_after) std::fill(rt + n * TT * U + j0, rt + n * TT * U + j0 + L, T(0));
          carry_gradient(dh + n * U + j0, dyb, L);
        } else if (s.reset_after) {
          backward_after_row(g, U, rt + n * TT * U + j0, bx + j0, bh + j0, dh + n * U + j0, dyb,
                             state_before(y, h0, n, t, TT, U, j0), L);
        } else {
          backward_candidate_before_row(g, U, dh + n * U + j0, dyb,
                                        state_before(y, h0, n, t, TT, U, j0), L);
        }
      }
      step_barrier(sh);  // every unit's gradients of step t are written
      if (!s.reset_after) {
        if (run) {
          panel_product(drh + a * U, U, static_cast<const T*>(nullptr), 0, gt + a * TT * G + 2 * U,
                        TT * G, e - a, nr.data, nr.panels);
        }
        for (int64_t n = n0; n < n1; ++n) {
          T* g = gt + n * TT * G + j0;
          if (steps.live(n, t)) {
            backward_reset_before_row(g, U, drh + n * U + j0, dh + n * U + j0, bx + j0,
                                      state_before(y, h0, n, t, TT, U, j0), L);
          }
        }
        step_barrier(sh);  // every unit's da_r is written
      }
      if (run) {
        T* da = dh + a * U;
        panel_product(da, U, da, U, gt + a * TT * G, TT * G, e - a, zr.data, zr.panels);
        if (s.reset_after) {
          panel_product(da, U, da, U, rt + a * TT * U, TT * U, e - a, nr.data, nr.panels);
        }
      }
    }
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t j = j0; j < sh.j1; ++j) dh0[n * U + j] += dh[n * U + j];
    }
#pragma omp barrier  // every gradient and every thread's bias sums are written
    // dx = [da_z, da_r, da_n] @ kernel^T over all steps at once, this thread's rows.
    panel_product(dx + r0 * I, I, dx + r0 * I, I, gates + r0 * G, G, r1 - r0, w.data, w.panels);
    sums.add_into(dbias, sh, team, p);
  }
  // The weight gradients over all steps at once: dkernel = x^T [da_z, da_r, da_n];
  // drecurrent_kernel's z and r columns h_{t-1}^T [da_z, da_r], its candidate columns
  // h_{t-1}^T (r da_n) with the reset after, (r h_{t-1})^T da_n before it.
  if (I > 0) weight_gradient(dkernel, G, x, I, gates, G, rows, I, G);
  weight_gradient(drecurrent_kernel, G, hprev, U, gates, G, rows, U, 2 * U);
  if (s.reset_after) {
    weight_gradient(drecurrent_kernel + 2 * U, G, hprev, U, recurrent, U, rows, U, U);
  } else {
    weight_gradient(drecurrent_kernel + 2 * U, G, recurrent, U, gates + 2 * U, G, rows, U, U);
  }
}

}  // namespace

template <typename T>
void gru_forward(T* y, T* h_n, T* gates, T* recurrent, const T* x, const T* h0, const T* kernel,
                 const T* recurrent_kernel, const T* bias, const uint8_t* mask, const GruShape& s) {
  if (s.N == 0 || s.U == 0) return;
  forward<T>({y, h_n, gates, recurrent, x, h0, kernel, recurrent_kernel, bias, mask}, s, plan(s));
}

template <typename T>
void gru_backward(T* dx, T* dh0, T* dkernel, T* drecurrent_kernel, T* dbias, T* gates, T* recurrent,
                  const T* y, const T* x, const T* h0, const T* kernel, const T* recurrent_kernel,
                  const T* dy, const T* dh_n, const uint8_t* mask, const GruShape& s) {
  if (s.N == 0 || s.U == 0) return;
  backward<T>({dx, dh0, dkernel, drecurrent_kernel, dbias, gates, recurrent, y, x, h0, kernel,
               recurrent_kernel, dy, dh_n, mask},
              s, plan(s));
}

#define DLCORE_INSTANTIATE_GRU(T)                                                                \
  template void gru_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                               const uint8_t*, const GruShape&);                                 \
  template void gru_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,        \
                                const T*, const T*, const T*, const T*, const uint8_t*,          \
                                const GruShape&);
DLCORE_INSTANTIATE_GRU(float)
DLCORE_INSTANTIATE_GRU(double)
#undef DLCORE_INSTANTIATE_GRU

}  // namespace dlcore
