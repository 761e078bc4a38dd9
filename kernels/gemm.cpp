// Placeholder dispatch: the blocked, register-tiled kernels replace this body (issue 3).
#include "kernels/gemm.hpp"

#include "kernels/parallel.hpp"

namespace quench::kernels {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  parallel_for(M, 16, [&](int64_t b, int64_t e) {
    const float* Ab = trans_a ? A + b : A + b * lda;
    sgemm_ref(trans_a, trans_b, e - b, N, K, alpha, Ab, lda, B, ldb, beta, C + b * ldc, ldc);
  });
}

}  // namespace quench::kernels
