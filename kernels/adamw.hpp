// The AdamW update of one parameter tensor, element by element (PyTorch 1.13's _single_tensor_adamw
// with its vectorized kernels' fused multiply-adds):
//   w = w * decay;  m = fma(1 - b1, g, m * b1);  v = fma((1 - b2) * g, g, v * b2);
//   w = w + neg_step * (m / (sqrt(v) / bc2_sqrt + eps))
// Paths by active_isa(): 8 floats per ymm (adamw_avx2.cpp) with the scalar code on the tail, or
// adamw_step_ref. Every operation is correctly rounded (FMAs included), so every path gives the
// same bits.
#pragma once
#include <cstdint>

namespace quench::kernels {

struct AdamWScalars {
  float decay;       // 1 - lr * weight_decay
  float b1, one_m_b1, b2, one_m_b2;
  float bc2_sqrt;    // sqrt(1 - b2^step)
  float eps;
  float neg_step;    // -lr / (1 - b1^step)
};

// Elements [0, n) of w, m, v updated in place from g.
void adamw_step(int64_t n, float* w, const float* g, float* m, float* v, const AdamWScalars& s);

// Plain loop, the twin the fast path is tested against.
void adamw_step_ref(int64_t n, float* w, const float* g, float* m, float* v, const AdamWScalars& s);

}  // namespace quench::kernels
