// Internal: the plain loops of kernels/softmax_rows.hpp (the _ref twins, also compiled with AVX2 flags
// for the avx2 path, where they vectorize with the same roundings).
#pragma once
#include <cstdint>
#include <limits>

#include "kernels/exp_approx.hpp"

namespace quench::kernels::srows {

inline constexpr int kLanes = 16;

// a[l] += f(j) for element j in lane l = j % 16, in j order; whole groups of 16 first so the loop
// vectorizes.
template <class F>
inline __attribute__((always_inline)) void lane_add(float* a, int64_t n, F f) {
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) a[l] += f(j + l);
  for (int l = 0; j + l < n; ++l) a[l] += f(j + l);
}

// Lanes added as the AVX-512 path does: l + 8, then l + 4, l + 2, l + 1.
inline __attribute__((always_inline)) float tree_sum(float* a) {
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) a[l] = a[l] + a[l + w];
  return a[0];
}

// m = t > m ? t : m lane by lane, then the tree with the same rule (what _mm512_max_ps(t, m) does).
inline __attribute__((always_inline)) float max_of(const float* t, int64_t n) {
  float m[kLanes];
  for (float& v : m) v = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) m[l] = t[j + l] > m[l] ? t[j + l] : m[l];
  for (int l = 0; j + l < n; ++l) m[l] = t[j + l] > m[l] ? t[j + l] : m[l];
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
  return m[0];
}

inline __attribute__((always_inline)) void softmax_rows(const float* x, int64_t rows, int64_t n, float scale,
                                                        const uint8_t* mask, float* y) {
  for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
    for (int64_t j = 0; j < n; ++j)
      y[j] = mask && mask[j] ? -std::numeric_limits<float>::infinity() : x[j] * scale;
    const float m = max_of(y, n);
    float a[kLanes] = {};
    for (int64_t j = 0; j < n; ++j) y[j] = exp_approx(y[j] - m);
    lane_add(a, n, [y](int64_t j) { return y[j]; });
    const float inv = static_cast<float>(1.0 / static_cast<double>(tree_sum(a)));
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
  }
}

inline __attribute__((always_inline)) void softmax_rows_backward(const float* y, const float* g, int64_t rows,
                                                                 int64_t n, float scale, float* dx) {
  for (int64_t r = 0; r < rows; ++r, y += n, g += n, dx += n) {
    float a[kLanes] = {};
    lane_add(a, n, [y, g](int64_t j) { return g[j] * y[j]; });
    const float dot = tree_sum(a);
    for (int64_t j = 0; j < n; ++j) dx[j] = (y[j] * (g[j] - dot)) * scale;
  }
}

}  // namespace quench::kernels::srows
