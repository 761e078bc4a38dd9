// Internal: one element of the AdamW update (kernels/adamw.hpp), shared by the reference loop and
// the AVX2 path's tail, so the two cannot drift apart.
#pragma once
#include <cmath>

#include "kernels/adamw.hpp"
#include "kernels/fmadd.hpp"

namespace quench::kernels::adamw_detail {

inline __attribute__((always_inline)) void element(float& w, float g, float& m, float& v, const AdamWScalars& s) {
  w = w * s.decay;
  m = fmadd(s.one_m_b1, g, m * s.b1);
  v = fmadd(s.one_m_b2 * g, g, v * s.b2);
  const float denom = std::sqrt(v) / s.bc2_sqrt + s.eps;
  w = w + s.neg_step * (m / denom);
}

}  // namespace quench::kernels::adamw_detail
