// sgemm_small, AVX2 path: up to 12 rows x 1 ymm, 6 x 2, 4 x 3 or 3 x 4 of C in registers (12
// accumulators of 16 ymm), the last vector of a row masked. Compiled with the avx2 flags.
#include <immintrin.h>

#include "kernels/sgemm_small_impl.hpp"

namespace quench::kernels {
namespace {

struct Vec256 {
  using reg = __m256;
  static constexpr int kW = 8, kAcc = 12;
  static __m256i mask(int lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg load(const float* p, int lanes) {
    return lanes == kW ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, mask(lanes));
  }
  static void store(float* p, reg x, int lanes) {
    if (lanes == kW)
      _mm256_storeu_ps(p, x);
    else
      _mm256_maskstore_ps(p, mask(lanes), x);
  }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg from(reg x) { return x; }
};

}  // namespace

void sgemm_small_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                      const float* B, int64_t ldb, float* C, int64_t ldc) {
  small::run<Vec256>(M, N, K, A, a_rs, a_ks, B, ldb, C, ldc);
}

}  // namespace quench::kernels
