// The one SIMD layer of the kernels: Eigen's packets, wrapped for the few loops the
// compiler does not vectorise well by itself (private to the kernel sources). Eigen
// picks the widest packet the build's instruction set has (SSE, AVX, AVX-512, NEON),
// so code written against this header compiles and is correct at every level; the lane
// count kLanes<T> is a compile-time constant of the build, never assumed.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

// Non-temporal stores: SSE2 on any x86-64 (MSVC does not define __SSE2__ there).
#if defined(__SSE2__) || defined(_M_X64)
#define DLCORE_STREAM_STORES 1
#include <immintrin.h>
#endif

namespace dlcore::simd {

namespace ei = Eigen::internal;

// The packet of T (Packet8f under AVX, Packet4f under SSE or NEON, ...) and its lanes.
template <typename T>
using Packet = typename ei::packet_traits<T>::type;
template <typename T>
constexpr int kLanes = ei::unpacket_traits<Packet<T>>::size;

// ---------------------------------------------------------------- raw packets
template <typename T>
EIGEN_STRONG_INLINE Packet<T> load(const T* src) {  // unaligned
  return ei::ploadu<Packet<T>>(src);
}
template <typename T>
EIGEN_STRONG_INLINE void store(T* dst, const Packet<T>& v) {  // unaligned
  ei::pstoreu(dst, v);
}
template <typename T>
EIGEN_STRONG_INLINE Packet<T> load_aligned(const T* src) {
  return ei::pload<Packet<T>>(src);
}
template <typename T>
EIGEN_STRONG_INLINE void store_aligned(T* dst, const Packet<T>& v) {
  ei::pstore(dst, v);
}
template <typename T>
EIGEN_STRONG_INLINE Packet<T> broadcast(T v) {
  return ei::pset1<Packet<T>>(v);
}
template <typename T>
EIGEN_STRONG_INLINE Packet<T> zero() {
  return ei::pset1<Packet<T>>(T(0));
}
// a * b + c: one fused instruction where the build has FMA.
template <typename P>
EIGEN_STRONG_INLINE P madd(const P& a, const P& b, const P& c) {
  return ei::pmadd(a, b, c);
}

// Copies the first n of W values; a fixed trip count keeps the compiler from turning
// these few-element copies into memcpy calls.
template <int W, typename T>
void copy_first(T* dst, const T* src, int64_t n) {
  for (int j = 0; j < W; ++j)
    if (j < n) dst[j] = src[j];
}

// The first n lanes of a packet from and to memory (none for n <= 0, all for n >=
// kLanes); the other lanes load as 0 and are not stored. AVX float has masked moves,
// other packets go through a small copy.
template <typename T>
Packet<T> load_first(const T* src, int64_t n) {
  if (n >= kLanes<T>) return load(src);
  if (n <= 0) return zero<T>();
#ifdef EIGEN_VECTORIZE_AVX
  if constexpr (std::is_same_v<T, float> && kLanes<T> == 8) {  // Packet8f
    return ei::ploadu<Packet<T>>(src, static_cast<uint8_t>((1u << n) - 1));
  }
#endif
  T buf[kLanes<T>] = {};
  copy_first<kLanes<T>>(buf, src, n);
  return load(buf);
}

template <typename T>
void store_first(T* dst, const Packet<T>& v, int64_t n) {
  if (n >= kLanes<T>) return store(dst, v);
  if (n <= 0) return;
#ifdef EIGEN_VECTORIZE_AVX
  if constexpr (std::is_same_v<T, float> && kLanes<T> == 8) {  // Packet8f
    return ei::pstoreu(dst, v, static_cast<uint8_t>((1u << n) - 1));
  }
#endif
  T buf[kLanes<T>];
  store(buf, v);
  copy_first<kLanes<T>>(dst, buf, n);
}

// Which lanes of a row a packet covers: a whole packet at j, or the row's last n <
// kLanes values, through the same arithmetic (so a value's result does not depend on
// where a thread's slice of a row begins or ends).
template <typename T>
struct FullPacket {
  int64_t j;
  Packet<T> load(const T* row) const { return simd::load(row + j); }
  void store(T* row, const Packet<T>& v) const { simd::store(row + j, v); }
};

template <typename T>
struct PartialPacket {
  int64_t j, n;
  Packet<T> load(const T* row) const { return load_first(row + j, n); }
  void store(T* row, const Packet<T>& v) const { store_first(row + j, v, n); }
};

// ---------------------------------------------------------------- lane masks
// Compares give a mask per lane (all ones or all zeros); select(mask, a, b) takes a's
// lanes where it is set; mask_and / mask_or combine masks. Under GCC and Clang these
// are the compiler's own vector compares and ?:, which it turns into one blend: GCC 12
// reads the mask of Eigen's pselect by its sign bits and, not knowing that an Eigen
// compare made it, re-derives them with one more instruction on every select (on the
// max-pool's loop-carried chain; with the offsets below in float lanes as well, the
// max-pool ran 12% more instructions).
//
// IntLanes<T>: integers as wide as T (IntLane<T>) in one register per packet, which a
// mask selects like any packet (the max-pool's argmax offsets): int_lanes(v) puts v in
// every lane, and store_offsets (below) writes them out.
// (-DDLCORE_SIMD_EIGEN_MASKS builds the Eigen version under GCC too, to test it.)
template <typename T>
using IntLane = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
#if defined(__GNUC__) && !defined(DLCORE_SIMD_EIGEN_MASKS) && !defined(EIGEN_DONT_VECTORIZE)
template <typename P>
EIGEN_STRONG_INLINE auto lt(const P& a, const P& b) {
  return a < b;
}
template <typename P>
EIGEN_STRONG_INLINE auto eq(const P& a, const P& b) {
  return a == b;
}
template <typename P>
EIGEN_STRONG_INLINE auto ne(const P& a, const P& b) {
  return a != b;
}
template <typename M>
EIGEN_STRONG_INLINE M mask_and(const M& a, const M& b) {
  return a & b;
}
template <typename M>
EIGEN_STRONG_INLINE M mask_or(const M& a, const M& b) {
  return a | b;
}
template <typename M, typename P>
EIGEN_STRONG_INLINE P select(const M& mask, const P& a, const P& b) {
  return mask ? a : b;
}
template <typename T>
using IntLanes = decltype(Packet<T>() < Packet<T>());  // the compare's own integer lanes
template <typename T>
EIGEN_STRONG_INLINE IntLanes<T> int_lanes(IntLane<T> v) {
  return IntLanes<T>{} + v;
}
#else
template <typename P>
EIGEN_STRONG_INLINE P lt(const P& a, const P& b) {
  return ei::pcmp_lt(a, b);
}
template <typename P>
EIGEN_STRONG_INLINE P eq(const P& a, const P& b) {
  return ei::pcmp_eq(a, b);
}
template <typename P>
EIGEN_STRONG_INLINE P ne(const P& a, const P& b) {
  return ei::pandnot(ei::ptrue(a), ei::pcmp_eq(a, b));
}
template <typename P>
EIGEN_STRONG_INLINE P mask_and(const P& a, const P& b) {
  return ei::pand(a, b);
}
template <typename P>
EIGEN_STRONG_INLINE P mask_or(const P& a, const P& b) {
  return ei::por(a, b);
}
template <typename P>
EIGEN_STRONG_INLINE P select(const P& mask, const P& a, const P& b) {
  return ei::pselect(mask, a, b);
}
template <typename T>
using IntLanes = Packet<T>;  // the integers' bits in T lanes: a select moves bits only
template <typename T>
EIGEN_STRONG_INLINE IntLanes<T> int_lanes(IntLane<T> v) {
  return broadcast(Eigen::numext::bit_cast<T>(v));
}
#endif

// dst[j] = base + j + lane j of x, for every lane: the lanes go through memory, so that
// the compiler widens and adds them as vectors (reading them one at a time was an
// extract per lane, 16 a packet at the avx512 level). Both kinds of IntLanes hold each
// lane's integer bits in place.
template <typename T>
EIGEN_STRONG_INLINE void store_offsets(int64_t* dst, const IntLanes<T>& x, int64_t base) {
  static_assert(sizeof(IntLanes<T>) == sizeof(IntLane<T>) * kLanes<T>);
  IntLane<T> lanes[kLanes<T>];
  std::memcpy(lanes, &x, sizeof(lanes));
  for (int j = 0; j < kLanes<T>; ++j) dst[j] = base + j + lanes[j];
}

// ---------------------------------------------------------------- activations
template <typename T>
EIGEN_STRONG_INLINE Packet<T> sigmoid(const Packet<T>& x) {
  return ei::scalar_logistic_op<T>().packetOp(x);
}

template <typename T>
EIGEN_STRONG_INLINE Packet<T> tanh(const Packet<T>& x) {
  if constexpr (bool(ei::packet_traits<T>::HasTanh)) {
    return ei::ptanh(x);
  } else {  // Eigen vectorises tanh for float only; double is for checking, not speed
    T v[kLanes<T>];
    store(v, x);
    for (T& e : v) e = std::tanh(e);
    return load(v);
  }
}

// ---------------------------------------------------------------- Vec
// A packet with arithmetic operators, so that a formula is written once for a packet of
// channels and for one channel (a T): the Winograd transforms and the direct
// convolution's tiles.
template <typename T>
struct Vec {
  Packet<T> v;

