// fp32 GEMM, row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
//
// op(X) is X or X^T. lda, ldb, ldc are row strides in elements of the matrices as stored (A is [M,K]
// when !trans_a, [K,M] when trans_a; B likewise). Training uses three layouts per Linear:
// forward Y = X W^T (NT), dX = dY W (NN), dW = dY^T X (TN). beta == 0 never reads C (it may hold NaN).
// Multithreaded over blocks of C; each element of C is computed by one thread in a fixed order, so
// results do not depend on the thread count (called inside a parallel_for it runs serially).
// K == 0 or alpha == 0 gives C = beta * C without reading A or B (as BLAS does). Paths by
// active_isa(): AVX-512 6x64 and AVX2 6x16 register tiles with cache blocking (sgemm_avx512.cpp,
// sgemm_avx2.cpp, loop nest in sgemm_driver.hpp), or sgemm_ref. The k-order of one element
// depends on the shape and the path, so paths differ by rounding. Throws std::invalid_argument on
// a negative size. No heap allocation per call (one packing buffer per thread, kept).
// bias (N floats, or nullptr) is added to every row in the epilogue: C = alpha op(A) op(B) + beta C
// + bias, with the bias added last, so Linear's y = x W^T + b costs no pass of its own and rounds
// exactly as a C pre-filled with the bias and beta == 1.
#pragma once
#include <cstdint>

namespace quench::kernels {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const float* bias = nullptr);

// Plain triple loop with float accumulation in k order; the twin every fast path is tested against.
void sgemm_ref(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
               int64_t ldc, const float* bias = nullptr);

}  // namespace quench::kernels
