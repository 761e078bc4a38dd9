// AVX2 row passes of fake quantization (min / max, masks and scales also at the avx512 levels: on
// whole activations the passes are bound by memory, a zmm variant would not be faster). Compiled with -mavx2 -mfma -ffp-contract=off.
#include <immintrin.h>

#include <limits>

#include "kernels/fake_quant_rows_internal.hpp"

namespace quench::kernels::fqrows {
namespace {

// 8 lanes of 0 / ~0 -> 8 bytes of 0 / 1.
inline void store_mask8(uint8_t* p, __m256 m) {
  const __m256i b = _mm256_srli_epi32(_mm256_castps_si256(m), 31);
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(w, w));
}

// 8 lanes of int32 -> their low bytes.
inline void store_low_bytes8(uint8_t* p, __m256i v) {
  const __m256i b = _mm256_and_si256(v, _mm256_set1_epi32(0xff));
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
}

inline float hmin(__m256 v) {
  __m128 a = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_min_ps(a, _mm_movehl_ps(a, a));
  a = _mm_min_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}

inline float hmax(__m256 v) {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  a = _mm_max_ss(a, _mm_shuffle_ps(a, a, 1));
  return _mm_cvtss_f32(a);
}

// The first zero of x (+0 or -0): the loop's choice when the extreme is 0.
inline float first_zero(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == 0.f) return x[i];
  return 0.f;
}

}  // namespace

void fake_quant_row_avx2(const float* x, int64_t n, float scale, int32_t z, int32_t qmin, int32_t qmax, float* qi,
                         float* deq, uint8_t* mask, uint8_t* code) {
  const float inv = 1.0f / scale;
  const __m256 invv = _mm256_set1_ps(inv), sv = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(static_cast<float>(qmin - z)), hi = _mm256_set1_ps(static_cast<float>(qmax - z));
  const __m256 zf = _mm256_set1_ps(static_cast<float>(z));
  const __m256 qminf = _mm256_set1_ps(static_cast<float>(qmin)), qmaxf = _mm256_set1_ps(static_cast<float>(qmax));
  const __m256i zi = _mm256_set1_epi32(z);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), invv),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // maxps returns its second operand when one is NaN: NaN -> lo, as the scalar !(r >= lo).
    const __m256 rc = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    const __m256i iv = _mm256_cvtps_epi32(rc);  // exact: rc is an integer
    const __m256 v = _mm256_cvtepi32_ps(iv);    // -0 -> +0
    if (qi) _mm256_storeu_ps(qi + i, v);
    if (code) store_low_bytes8(code + i, _mm256_add_epi32(iv, zi));
    if (deq) _mm256_storeu_ps(deq + i, _mm256_mul_ps(v, sv));
    if (mask) {
      const __m256 u = _mm256_add_ps(r, zf);
      store_mask8(mask + i, _mm256_and_ps(_mm256_cmp_ps(u, qminf, _CMP_GE_OQ), _mm256_cmp_ps(u, qmaxf, _CMP_LE_OQ)));
    }
  }
  fake_quant_scalar(x, i, n, scale, inv, z, qmin, qmax, qi, deq, mask, code);
}

void mask_row_avx2(float* g, const uint8_t* mask, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mask + i)));
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(m, _mm256_setzero_si256()));
    _mm256_storeu_ps(g + i, _mm256_and_ps(_mm256_loadu_ps(g + i), keep));
  }
  mask_scalar(g, mask, i, n);
}

void scale_bias_row_avx2(float* y, const float* mult, const float* bias, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(mult + i));
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
    _mm256_storeu_ps(y + i, v);
  }
  scale_bias_scalar(y, mult, bias, i, n);
}

void min_max_row_avx2(const float* x, int64_t n, float* lo, float* hi) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  // Two accumulator pairs hide the min / max latency. minps(x, acc) keeps acc when x is NaN.
  __m256 mn0 = _mm256_set1_ps(kInf), mn1 = mn0, mx0 = _mm256_set1_ps(-kInf), mx1 = mx0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    mn0 = _mm256_min_ps(a, mn0);
    mx0 = _mm256_max_ps(a, mx0);
    mn1 = _mm256_min_ps(b, mn1);
    mx1 = _mm256_max_ps(b, mx1);
  }
  float m = hmin(_mm256_min_ps(mn0, mn1)), M = hmax(_mm256_max_ps(mx0, mx1));
  min_max_scalar(x, i, n, &m, &M);
  // Values agree with the loop; only the sign of a zero extreme depends on order.
  if (m < *lo) *lo = m == 0.f ? first_zero(x, n) : m;
  if (M > *hi) *hi = M == 0.f ? first_zero(x, n) : M;
}

}  // namespace quench::kernels::fqrows
