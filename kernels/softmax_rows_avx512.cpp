// attn_softmax_rows, AVX-512 path: 16 keys per zmm with the row's tail masked (N = 50 is 3 zmm + 2
// lanes; rows of up to 256 keys stay in registers), the float sums in one zmm (element j in lane j % 16), exp_approx's
// operations (FMAs included) one for one. Compiled with the avx512 flags.
#include "kernels/avx512_common.hpp"

#include <cstdint>
#include <limits>

#include "kernels/exp_approx_simd.hpp"

namespace quench::kernels {
namespace {

// exp_approx_simd's vector type for 16 lanes.
struct Ps16 {
  using reg = __m512;
  static reg set1(float v) { return _mm512_set1_ps(v); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  // vscalefps: p * 2^n in one instruction and one rounding, as the product with the power of two
  // (a normal number for n >= -126) rounds once.
  static reg times_pow2(reg p, reg n, reg) { return _mm512_scalef_ps(p, n); }
  static reg zero_below(reg x, reg c, reg e) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, c, _CMP_LT_OQ), e, _mm512_setzero_ps());
  }
};
__m512 exp16(__m512 x) { return exp_approx_simd<Ps16>(x); }

// Lanes of 16 folded as l + 8, l + 4, l + 2, l + 1 (srows::tree_sum).
float tree_sum(__m512 a) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// Lanes of 16 folded by m = hi > m ? hi : m (srows::max_of).
float tree_max(__m512 m) {
  const __m256 m8 = _mm256_max_ps(_mm512_extractf32x8_ps(m, 1), _mm512_castps512_ps256(m));
  const __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m8, 1), _mm256_castps256_ps128(m8));
  const __m128 m2 = _mm_max_ps(_mm_movehl_ps(m4, m4), m4);
  return _mm_cvtss_f32(_mm_max_ss(_mm_movehdup_ps(m2), m2));
}

// R rows (of n floats each, contiguous) of rows_in_registers, interleaved. kMask: some keys are
// masked (km), else km is all zero and its blends are left out.
template <int NC, int R, bool kMask>
__attribute__((always_inline)) inline void row_pair(const float* x, int64_t n, __m512 vs, __m512 ninf,
                                                    const __mmask16* k, const __mmask16* km, float* y) {
  __m512 t[R][NC];
  __m512 m[R];
  for (int i = 0; i < R; ++i) m[i] = ninf;
  for (int c = 0; c < NC; ++c)
    for (int i = 0; i < R; ++i) {
      t[i][c] = _mm512_mul_ps(_mm512_maskz_loadu_ps(k[c], x + i * n + 16 * c), vs);
      if constexpr (kMask) t[i][c] = _mm512_mask_blend_ps(km[c], t[i][c], ninf);
      m[i] = _mm512_mask_max_ps(m[i], k[c], t[i][c], m[i]);
    }
  __m512 vm[R], a[R];
  for (int i = 0; i < R; ++i) {
    vm[i] = _mm512_set1_ps(tree_max(m[i]));
    a[i] = _mm512_setzero_ps();
  }
  for (int c = 0; c < NC; ++c)
    for (int i = 0; i < R; ++i) {
      t[i][c] = exp16(_mm512_sub_ps(t[i][c], vm[i]));
      a[i] = _mm512_mask_add_ps(a[i], k[c], a[i], t[i][c]);
    }
  for (int i = 0; i < R; ++i) {
    const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / static_cast<double>(tree_sum(a[i]))));
    for (int c = 0; c < NC; ++c) _mm512_mask_storeu_ps(y + i * n + 16 * c, k[c], _mm512_mul_ps(t[i][c], inv));
  }
}

// Rows of n <= 16 * NC held in NC registers from load to store: nothing goes through memory between
// the passes (a masked store does not forward to the load after it), and rows overlap in the core.
template <int NC>
void rows_in_registers(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y) {
  const __m512 vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __mmask16 k[NC], km[NC];
  for (int c = 0; c < NC; ++c) {
    k[c] = tail(n - 16 * c);
    km[c] = 0;
    if (mask) {
      const __m512i mb = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k[c], mask + 16 * c));
      km[c] = _mm512_test_epi32_mask(mb, mb);
    }
  }
  // Two rows at a time: each row is one long dependency chain (max, exp, sum, reciprocal), so two
  // side by side keep the core busy; past 8 registers a row (128 keys) one row fills the file.
  constexpr int R = NC <= 8 ? 2 : 1;
  int64_t r = 0;
  if (mask) {
    for (; r + R <= rows; r += R, x += R * n, y += R * n) row_pair<NC, R, true>(x, n, vs, ninf, k, km, y);
    if (r < rows) row_pair<NC, 1, true>(x, n, vs, ninf, k, km, y);
  } else {
    for (; r + R <= rows; r += R, x += R * n, y += R * n) row_pair<NC, R, false>(x, n, vs, ninf, k, km, y);
    if (r < rows) row_pair<NC, 1, false>(x, n, vs, ninf, k, km, y);
  }
}

