// Row primitives for softmax and cross_entropy, and call_isa / call_wide for every row op (internal
// to engine/): written so the compiler vectorizes them, with a fixed evaluation order so results
// never depend on threads. (layer_norm keeps its own float lanes, engine/ops/layer_norm.cpp.)
//
// Sums use four double lanes (element j goes to lane j % 4, lanes added pairwise at the end): the
// order is a function of n alone, and the lanes vectorize where one running sum could not.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/exp_approx.hpp"
#include "kernels/isa.hpp"

namespace quench::detail {

// Calls f() compiled again with AVX2 and FMA enabled when `avx2` (kernels::active_isa() >= avx2): the
// row loops inlined into it run 8 floats a step instead of 4. Nothing contracts (-ffp-contract=off)
// and exp_approx's FMAs are explicit, so both paths give the same bits; code that calls exp_approx
// goes through here so that its FMAs are instructions rather than libm calls. f must be inlinable (a lambda over
// plain loops); call it inside a parallel_for chunk, not around one.
// Row helpers and the lambdas given to call_isa / call_wide are forced inline so they are compiled
// into the AVX2 (or AVX-512) caller rather than called as baseline code.
#define QUENCH_ROW_INLINE __attribute__((always_inline))

#if defined(__x86_64__)
template <class F>
__attribute__((target("avx2,fma"))) void call_avx2(const F& f) {
  f();
}
#endif
template <class F>
inline void call_isa(bool avx2, const F& f) {
#if defined(__x86_64__)
  if (avx2) {
    call_avx2(f);
    return;
  }
#endif
  f();
}

// call_isa with a third level: f compiled for AVX-512 when active_isa() >= avx512 (clang builds
// only, as the wide element-wise loop, engine/elementwise.hpp). For row code whose sums are written
// in explicit lanes (layer_norm's 16-float vectors, column_sums' per-column doubles): the same
// operations in the same order, one zmm where the AVX2 path uses two ymm
// (tests/test_attention.cpp compares the paths bit for bit).
#if defined(__x86_64__) && defined(__clang__)
template <class F>
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))) void call_avx512(const F& f) {
  f();
}
#endif
template <class F>
inline void call_wide(const F& f) {
  const kernels::Isa isa = kernels::active_isa();
#if defined(__x86_64__) && defined(__clang__)
  if (isa >= kernels::Isa::avx512) {
    call_avx512(f);
    return;
  }
#endif
  call_isa(isa >= kernels::Isa::avx2, f);
}

// exp(x) for x <= 88: kernels/exp_approx.hpp (shared with the AVX-512 attention rows).
using kernels::exp_approx;

inline QUENCH_ROW_INLINE float row_max(const float* x, int64_t n) {
  float m[8];
  for (float& v : m) v = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) m[k] = m[k] < x[j + k] ? x[j + k] : m[k];
  for (; j < n; ++j) m[0] = m[0] < x[j] ? x[j] : m[0];
  for (int k = 1; k < 8; ++k) m[0] = m[0] < m[k] ? m[k] : m[0];
  return m[0];
}

// sum_j f(j) in double, lane j % 4.
template <class F>
inline QUENCH_ROW_INLINE double lane_sum(int64_t n, F f) {
  double a[4] = {0.0, 0.0, 0.0, 0.0};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int k = 0; k < 4; ++k) a[k] += f(j + k);
  for (int k = 0; j < n; ++j, ++k) a[k] += f(j);
  return (a[0] + a[1]) + (a[2] + a[3]);
}

inline QUENCH_ROW_INLINE double row_sum(const float* x, int64_t n) {
  return lane_sum(n, [x](int64_t j) { return static_cast<double>(x[j]); });
}
inline QUENCH_ROW_INLINE double row_dot(const float* x, const float* y, int64_t n) {
  return lane_sum(n, [x, y](int64_t j) { return static_cast<double>(x[j]) * y[j]; });
}

// One contiguous row. y may not alias x.
inline QUENCH_ROW_INLINE void softmax_row(const float* x, float* y, int64_t n, bool log) {
  const float m = detail::row_max(x, n);
  for (int64_t j = 0; j < n; ++j) y[j] = detail::exp_approx(x[j] - m);
  const double sum = detail::row_sum(y, n);
  if (log) {
    const float ls = static_cast<float>(std::log(sum));
    for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - ls;
  } else {
    const float r = static_cast<float>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) y[j] *= r;
  }
}

// softmax: dx = y * (g - sum(g * y));  log_softmax: dx = g - exp(y) * sum(g)
inline QUENCH_ROW_INLINE void softmax_row_backward(const float* y, const float* g, float* dx, int64_t n, bool log) {
  if (log) {
    const float sg = static_cast<float>(detail::row_sum(g, n));
    for (int64_t j = 0; j < n; ++j) dx[j] = g[j] - detail::exp_approx(y[j]) * sg;
  } else {
    const float dot = static_cast<float>(detail::row_dot(g, y, n));
    for (int64_t j = 0; j < n; ++j) dx[j] = y[j] * (g[j] - dot);
  }
}

}  // namespace quench::detail
