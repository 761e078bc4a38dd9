// sgemm_small dispatch and its reference twin.
#include "kernels/sgemm_small.hpp"

#include <cmath>
#include <iterator>

#include "kernels/isa.hpp"

namespace quench::kernels {

void sgemm_small_avx2(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                      const float* B, int64_t ldb, float* C, int64_t ldc);
void sgemm_small_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                        const float* B, int64_t ldb, float* C, int64_t ldc);

using SgemmSmallFn = void (*)(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*,
                              int64_t, float*, int64_t);
// Indexed by Isa.
static const SgemmSmallFn kSgemmSmall[] = {sgemm_small_ref, sgemm_small_avx2, sgemm_small_avx2, sgemm_small_avx512,
                                                   sgemm_small_avx512};
static_assert(std::size(kSgemmSmall) == kNumIsas, "one entry per Isa");

void sgemm_small(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                 const float* B, int64_t ldb, float* C, int64_t ldc) {
  kSgemmSmall[static_cast<int>(active_isa())](M, N, K, A, a_rs, a_ks, B, ldb, C, ldc);
}

void sgemm_small_ref(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                     const float* B, int64_t ldb, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float acc = 0.f;
      for (int64_t k = 0; k < K; ++k) acc = std::fma(A[i * a_rs + k * a_ks], B[k * ldb + j], acc);
      C[i * ldc + j] = acc;
    }
}

}  // namespace quench::kernels
