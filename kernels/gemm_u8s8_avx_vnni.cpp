// AVX-VNNI u8s8 path, for CPUs with the VEX-encoded 256-bit vpdpbusd but without AVX-512 (Alder
// Lake and later, Zen 5 desktop parts): u8 x s8, four products summed straight into int32, exact.
// A 6x16 tile: 12 ymm accumulators + 2 weight vectors + 1 broadcast fit AVX2's 16 registers.
// Weights in the vnni16 layout (per group of 4 k: 16 channels x 4 bytes, 64 bytes = 2 ymm);
// activations broadcast 4 bytes at a time, from rows packed with K zero padded to Kp (s8
// activations XOR 0x80 to u8, the +128 folded into the column-sum compensation), or read in place
// when they are u8 with K a multiple of 4. The f32 epilogue (dequantize, bias, residual) runs on the
// accumulators in registers with the same IEEE operations in the same order as the scalar and
// other paths; u8 and f32_gelu go through an int32 tile and epilogue_row_avx2.
// Compiled with -mavx2 -mfma -mavxvnni -ffp-contract=off.
#include <immintrin.h>

#include "kernels/gemm_u8s8_driver.hpp"

namespace quench::kernels::u8s8 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Lane masks for the two ymm of a tile row with ncols (1..16) valid channels.
inline void column_masks(int ncols, __m256i (&mask)[2]) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  mask[0] = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols), idx);
  mask[1] = _mm256_cmpgt_epi32(_mm256_set1_epi32(ncols - 8), idx);
}

//   s32: acc;  f32: float(acc) * mult (+ bias) (residual +).
template <int MR, U8S8Output Out>
inline void store_tile(__m256i (&acc)[MR][2], const TileOut& to, int ncols) {
  __m256i mask[2];
  column_masks(ncols, mask);
  if constexpr (Out == U8S8Output::s32) {
    int32_t* c = static_cast<int32_t*>(to.c);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
      for (int j = 0; j < 2; ++j) {
        if (ncols == 16)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * to.ldc + 8 * j), acc[r][j]);
        else
          _mm256_maskstore_epi32(c + r * to.ldc + 8 * j, mask[j], acc[r][j]);
      }
  } else {
    static_assert(Out == U8S8Output::f32);
    float* c = static_cast<float*>(to.c);
    __m256 mult[2], bias[2];
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      mult[j] = _mm256_maskload_ps(to.mult + 8 * j, mask[j]);
      bias[j] = to.bias ? _mm256_maskload_ps(to.bias + 8 * j, mask[j]) : _mm256_setzero_ps();
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
      for (int j = 0; j < 2; ++j) {
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][j]), mult[j]);
        if (to.bias) f = _mm256_add_ps(f, bias[j]);
        if (to.res) f = _mm256_add_ps(_mm256_maskload_ps(to.res + r * to.ldr + 8 * j, mask[j]), f);
        _mm256_maskstore_ps(c + r * to.ldc + 8 * j, mask[j], f);
      }
  }
}

// w: vnni16 panel, per group of 4 k: 16 channels x 4 bytes (64 bytes). a: activation rows,
// astride bytes apart.
template <int MR, U8S8Output Out>
void kernel_6x16(int64_t Kp, const uint8_t* a, int64_t astride, const uint8_t* w, const int32_t* colsum,
                 int32_t offset, const TileOut& to, int ncols) {
  __m256i acc[MR][2];
  const __m256i neg = _mm256_set1_epi32(-offset);  // start at -offset * colsum
  const __m256i c0 = _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum)), neg);
  const __m256i c1 = _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum + 8)), neg);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = c0;
    acc[r][1] = c1;
  }
  for (int64_t k = 0; k < Kp; k += 4) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + k * 16));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + k * 16 + 32));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(load_i32(a + r * astride + k));
      acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], av, b1);
    }
  }
  store_tile<MR, Out>(acc, to, ncols);
}

using KernelFn = void (*)(int64_t, const uint8_t*, int64_t, const uint8_t*, const int32_t*, int32_t,
                          const TileOut&, int);

template <U8S8Output Out>
constexpr KernelFn kKernels[6] = {kernel_6x16<1, Out>, kernel_6x16<2, Out>, kernel_6x16<3, Out>,
                                  kernel_6x16<4, Out>, kernel_6x16<5, Out>, kernel_6x16<6, Out>};

struct KernAvxVnni : VnniActivations {
  static constexpr int MR = 6, NR = 16;
  static KernelFn kernel(U8S8Output out, int mr) {
    switch (out) {
      case U8S8Output::s32: return kKernels<U8S8Output::s32>[mr - 1];
      case U8S8Output::f32: return kKernels<U8S8Output::f32>[mr - 1];
      default: return nullptr;  // u8, f32_gelu: through an int32 tile and epilogue_row_avx2
    }
  }
};

}  // namespace

void gemm_avx_vnni(const Job& job) { run_gemm<KernAvxVnni>(job); }

}  // namespace quench::kernels::u8s8