  static Vec load(const T* src) { return {simd::load(src)}; }
  void store(T* dst) const { simd::store(dst, v); }
  static Vec zero() { return {simd::zero<T>()}; }
  static Vec broadcast(T x) { return {simd::broadcast(x)}; }

  friend Vec operator+(const Vec& a, const Vec& b) { return {ei::padd(a.v, b.v)}; }
  friend Vec operator-(const Vec& a, const Vec& b) { return {ei::psub(a.v, b.v)}; }
  // A sign flip, as -x is for a T (pnegate may compute 0 - x, which loses -0).
  friend Vec operator-(const Vec& a) { return {ei::pxor(a.v, simd::broadcast(T(-0.0)))}; }
  friend Vec operator*(const Vec& a, const Vec& b) { return {ei::pmul(a.v, b.v)}; }
  friend Vec operator*(const Vec& a, T b) { return {ei::pmul(a.v, simd::broadcast(b))}; }
  Vec& operator+=(const Vec& b) { return *this = *this + b; }
};

// a * b + c for a Vec or a T alike.
template <typename T>
EIGEN_STRONG_INLINE Vec<T> madd(const Vec<T>& a, const Vec<T>& b, const Vec<T>& c) {
  return {ei::pmadd(a.v, b.v, c.v)};
}

// Loads and stores of a Vec<T> or a T, for formulas written once for both.
template <typename V, typename T>
EIGEN_STRONG_INLINE V load_as(const T* src) {
  if constexpr (std::is_same_v<V, T>) {
    return *src;
  } else {
    return V::load(src);
  }
}

template <typename V>
EIGEN_STRONG_INLINE V zero_as() {
  if constexpr (std::is_arithmetic_v<V>) {
    return V(0);
  } else {
    return V::zero();
  }
}

template <typename V, typename T>
EIGEN_STRONG_INLINE void store_as(T* dst, const V& v) {
  if constexpr (std::is_same_v<V, T>) {
    *dst = v;
  } else {
    v.store(dst);
  }
}

// ---------------------------------------------------------------- streaming stores
// A pass that reads and writes dlcore::stream_min_bytes() bytes or more in all
// (dlcore/streaming.hpp) writes its result with non-temporal stores: computed a tile at
// a time into a small buffer in L1, then copied out past the caches.
bool stream_pays(size_t working_set);

// The stores' width, and whether the target has them at all (else nothing streams:
// stream_pays is false).
#if defined(__AVX__)
constexpr size_t kStreamAlign = 32;
#elif defined(DLCORE_STREAM_STORES)
constexpr size_t kStreamAlign = 16;
#else
constexpr size_t kStreamAlign = 0;
#endif

// Copies n values from src to dst with non-temporal stores, plain copies for the
// unaligned head and the tail.
template <typename T>
void stream_copy(T* dst, const T* src, int64_t n) {
  auto* d = reinterpret_cast<unsigned char*>(dst);
  auto* s = reinterpret_cast<const unsigned char*>(src);
  size_t bytes = size_t(n) * sizeof(T);
#if defined(DLCORE_STREAM_STORES)
  const size_t misaligned = reinterpret_cast<uintptr_t>(d) % kStreamAlign;
  const size_t head = std::min(bytes, (kStreamAlign - misaligned) % kStreamAlign);
  std::memcpy(d, s, head);
  d += head, s += head, bytes -= head;
  for (; bytes >= kStreamAlign; d += kStreamAlign, s += kStreamAlign, bytes -= kStreamAlign) {
#if defined(__AVX__)
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)));
#else
    _mm_stream_si128(reinterpret_cast<__m128i*>(d),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
#endif
  }
