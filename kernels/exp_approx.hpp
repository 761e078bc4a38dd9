// exp(x) for x <= 88 (softmax uses it on shifted logits <= 0). Cephes expf: x = n ln2 + r with
// |r| <= ln2/2, a degree-7 polynomial for e^r, 2^n built in the exponent bits. Relative error
// below 2e-7 against std::exp; 0 below -87.3 (where std::exp goes denormal) and for -inf; NaN stays
// NaN. Branch-free so a loop over it vectorizes; its multiply-adds are explicit FMAs (fmadd.hpp), so
// a vector version with the same operations (exp_approx_simd.hpp) gives the same bits. Shared by
// engine/ops/row_math.hpp and kernels/softmax_rows.
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>

#include "kernels/fmadd.hpp"

namespace quench::kernels {

inline __attribute__((always_inline)) float exp_approx(float x) {
  const float xc = std::max(x, -87.3f);
  const float t = fmadd(xc, 1.44269504088896341f, 12582912.f);  // 1.5 * 2^23: round(x / ln2) in the low bits
  const float n = t - 12582912.f;
  float r = fmadd(n, -0.693359375f, xc);  // ln2 split in two for an exact reduction
  r = fmadd(n, 2.12194440e-4f, r);
  float p = fmadd(1.9875691500e-4f, r, 1.3981999507e-3f);
  p = fmadd(p, r, 8.3334519073e-3f);
  p = fmadd(p, r, 4.1665795894e-2f);
  p = fmadd(p, r, 1.6666665459e-1f);
  p = fmadd(p, r, 5.0000001201e-1f);
  p = fmadd(p, r * r, r) + 1.0f;
  const uint32_t bits = (std::bit_cast<uint32_t>(t) - 0x4B400000u + 127u) << 23;
  return x < -87.3f ? 0.f : p * std::bit_cast<float>(bits);
}

}  // namespace quench::kernels
