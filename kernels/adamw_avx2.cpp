// adamw_step, AVX2 path: the reference's operations one for one on 8 floats (vsqrtps and vdivps are
// correctly rounded like their scalar forms), the tail through the shared scalar element. Compiled
// with the avx2 flags, so the tail's FMAs are instructions too. (The loop in plain C++ did not
// vectorize: std::sqrt keeps its errno branch, and baseline code called libm's fmaf per element.)
#include <immintrin.h>

#include "kernels/adamw_scalar.hpp"

namespace quench::kernels {

void adamw_step_avx2(int64_t n, float* w, const float* g, float* m, float* v, const AdamWScalars& s) {
  const __m256 decay = _mm256_set1_ps(s.decay), b1 = _mm256_set1_ps(s.b1), one_m_b1 = _mm256_set1_ps(s.one_m_b1);
  const __m256 b2 = _mm256_set1_ps(s.b2), one_m_b2 = _mm256_set1_ps(s.one_m_b2);
  const __m256 bc2_sqrt = _mm256_set1_ps(s.bc2_sqrt), eps = _mm256_set1_ps(s.eps);
  const __m256 neg_step = _mm256_set1_ps(s.neg_step);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 wv = _mm256_mul_ps(_mm256_loadu_ps(w + i), decay);
    const __m256 mv = _mm256_fmadd_ps(one_m_b1, gv, _mm256_mul_ps(_mm256_loadu_ps(m + i), b1));
    const __m256 vv = _mm256_fmadd_ps(_mm256_mul_ps(one_m_b2, gv), gv, _mm256_mul_ps(_mm256_loadu_ps(v + i), b2));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2_sqrt), eps);
    _mm256_storeu_ps(m + i, mv);
    _mm256_storeu_ps(v + i, vv);
    _mm256_storeu_ps(w + i, _mm256_add_ps(wv, _mm256_mul_ps(neg_step, _mm256_div_ps(mv, denom))));
  }
  for (; i < n; ++i) adamw_detail::element(w[i], g[i], m[i], v[i], s);
}

}  // namespace quench::kernels