#endif
  std::memcpy(d, s, bytes);
}

// Orders the calling thread's non-temporal stores before its later stores: each thread
// calls it after its last streamed write, before a barrier hands the result on.
inline void stream_fence() {
#if defined(DLCORE_STREAM_STORES)
  _mm_sfence();
#endif
}

// Writes dst[begin, end) through f(out, b, e), which computes the values of [b, e) into
// out[0, e - b): straight into dst, or, when `stream`, a tile at a time into a buffer
// that stream_copy writes out. The first tile ends on a cache line of dst, so that no
// line is written partly by plain and partly by non-temporal stores between tiles. The
// caller then calls stream_fence() on the same thread.
template <typename T, typename F>
void write_streamed(T* dst, int64_t begin, int64_t end, bool stream, F&& f) {
  if (!stream) return f(dst + begin, begin, end);
  constexpr int64_t kTile = 4096 / int64_t(sizeof(T));
  alignas(64) T tile[kTile];
  const size_t line_offset = reinterpret_cast<uintptr_t>(dst + begin) % 64;
  int64_t e =
      std::min(end, begin + kTile - int64_t(line_offset % sizeof(T) ? 0 : line_offset / sizeof(T)));
  for (int64_t b = begin; b < end; b = e, e = std::min(end, e + kTile)) {
    f(tile, b, e);
    stream_copy(dst + b, tile, e - b);
  }
}

}  // namespace dlcore::simd
