// transpose_f32, AVX2 path: 8 x 8 blocks through registers (unpack rows in pairs, shuffle in
// fours, swap 128-bit halves), the rows and columns past the last whole block by plain loops.
// Compiled with the avx2 flags.
#include <immintrin.h>

#include <cstdint>

namespace quench::kernels {
namespace {

// t[c * ldt + r] = x[r * ldx + c] for an 8 x 8 block.
inline void block8(const float* x, int64_t ldx, float* t, int64_t ldt) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(x + i * ldx);
  // Rows in pairs: [a0 b0 a1 b1 | a4 b4 a5 b5] and [a2 b2 a3 b3 | a6 b6 a7 b7].
  __m256 p[8];
  for (int i = 0; i < 4; ++i) {
    p[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    p[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // Four rows of columns j and j + 4: q[0] = columns 0|4, q[1] = 1|5, q[2] = 2|6, q[3] = 3|7 (rows
  // 0-3), q[4..7] the same for rows 4-7.
  __m256 q[8];
  for (int h = 0; h < 2; ++h) {
    q[4 * h + 0] = _mm256_shuffle_ps(p[4 * h], p[4 * h + 2], 0x44);
    q[4 * h + 1] = _mm256_shuffle_ps(p[4 * h], p[4 * h + 2], 0xEE);
    q[4 * h + 2] = _mm256_shuffle_ps(p[4 * h + 1], p[4 * h + 3], 0x44);
    q[4 * h + 3] = _mm256_shuffle_ps(p[4 * h + 1], p[4 * h + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(t + j * ldt, _mm256_permute2f128_ps(q[j], q[4 + j], 0x20));
    _mm256_storeu_ps(t + (j + 4) * ldt, _mm256_permute2f128_ps(q[j], q[4 + j], 0x31));
  }
}

}  // namespace

void transpose_f32_avx2(int64_t rows, int64_t cols, const float* x, int64_t ldx, float* t, int64_t ldt) {
  const int64_t rb = rows / 8 * 8, cb = cols / 8 * 8;
  for (int64_t r = 0; r < rb; r += 8)
    for (int64_t c = 0; c < cb; c += 8) block8(x + r * ldx + c, ldx, t + c * ldt + r, ldt);
  for (int64_t r = 0; r < rb; ++r)
    for (int64_t c = cb; c < cols; ++c) t[c * ldt + r] = x[r * ldx + c];
  for (int64_t r = rb; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * ldt + r] = x[r * ldx + c];
}

}  // namespace quench::kernels