template <int NC>
void rows_backward_in_registers(const float* y, const float* g, int64_t rows, int64_t n, float scale, float* dx) {
  const __m512 vs = _mm512_set1_ps(scale);
  __mmask16 k[NC];
  for (int c = 0; c < NC; ++c) k[c] = tail(n - 16 * c);
  for (int64_t r = 0; r < rows; ++r, y += n, g += n, dx += n) {
    __m512 yv[NC], gv[NC];
    __m512 a = _mm512_setzero_ps();
    for (int c = 0; c < NC; ++c) {
      yv[c] = _mm512_maskz_loadu_ps(k[c], y + 16 * c);
      gv[c] = _mm512_maskz_loadu_ps(k[c], g + 16 * c);
      a = _mm512_mask_add_ps(a, k[c], a, _mm512_mul_ps(gv[c], yv[c]));
    }
    const __m512 dot = _mm512_set1_ps(tree_sum(a));
    for (int c = 0; c < NC; ++c)
      _mm512_mask_storeu_ps(dx + 16 * c, k[c], _mm512_mul_ps(_mm512_mul_ps(yv[c], _mm512_sub_ps(gv[c], dot)), vs));
  }
}

using RowsFn = void (*)(const float*, int64_t, int64_t, float, const uint8_t*, float*);
using RowsBackwardFn = void (*)(const float*, const float*, int64_t, int64_t, float, float*);
// Indexed by the number of zmm a row needs: 1..16 forward (up to 256 keys: a BERT's sequence),
// 1..4 backward.
constexpr RowsFn kInRegisters[16] = {
    rows_in_registers<1>,  rows_in_registers<2>,  rows_in_registers<3>,  rows_in_registers<4>,
    rows_in_registers<5>,  rows_in_registers<6>,  rows_in_registers<7>,  rows_in_registers<8>,
    rows_in_registers<9>,  rows_in_registers<10>, rows_in_registers<11>, rows_in_registers<12>,
    rows_in_registers<13>, rows_in_registers<14>, rows_in_registers<15>, rows_in_registers<16>};
constexpr RowsBackwardFn kBackwardInRegisters[4] = {rows_backward_in_registers<1>, rows_backward_in_registers<2>,
                                                    rows_backward_in_registers<3>, rows_backward_in_registers<4>};

}  // namespace

void attn_softmax_rows_avx512(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask,
                              float* y) {
  if (n > 0 && n <= 256) return kInRegisters[(n - 1) / 16](x, rows, n, scale, mask, y);
  const __m512 vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
    __m512 m = ninf;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail(n - j);
      __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + j), vs);
      if (mask) {
        const __m512i mb = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, mask + j));
        t = _mm512_mask_blend_ps(_mm512_test_epi32_mask(mb, mb), t, ninf);
      }
      m = _mm512_mask_max_ps(m, k, t, m);
      _mm512_mask_storeu_ps(y + j, k, t);
    }
    const __m512 vm = _mm512_set1_ps(tree_max(m));
    __m512 a = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail(n - j);
      const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, y + j), vm));
      _mm512_mask_storeu_ps(y + j, k, e);
      a = _mm512_mask_add_ps(a, k, a, e);
    }
    const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / static_cast<double>(tree_sum(a))));
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail(n - j);
      _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j), inv));
    }
  }
}

void attn_softmax_rows_backward_avx512(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                       float* dx) {
  if (n > 0 && n <= 64) return kBackwardInRegisters[(n - 1) / 16](y, g, rows, n, scale, dx);
  const __m512 vs = _mm512_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r, y += n, g += n, dx += n) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail(n - j);
      const __m512 yv = _mm512_maskz_loadu_ps(k, y + j), gv = _mm512_maskz_loadu_ps(k, g + j);
      a = _mm512_mask_add_ps(a, k, a, _mm512_mul_ps(gv, yv));
    }
    const __m512 dot = _mm512_set1_ps(tree_sum(a));
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 k = tail(n - j);
      const __m512 yv = _mm512_maskz_loadu_ps(k, y + j), gv = _mm512_maskz_loadu_ps(k, g + j);
      _mm512_mask_storeu_ps(dx + j, k, _mm512_mul_ps(_mm512_mul_ps(yv, _mm512_sub_ps(gv, dot)), vs));
    }
  }
}

}  // namespace quench::kernels
