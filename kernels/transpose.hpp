// Transposes a small fp32 block: t[c * ldt + r] = x[r * ldx + c] for r < rows, c < cols. Attention
// copies a head's keys (and, in the backward, values) into [hd, N] this way, so that a product can
// read them as a row-major B; the rows are 3D floats apart, one strided element per scalar copy.
// Paths by active_isa(): 8 x 8 blocks in ymm registers (transpose_avx2.cpp) with plain loops at the
// edges, or transpose_f32_ref. A copy: every path gives the same bits. t may not alias x.
#pragma once
#include <cstdint>

namespace quench::kernels {

void transpose_f32(int64_t rows, int64_t cols, const float* x, int64_t ldx, float* t, int64_t ldt);

// Plain loops, the twin the fast path is tested against.
void transpose_f32_ref(int64_t rows, int64_t cols, const float* x, int64_t ldx, float* t, int64_t ldt);

}  // namespace quench::kernels
