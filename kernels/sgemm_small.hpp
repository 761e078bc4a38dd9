// Small fp32 GEMM for operands that sit in L1 (attention's per-(batch, head) products, e.g. 50x50x32):
//   C[M, N] = sum_k A(i, k) * B[k, j],   A(i, k) = A[i * a_rs + k * a_ks],   B row-major (ldb)
// a_rs = lda, a_ks = 1 reads A as stored; a_rs = 1, a_ks = lda reads A^T, so NN and TN need no copy
// (NT: transpose the small B first). No packing, no cache blocking, no threads: a register tile
// reads A and B in place. Every element of C is one chain of fused multiply-adds in k order starting
// from 0, so every path (ref, AVX2, AVX-512) gives the same bits, and they match sgemm's fast paths
// for K below its K-block. Paths by active_isa(): sgemm_small_avx512.cpp, sgemm_small_avx2.cpp,
// sgemm_small_ref. C is written, never read; it may not alias A or B.
#pragma once
#include <cstdint>

namespace quench::kernels {

void sgemm_small(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                 const float* B, int64_t ldb, float* C, int64_t ldc);

// Plain loops with std::fma in k order; the twin the fast paths are tested against.
void sgemm_small_ref(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks,
                     const float* B, int64_t ldb, float* C, int64_t ldc);

}  // namespace quench::kernels
