// transpose_f32 dispatch and its reference twin.
#include "kernels/transpose.hpp"

#include "kernels/isa.hpp"

namespace quench::kernels {

void transpose_f32_avx2(int64_t rows, int64_t cols, const float* x, int64_t ldx, float* t, int64_t ldt);

void transpose_f32(int64_t rows, int64_t cols, const float* x, int64_t ldx, float* t, int64_t ldt) {
  if (active_isa() >= Isa::avx2)
    transpose_f32_avx2(rows, cols, x, ldx, t, ldt);
  else
    transpose_f32_ref(rows, cols, x, ldx, t, ldt);
}

void transpose_f32_ref(int64_t rows, int64_t cols, const float* x, int64_t ldx, float* t, int64_t ldt) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * ldt + r] = x[r * ldx + c];
}

}  // namespace quench::kernels
