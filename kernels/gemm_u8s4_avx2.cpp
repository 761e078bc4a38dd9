// AVX2 u8s4 path, exact: activations widened to int16, weights unpacked from nibbles to int16 in
// registers, products summed in pairs by vpmaddwd into int32 (no saturating vpmaddubsw). One ymm
// load of the avx2 layout holds 16 channels x 4 k; four arithmetic shifts of its 16-bit lanes give
// the four int16-pair vectors vpmaddwd reads (channels 0-7 / 8-15 x k pairs (0,1) / (2,3)):
//   V_i = (P << (12 - 4i)) >>arith 12,   i = 0..3  (the nibble sign-extended)
// A 4x16 tile: 8 accumulators + 4 weight vectors + the load + 2 broadcasts fit the 16 ymm
// registers. Per group the float sums live beside the accumulators (spilled at each group's end
// if the compiler must, once per group). Also serves the avx512 level (AVX-512 without VNNI).
// Compiled with -mavx2 -mfma -ffp-contract=off.
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_u8s4_driver.hpp"

namespace quench::kernels::u8s4 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Lane masks of a 16-channel tile with ncols valid: half j covers channels 8j .. 8j+7.
inline __m256i lane_mask(int ncols, int j) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8 * j), idx);
}

inline __m256 maskload(const float* p, __m256i mk) { return _mm256_maskload_ps(p, mk); }

template <int MR, bool GROUPED, U8S4Output Out>
void kernel(const Job& job, const Tile& t) {
  const PackedWeightsU8S4& W = *job.W;
  const int64_t Kp = W.Kp, G = W.group_k, ng = GROUPED ? W.num_groups : 1;
  const __m256i mk[2] = {lane_mask(t.ncols, 0), lane_mask(t.ncols, 1)};
  const bool full = t.ncols == 16;  // plain stores: vmaskmov stores are slow on AMD cores
  __m256i acc[MR][2];
  __m256 y[MR][2];
  for (int64_t g = 0; g < ng; ++g) {
    const int32_t* cs = t.cs + g * W.nr;
#pragma GCC unroll 8
    for (int j = 0; j < 2; ++j) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cs + 8 * j));
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) acc[r][j] = _mm256_mullo_epi32(c, _mm256_set1_epi32(-t.off[t.uniform ? 0 : r]));
    }
    const int64_t k1 = std::min(Kp, (g + 1) * G);
    for (int64_t k = g * G; k < k1; k += 4) {
      const __m256i P = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.w + k * 8));
      const __m256i v0 = _mm256_srai_epi16(_mm256_slli_epi16(P, 12), 12);
      const __m256i v1 = _mm256_srai_epi16(_mm256_slli_epi16(P, 8), 12);
      const __m256i v2 = _mm256_srai_epi16(_mm256_slli_epi16(P, 4), 12);
      const __m256i v3 = _mm256_srai_epi16(P, 12);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const uint8_t* a = t.a + r * t.astride + k * 2;
        const __m256i a01 = _mm256_set1_epi32(load_i32(a));
        const __m256i a23 = _mm256_set1_epi32(load_i32(a + 4));
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a01, v0));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a01, v1));
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a23, v2));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a23, v3));
      }
    }
    if constexpr (Out == U8S4Output::s32) {
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < 2; ++j) {
          int32_t* c = static_cast<int32_t*>(job.C) + (t.m0 + r) * job.ldc + t.n0 + 8 * j;
          if (full) _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), acc[r][j]);
          else _mm256_maskstore_epi32(c, mk[j], acc[r][j]);
        }
      return;
    } else {
#pragma GCC unroll 8
      for (int j = 0; j < 2; ++j) {
        const int64_t idx = g * job.N + t.n0 + 8 * j;
        const __m256 tab = maskload(job.ass ? job.ws + idx : job.mult + idx, mk[j]);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
          const __m256 mult = job.ass ? _mm256_mul_ps(_mm256_set1_ps(job.ass[t.m0 + r]), tab) : tab;
          const __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][j]), mult);
          y[r][j] = g == 0 ? p : _mm256_add_ps(y[r][j], p);
        }
      }
    }
  }
  if constexpr (Out == U8S4Output::f32) {
#pragma GCC unroll 8
    for (int j = 0; j < 2; ++j) {
      const int64_t n = t.n0 + 8 * j;
      const __m256 b = job.bias ? maskload(job.bias + n, mk[j]) : _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        __m256 f = y[r][j];
        if (job.bias) f = _mm256_add_ps(f, b);
        if (job.res) f = _mm256_add_ps(maskload(job.res + (t.m0 + r) * job.ldr + n, mk[j]), f);
        float* c = static_cast<float*>(job.C) + (t.m0 + r) * job.ldc + n;
        if (full) _mm256_storeu_ps(c, f);
        else _mm256_maskstore_ps(c, mk[j], f);
      }
    }
  }
}

using KernelFn = void (*)(const Job&, const Tile&);

template <bool GROUPED, U8S4Output Out>
constexpr KernelFn kKernels[4] = {kernel<1, GROUPED, Out>, kernel<2, GROUPED, Out>, kernel<3, GROUPED, Out>,
                                  kernel<4, GROUPED, Out>};

struct KernAvx2 {
  static constexpr int MR = 4, NR = 16, AElem = 2;
  static int rows(const Job&) { return MR; }
  static int tile_cols(const Job&) { return 16; }
  static KernelFn kernel(const Job& job, int mr) {
    if (job.out == U8S4Output::s32) return kKernels<false, U8S4Output::s32>[mr - 1];
    return job.W->num_groups > 1 ? kKernels<true, U8S4Output::f32>[mr - 1] : kKernels<false, U8S4Output::f32>[mr - 1];
  }
  // int16 is signed, so s8 activations widen as they are: only the zero point is folded.
  static int32_t offset(const Job& job, int64_t m) { return job.zero_point(m); }
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

}  // namespace

void gemm_avx2(const Job& job) { run_gemm<KernAvx2>(job); }

}  // namespace quench::kernels::u8s4
