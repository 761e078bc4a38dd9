// AVX-512 VNNI u8s8 path: vpdpbusd (u8 x s8, four products summed straight into int32: exact) on a
// 6x64 tile, 24 zmm accumulators; weights in the vnni layout, activations broadcast 4 bytes at a
// time from rows packed with K zero padded to Kp (s8 activations XOR 0x80 to u8, the +128 folded
// into the column-sum compensation). Compiled with -mavx512f/bw/vl/dq -mavx512vnni
// -ffp-contract=off.
#include <immintrin.h>

#include "kernels/gemm_u8s8_driver.hpp"

namespace quench::kernels::u8s8 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// w: vnni panel, per group of 4 k: 64 channels x 4 bytes (256 bytes).
// a: activation rows, astride bytes apart.
template <int MR>
void kernel_6x64(int64_t Kp, const uint8_t* a, int64_t astride, const uint8_t* w,
                 const int32_t* colsum, int32_t offset, int32_t* out, int64_t ldo, int ncols) {
  // Fetch the C lines this tile writes (for ownership) while the k loop runs: at small K the
  // read-for-ownership of C is otherwise exposed at the stores.
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 4; ++j) __builtin_prefetch(out + r * ldo + 16 * j, 1, 3);
  __m512i acc[MR][4];
  const __m512i neg = _mm512_set1_epi32(-offset);  // start at -offset * colsum
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const __m512i c = _mm512_mullo_epi32(_mm512_loadu_si512(colsum + 16 * j), neg);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][j] = c;
  }
  for (int64_t k = 0; k < Kp; k += 4) {
    const uint8_t* wk = w + k * 64;
    const __m512i b0 = _mm512_load_si512(wk);
    const __m512i b1 = _mm512_load_si512(wk + 64);
    const __m512i b2 = _mm512_load_si512(wk + 128);
    const __m512i b3 = _mm512_load_si512(wk + 192);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(load_i32(a + r * astride + k));
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
      acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], av, b2);
      acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], av, b3);
    }
  }
  if (ncols == 64) {  // full tiles: plain stores
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < 4; ++j) _mm512_storeu_si512(out + r * ldo + 16 * j, acc[r][j]);
    return;
  }
  __mmask16 mask[4];
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const int left = std::clamp(ncols - 16 * j, 0, 16);
    mask[j] = static_cast<__mmask16>((1u << left) - 1u);
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 4; ++j)
      _mm512_mask_storeu_epi32(out + r * ldo + 16 * j, mask[j], acc[r][j]);
}

// One or two rows: a k step has too few independent vpdpbusd to cover its latency, so KU sets of
// accumulators take turns over the k steps and are added at the end (int32 wraparound addition is
// associative: the sum is the same bits).
template <int MR>
void kernel_small_x64(int64_t Kp, const uint8_t* a, int64_t astride, const uint8_t* w,
                      const int32_t* colsum, int32_t offset, int32_t* out, int64_t ldo, int ncols) {
  constexpr int KU = MR == 1 ? 4 : 2;
  __m512i acc[KU][MR][4];
  const __m512i neg = _mm512_set1_epi32(-offset);
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const __m512i c = _mm512_mullo_epi32(_mm512_loadu_si512(colsum + 16 * j), neg);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      acc[0][r][j] = c;
#pragma GCC unroll 8
      for (int u = 1; u < KU; ++u) acc[u][r][j] = _mm512_setzero_si512();
    }
  }
  int64_t k = 0;
  for (; k + 4 * KU <= Kp; k += 4 * KU) {
#pragma GCC unroll 8
    for (int u = 0; u < KU; ++u) {
      const uint8_t* wk = w + (k + 4 * u) * 64;
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512i av = _mm512_set1_epi32(load_i32(a + r * astride + k + 4 * u));
#pragma GCC unroll 8
        for (int j = 0; j < 4; ++j)
          acc[u][r][j] = _mm512_dpbusd_epi32(acc[u][r][j], av, _mm512_load_si512(wk + 64 * j));
      }
    }
  }
  for (; k < Kp; k += 4) {
    const uint8_t* wk = w + k * 64;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(load_i32(a + r * astride + k));
#pragma GCC unroll 8
      for (int j = 0; j < 4; ++j)
        acc[0][r][j] = _mm512_dpbusd_epi32(acc[0][r][j], av, _mm512_load_si512(wk + 64 * j));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 4; ++j) {
#pragma GCC unroll 8
      for (int u = 1; u < KU; ++u) acc[0][r][j] = _mm512_add_epi32(acc[0][r][j], acc[u][r][j]);
      const int left = std::clamp(ncols - 16 * j, 0, 16);
      _mm512_mask_storeu_epi32(out + r * ldo + 16 * j, static_cast<__mmask16>((1u << left) - 1u),
                               acc[0][r][j]);
    }
}

struct KernVnni {
  static constexpr int MR = 6, NR = 64, AElem = 1;
  using Fn = void (*)(int64_t, const uint8_t*, int64_t, const uint8_t*, const int32_t*, int32_t,
                      int32_t*, int64_t, int);
  static constexpr Fn kernels[MR] = {kernel_small_x64<1>, kernel_small_x64<2>, kernel_6x64<3>,
                                     kernel_6x64<4>,      kernel_6x64<5>,      kernel_6x64<6>};
  // vpdpbusd wants u8 activations: s8 ones are stored as a + 128, so 128 more column sums come off.
  static int32_t offset(const Job& job) { return job.za + (job.a_signed ? 128 : 0); }
  static bool direct(const Job& job) { return !job.a_signed && job.K % 4 == 0; }
  static void pack_a(const Job& job, int64_t m0, int64_t rows, uint8_t* dst, int64_t stride) {
    const int64_t K = job.K, Kp = job.W->Kp;
    const uint8_t flip = job.a_signed ? 0x80 : 0;
    for (int64_t i = 0; i < rows; ++i) {
      const uint8_t* src = job.A + (m0 + i) * job.lda;
      uint8_t* d = dst + i * stride;
      for (int64_t k = 0; k < K; ++k) d[k] = src[k] ^ flip;
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    }
  }
};

}  // namespace

void gemm_vnni(const Job& job) { run_gemm<KernVnni>(job); }

}  // namespace quench::kernels::u8s8
