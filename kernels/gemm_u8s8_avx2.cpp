// AVX2 u8s8 path, exact: activations and weights widened to int16, products summed in pairs by
// vpmaddwd into int32 (vpmaddubsw would saturate: 255*127*2 > 32767). Also serves the avx512 level
// (AVX-512 without VNNI), which falls back to this ymm kernel: a zmm variant (twice the MACs per
// instruction where the ALUs are 512 bits wide, 32 registers for a wider tile) is not written yet.
// Cost: 12 vpmaddwd + 12 vpaddd + 6 broadcasts per 192 MACs, about 4 vector ops per 32 MACs where
// oneDNN's inexact vpmaddubsw + vpmaddwd(ones) + vpaddd needs 3; measured ~0.75x its AVX2 speed.
// Holds the shared float epilogue (ymm) the VNNI path calls too, and the row quantizer.
// Compiled with -mavx2 -mfma -ffp-contract=off.
#include <immintrin.h>

#include "kernels/gemm_u8s8_driver.hpp"

namespace quench::kernels::u8s8 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// 6x16 tile: 12 accumulators + 2 weight vectors + 1 broadcast + 1 product = 16 ymm registers.
// w: i16 panel, per k pair 16 channels x 2 int16 (64 bytes). a: packed int16 rows, astride bytes
// apart.
template <int MR>
void kernel_6x16(int64_t Kp, const uint8_t* a, int64_t astride, const uint8_t* w,
                 const int32_t* colsum, int32_t offset, const TileOut& to, int ncols) {
  int32_t* out = static_cast<int32_t*>(to.c);
  const int64_t ldo = to.ldc;
  __m256i acc[MR][2];
  const __m256i neg = _mm256_set1_epi32(-offset);  // start at -offset * colsum
  const __m256i c0 =
      _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum)), neg);
  const __m256i c1 =
      _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum + 8)), neg);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = c0;
    acc[r][1] = c1;
  }
  for (int64_t k = 0; k < Kp; k += 2) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + k * 32));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + k * 32 + 32));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(load_i32(a + r * astride + k * 2));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(av, b0));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(av, b1));
    }
  }
  if (ncols == 16) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * ldo), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * ldo + 8), acc[r][1]);
    }
  } else {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), idx);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8), idx);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      _mm256_maskstore_epi32(out + r * ldo, m0, acc[r][0]);
      _mm256_maskstore_epi32(out + r * ldo + 8, m1, acc[r][1]);
    }
  }
}

struct KernAvx2 {
  static constexpr int MR = 6, NR = 16, AElem = 2;
  using Fn = void (*)(int64_t, const uint8_t*, int64_t, const uint8_t*, const int32_t*, int32_t,
                      const TileOut&, int);
  static constexpr Fn kernels[MR] = {kernel_6x16<1>, kernel_6x16<2>, kernel_6x16<3>,
                                     kernel_6x16<4>, kernel_6x16<5>, kernel_6x16<6>};
  // int32 tiles only: the epilogues run on the ymm rows of epilogue_row_avx2.
  static Fn kernel(U8S8Output out, int mr) { return out == U8S8Output::s32 ? kernels[mr - 1] : nullptr; }
  // int16 is signed, so s8 activations widen as they are: only the zero point is folded.
  static int32_t offset(const Job& job) { return job.za; }
  static bool direct(const Job&) { return false; }  // always widened to int16
  static void pack_a(const Job& job, int64_t m0, int64_t rows, uint8_t* dst, int64_t stride) {
    const int64_t K = job.K, Kp = job.W->Kp;
    for (int64_t i = 0; i < rows; ++i) {
      const uint8_t* src = job.A + (m0 + i) * job.lda;
      int16_t* d = reinterpret_cast<int16_t*>(dst + i * stride);
      if (job.a_signed)
        for (int64_t k = 0; k < K; ++k) d[k] = static_cast<int8_t>(src[k]);
      else
        for (int64_t k = 0; k < K; ++k) d[k] = src[k];
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    }
  }
};

// Vector twins of the scalar epilogue helpers in gemm_u8s8_internal.hpp, operation for operation.
inline __m256 clamp_0_255_v(__m256 t) {
  return _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.f));
}

