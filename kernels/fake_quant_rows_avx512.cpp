// AVX-512 row passes of fake quantization for rows that sit in cache (a quantized attention's heads:
// its operands' codes and the grid product's epilogue), where the AVX2 pass's 8 lanes and its byte
// packing, not memory, set the pace. The operations of the AVX2 path, 16 lanes wide: the same bits.
// Compiled with the avx512 flags and -ffp-contract=off.
#include "kernels/avx512_common.hpp"

#include "kernels/fake_quant_rows_internal.hpp"

namespace quench::kernels::fqrows {

void fake_quant_row_avx512(const float* x, int64_t n, float scale, int32_t z, int32_t qmin, int32_t qmax, float* qi,
                           float* deq, uint8_t* mask, uint8_t* code) {
  const float inv = 1.0f / scale;
  const __m512 invv = _mm512_set1_ps(inv), sv = _mm512_set1_ps(scale);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(qmin - z)), hi = _mm512_set1_ps(static_cast<float>(qmax - z));
  const __m512 zf = _mm512_set1_ps(static_cast<float>(z));
  const __m512 qminf = _mm512_set1_ps(static_cast<float>(qmin)), qmaxf = _mm512_set1_ps(static_cast<float>(qmax));
  const __m512i zi = _mm512_set1_epi32(z);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 r =
        _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), invv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // vmaxps returns its second operand when one is NaN: NaN -> lo, as the scalar !(r >= lo).
    const __m512 rc = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
    const __m512i iv = _mm512_cvtps_epi32(rc);  // exact: rc is an integer
    const __m512 v = _mm512_cvtepi32_ps(iv);    // -0 -> +0
    if (qi) _mm512_storeu_ps(qi + i, v);
    if (code) _mm_storeu_si128(reinterpret_cast<__m128i*>(code + i), _mm512_cvtepi32_epi8(_mm512_add_epi32(iv, zi)));
    if (deq) _mm512_storeu_ps(deq + i, _mm512_mul_ps(v, sv));
    if (mask) {
      const __m512 u = _mm512_add_ps(r, zf);
      const __mmask16 in = _mm512_cmp_ps_mask(u, qminf, _CMP_GE_OQ) & _mm512_cmp_ps_mask(u, qmaxf, _CMP_LE_OQ);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(mask + i), _mm_maskz_set1_epi8(in, 1));
    }
  }
  fake_quant_scalar(x, i, n, scale, inv, z, qmin, qmax, qi, deq, mask, code);
}

int32_t sum_row_u8_avx512(const uint8_t* x, int64_t n) {
  __m512i acc = _mm512_setzero_si512();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)  // vpsadbw: 8 sums of 8 bytes per 64 bytes
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(_mm512_loadu_si512(x + i), _mm512_setzero_si512()));
  return static_cast<int32_t>(_mm512_reduce_add_epi64(acc)) + sum_u8_scalar(x, i, n);
}

void dequantize_row_s32_avx512(const int32_t* acc, int64_t n, int32_t offset, float mult, float* y) {
  const __m512i off = _mm512_set1_epi32(offset);
  const __m512 m = _mm512_set1_ps(mult);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_loadu_si512(acc + i), off)), m));
  for (; i < n; i += 16) {
    const __mmask16 k = tail(n - i);
    _mm512_mask_storeu_ps(y + i, k,
                          _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_maskz_loadu_epi32(k, acc + i), off)), m));
  }
}

}  // namespace quench::kernels::fqrows
