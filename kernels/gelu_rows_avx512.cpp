// gelu_rows, AVX-512 path: vgelu and vgelu_backward (kernels/vmath.hpp) 16 lanes at a time, their
// operations one for one, the tail masked. Two instructions stand for several of the element
// functions' operations with the same results:
//  - vrangeps(v, c, imm 2) is sign(v) * min(|v|, c) for a number v: verf's clamps of its input to
//    [-4, 4] and of its result to [-1, 1]. A quiet NaN v comes out as +-c, not as the NaN verf
//    returns, so erf16 is no stand-in for verf on NaN; GELU's results still are NaN, with verf's bits:
//    h = x / 2 is that same NaN and goes through the last FMA (forward), as do x and exp's result
//    (backward).
//  - vscalefps(y, n) is y * 2^n rounded once. vexp forms 2^n as two normal factors (y * 2^n1) * 2^n2,
//    the first product exact, so it too rounds y * 2^n once, in the denormal range included. Its
//    clamps become max / min with the operands ordered so that a NaN goes through them.
// Compiled with the avx512 flags.
#include "kernels/avx512_common.hpp"
#include "kernels/gelu_rows.hpp"
#include "kernels/vmath.hpp"

namespace quench::kernels {
namespace {

constexpr int kRangeMinAbsSignOfFirst = 0x02;

__m512 splat(float v) { return _mm512_set1_ps(v); }

// verf
__m512 erf16(__m512 x) {
  const __m512 xc = _mm512_range_ps(x, splat(kErfClamp), kRangeMinAbsSignOfFirst);
  const __m512 x2 = _mm512_mul_ps(xc, xc);
  __m512 p = splat(kErfP[0]);
  for (int i = 1; i < 7; ++i) p = _mm512_fmadd_ps(x2, p, splat(kErfP[i]));
  p = _mm512_mul_ps(xc, p);
  __m512 q = splat(kErfQ[0]);
  for (int i = 1; i < 5; ++i) q = _mm512_fmadd_ps(x2, q, splat(kErfQ[i]));
  return _mm512_range_ps(_mm512_div_ps(p, q), splat(1.0f), kRangeMinAbsSignOfFirst);
}

// vexp. _mm512_max_ps(a, b) returns b when either is NaN.
__m512 exp16(__m512 x) {
  const __m512 xc = _mm512_min_ps(splat(kExpMax), _mm512_max_ps(splat(kExpMin), x));
  const __m512 fn = _mm512_sub_ps(_mm512_fmadd_ps(xc, splat(kLog2e), splat(kRoundConst)), splat(kRoundConst));
  __m512 r = _mm512_fmadd_ps(fn, splat(-kLn2Hi), xc);
  r = _mm512_fmadd_ps(fn, splat(-kLn2Lo), r);
  __m512 p = splat(kExpPoly[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, splat(kExpPoly[i]));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), splat(1.0f));
  return _mm512_scalef_ps(y, fn);
}

// vgelu
__m512 gelu16(__m512 x) {
  const __m512 h = _mm512_mul_ps(x, splat(0.5f));
  return _mm512_fmadd_ps(h, erf16(_mm512_mul_ps(x, splat(kSqrt1_2))), h);
}

// vgelu_backward
__m512 gelu_backward16(__m512 g, __m512 x) {
  const __m512 cdf = _mm512_fmadd_ps(splat(0.5f), erf16(_mm512_mul_ps(x, splat(kSqrt1_2))), splat(0.5f));
  const __m512 pdf = _mm512_mul_ps(exp16(_mm512_mul_ps(_mm512_mul_ps(splat(-0.5f), x), x)), splat(kGeluBeta));
  return _mm512_mul_ps(g, _mm512_fmadd_ps(x, pdf, cdf));
}

}  // namespace

void gelu_rows_avx512(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_storeu_ps(y + i, k, gelu16(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

void gelu_backward_rows_avx512(const float* g, const float* x, int64_t n, float* dx) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    const __m512 gv = _mm512_maskz_loadu_ps(k, g + i), xv = _mm512_maskz_loadu_ps(k, x + i);
    _mm512_mask_storeu_ps(dx + i, k, gelu_backward16(gv, xv));
  }
}

}  // namespace quench::kernels