inline __m256 exp_neg16_v(__m256 x) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_add_ps(_mm256_mul_ps(y, z), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

inline __m256 erf_approx_v(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f);
  __m256 ax = _mm256_min_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(4.f));
  const __m256 one = _mm256_set1_ps(1.f);
  const __m256 t =
      _mm256_div_ps(one, _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.3275911f), ax), one));
  __m256 r =
      _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(1.061405429f), t), _mm256_set1_ps(-1.453152027f));
  r = _mm256_add_ps(_mm256_mul_ps(r, t), _mm256_set1_ps(1.421413741f));
  r = _mm256_add_ps(_mm256_mul_ps(r, t), _mm256_set1_ps(-0.284496736f));
  r = _mm256_add_ps(_mm256_mul_ps(r, t), _mm256_set1_ps(0.254829592f));
  const __m256 e = exp_neg16_v(_mm256_xor_ps(sign, _mm256_mul_ps(ax, ax)));
  const __m256 v = _mm256_sub_ps(one, _mm256_mul_ps(_mm256_mul_ps(e, r), t));
  return _mm256_xor_ps(v, _mm256_and_ps(sign, x));
}

inline __m256 gelu_v(__m256 x) {
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x),
                       _mm256_add_ps(_mm256_set1_ps(1.f),
                                     erf_approx_v(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678f)))));
}

// 8 floats in [0,255] (integer valued) -> 8 bytes.
inline void store_u8x8(uint8_t* dst, __m256 t) {
  const __m256i i = _mm256_cvttps_epi32(t);
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_packus_epi16(w, w));
}

}  // namespace

void epilogue_row_avx2(const Job& job, int64_t m, int64_t n0, int64_t cnt, const int32_t* acc) {
  const float* mult = job.mult + n0;
  int64_t j = 0;
  if (job.out == U8S8Output::u8) {
    uint8_t* y = static_cast<uint8_t*>(job.C) + m * job.ldc + n0;
    const __m256 zy = _mm256_set1_ps(job.zy);
    for (; j + 8 <= cnt; j += 8) {
      __m256 f = _mm256_mul_ps(
          _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j))),
          _mm256_loadu_ps(mult + j));
      f = _mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      store_u8x8(y + j, clamp_0_255_v(_mm256_add_ps(f, zy)));
    }
    for (; j < cnt; ++j) y[j] = requant_u8(acc[j], mult[j], job.zy);
    return;
  }
  float* y = static_cast<float*>(job.C) + m * job.ldc + n0;
  const float* bias = job.bias ? job.bias + n0 : nullptr;
  const float* res = job.res ? job.res + m * job.ldr + n0 : nullptr;
  const bool gelu = job.out == U8S8Output::f32_gelu;
  for (; j + 8 <= cnt; j += 8) {
    __m256 f = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j))),
        _mm256_loadu_ps(mult + j));
    if (bias) f = _mm256_add_ps(f, _mm256_loadu_ps(bias + j));
    if (gelu) f = gelu_v(f);
    if (res) f = _mm256_add_ps(_mm256_loadu_ps(res + j), f);
    _mm256_storeu_ps(y + j, f);
  }
  for (; j < cnt; ++j) {
    float f = static_cast<float>(acc[j]) * mult[j];
    if (bias) f = f + bias[j];
    if (gelu) f = gelu_scalar(f);
    y[j] = res ? res[j] + f : f;
  }
}

void gemm_avx2(const Job& job) { run_gemm<KernAvx2>(job); }

void quantize_row_avx2(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* y) {
  const __m256 sv = _mm256_set1_ps(inv_scale), zf = _mm256_set1_ps(static_cast<float>(zero_point));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    const __m256 v = _mm256_mul_ps(xv, sv);
    const __m256 q = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    store_u8x8(y + i, clamp_0_255_v(_mm256_add_ps(q, zf)));
  }
  const float zs = static_cast<float>(zero_point);
  for (; i < n; ++i) y[i] = quantize_u8(x[i], inv_scale, zs);
}

}  // namespace quench::kernels::u8s8
