// sgemm_small, AVX-512 path: up to 12 rows x 2 zmm or 6 rows x 4 zmm of C in registers, the last
// vector of a row masked, and an xmm when it holds at most 4 lanes (N = 50 is 3 zmm + 2 lanes).
// Compiled with the avx512 flags.
#include <immintrin.h>

#include "kernels/sgemm_small_impl.hpp"

namespace quench::kernels {
namespace {

// The low 4 lanes of a zmm as an xmm: a last vector of 1-4 columns.
struct Vec128 {
  using reg = __m128;
  static constexpr int kW = 4;
  static __mmask8 mask(int lanes) { return static_cast<__mmask8>((1u << lanes) - 1u); }
  static reg zero() { return _mm_setzero_ps(); }
  static reg from(__m512 x) { return _mm512_castps512_ps128(x); }
  static reg load(const float* p, int lanes) {
    return lanes == kW ? _mm_loadu_ps(p) : _mm_maskz_loadu_ps(mask(lanes), p);
  }
  static void store(float* p, reg x, int lanes) {
    if (lanes == kW)
      _mm_storeu_ps(p, x);
    else
      _mm_mask_storeu_ps(p, mask(lanes), x);
  }
  static reg fma(reg a, reg b, reg c) { return _mm_fmadd_ps(a, b, c); }
};

struct Vec512 {
  using reg = __m512;
  using Narrow = Vec128;
  static constexpr int kW = 16, kAcc = 24;
  static __mmask16 mask(int lanes) { return static_cast<__mmask16>((1u << lanes) - 1u); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg load(const float* p, int lanes) {
    return lanes == kW ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask(lanes), p);
  }
  static void store(float* p, reg x, int lanes) {
    if (lanes == kW)
      _mm512_storeu_ps(p, x);
    else
      _mm512_mask_storeu_ps(p, mask(lanes), x);
  }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg from(reg x) { return x; }
};

}  // namespace

void sgemm_small_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                        const float* B, int64_t ldb, float* C, int64_t ldc) {
  small::run<Vec512>(M, N, K, A, a_rs, a_ks, B, ldb, C, ldc);
}

}  // namespace quench::kernels
