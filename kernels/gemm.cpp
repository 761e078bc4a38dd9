// sgemm dispatch: the active ISA picks the blocked, register-tiled path (sgemm_avx512.cpp,
// sgemm_avx2.cpp) or the plain reference.
#include "kernels/gemm.hpp"

#include <iterator>
#include <stdexcept>
#include <string>

#include "kernels/isa.hpp"
#include "kernels/sgemm_impl.hpp"

namespace quench::kernels {

// Indexed by Isa; avx_vnni runs the AVX2 code and avx512_vnni the AVX-512 code (VNNI adds nothing for fp32).
static const SgemmFn kSgemm[] = {sgemm_ref, sgemm_avx2, sgemm_avx2, sgemm_avx512, sgemm_avx512};
static_assert(std::size(kSgemm) == kNumIsas, "one entry per Isa");

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const float* bias) {
  if (M < 0 || N < 0 || K < 0)
    throw std::invalid_argument("sgemm: negative size M=" + std::to_string(M) + " N=" +
                                std::to_string(N) + " K=" + std::to_string(K) +
                                "; expected M, N, K >= 0");
  kSgemm[static_cast<int>(active_isa())](trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                         ldc, bias);
}

}  // namespace quench::kernels
