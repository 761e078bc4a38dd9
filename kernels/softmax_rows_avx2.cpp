// attn_softmax_rows, AVX2 path: rows of up to 64 keys held in ymm pairs (one pair per 16 keys, the
// lanes past n masked off), the float sums in two ymm (lanes 0-7 and 8-15 of each 16), exp_approx's
// operations one for one; longer rows run the plain loops (softmax_rows_scalar.hpp).
// Compiled with the avx2 flags (FMA included, and only where written): the same bits as the reference.
#include <immintrin.h>

#include <cstdint>
#include <limits>

#include "kernels/exp_approx_simd.hpp"

#include "kernels/softmax_rows_scalar.hpp"

namespace quench::kernels {
namespace {

// exp_approx_simd's vector type for 8 lanes.
struct Ps8 {
  using reg = __m256;
  static reg set1(float v) { return _mm256_set1_ps(v); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  // p * 2^n with 2^n built from t's bits: ((bits(t) - 0x4B400000 + 127) << 23) as a float.
  static reg times_pow2(reg p, reg, reg t) {
    const __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23)));
  }
  static reg zero_below(reg x, reg c, reg e) {
    return _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(x, c, _CMP_LT_OQ));
  }
};
__m256 exp8(__m256 x) { return exp_approx_simd<Ps8>(x); }

// a[0], a[1] hold lanes 0-7, 8-15; folded as l + 8, l + 4, l + 2, l + 1 (srows::tree_sum).
float tree_sum(const __m256* a) {
  const __m256 s8 = _mm256_add_ps(a[0], a[1]);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

// m[0], m[1] hold lanes 0-7, 8-15; folded by m = hi > m ? hi : m (srows::max_of).
float tree_max(__m256 lo, __m256 hi) {
  const __m256 m8 = _mm256_max_ps(hi, lo);
  const __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m8, 1), _mm256_castps256_ps128(m8));
  const __m128 m2 = _mm_max_ps(_mm_movehl_ps(m4, m4), m4);
  return _mm_cvtss_f32(_mm_max_ss(_mm_movehdup_ps(m2), m2));
}

constexpr int kMaxVec = 8;  // 64 keys

// The first `cnt` (1..8) floats at p, zeros after; and the store of the first cnt lanes. Whole vectors
// use plain loads and stores, a row's tail goes through a small buffer: AMD's vmaskmovps store is
// microcoded and slow.
__m256 load_part(const float* p, int cnt) {
  if (cnt == 8) return _mm256_loadu_ps(p);
  alignas(32) float b[8] = {};
  for (int l = 0; l < cnt; ++l) b[l] = p[l];
  return _mm256_load_ps(b);
}
void store_part(float* p, __m256 v, int cnt) {
  if (cnt == 8) return _mm256_storeu_ps(p, v);
  alignas(32) float b[8];
  _mm256_store_ps(b, v);
  for (int l = 0; l < cnt; ++l) p[l] = b[l];
}

// Rows of n <= 8 * NV held in NV ymm from load to store.
template <int NV>
void rows_in_registers(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y) {
  const __m256 vs = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int cnt[NV];      // lanes < n (loads, stores)
  __m256 out[NV];   // lanes to set to -inf: past n, or a masked key
  __m256 on[NV];    // lanes < n, as float bit masks
  for (int v = 0; v < NV; ++v) {
    alignas(32) int32_t lanes[8], off[8];
    for (int l = 0; l < 8; ++l) {
      const int64_t j = 8 * v + l;
      lanes[l] = j < n ? -1 : 0;
      off[l] = j >= n || (mask && mask[j]) ? -1 : 0;
    }
    cnt[v] = static_cast<int>(n - 8 * v < 8 ? n - 8 * v : 8);
    out[v] = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(off)));
    on[v] = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(lanes)));
  }
  for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
    __m256 t[NV];
    __m256 m[2] = {ninf, ninf};
    for (int v = 0; v < NV; ++v) {
      t[v] = _mm256_blendv_ps(_mm256_mul_ps(load_part(x + 8 * v, cnt[v]), vs), ninf, out[v]);
      m[v % 2] = _mm256_max_ps(t[v], m[v % 2]);
    }
    const __m256 vm = _mm256_set1_ps(tree_max(m[0], m[1]));
    __m256 a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int v = 0; v < NV; ++v) {
      t[v] = exp8(_mm256_sub_ps(t[v], vm));
      a[v % 2] = _mm256_add_ps(a[v % 2], _mm256_and_ps(t[v], on[v]));  // +0 in the lanes past n
    }
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / static_cast<double>(tree_sum(a))));
    for (int v = 0; v < NV; ++v) store_part(y + 8 * v, _mm256_mul_ps(t[v], inv), cnt[v]);
  }
}

template <int NV>
void rows_backward_in_registers(const float* y, const float* g, int64_t rows, int64_t n, float scale, float* dx) {
  const __m256 vs = _mm256_set1_ps(scale);
  int cnt[NV];
  for (int v = 0; v < NV; ++v) cnt[v] = static_cast<int>(n - 8 * v < 8 ? n - 8 * v : 8);
  for (int64_t r = 0; r < rows; ++r, y += n, g += n, dx += n) {
    __m256 yv[NV], gv[NV];
    __m256 a[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int v = 0; v < NV; ++v) {
      yv[v] = load_part(y + 8 * v, cnt[v]);  // zeros past n: their products add +0
      gv[v] = load_part(g + 8 * v, cnt[v]);
      a[v % 2] = _mm256_add_ps(a[v % 2], _mm256_mul_ps(gv[v], yv[v]));
    }
    const __m256 dot = _mm256_set1_ps(tree_sum(a));
    for (int v = 0; v < NV; ++v)
      store_part(dx + 8 * v, _mm256_mul_ps(_mm256_mul_ps(yv[v], _mm256_sub_ps(gv[v], dot)), vs), cnt[v]);
  }
}

using RowsFn = void (*)(const float*, int64_t, int64_t, float, const uint8_t*, float*);
using RowsBackwardFn = void (*)(const float*, const float*, int64_t, int64_t, float, float*);
// Indexed by the number of ymm a row needs, 1..8.
constexpr RowsFn kInRegisters[kMaxVec] = {rows_in_registers<1>, rows_in_registers<2>, rows_in_registers<3>,
                                          rows_in_registers<4>, rows_in_registers<5>, rows_in_registers<6>,
                                          rows_in_registers<7>, rows_in_registers<8>};
constexpr RowsBackwardFn kBackwardInRegisters[kMaxVec] = {
    rows_backward_in_registers<1>, rows_backward_in_registers<2>, rows_backward_in_registers<3>,
    rows_backward_in_registers<4>, rows_backward_in_registers<5>, rows_backward_in_registers<6>,
    rows_backward_in_registers<7>, rows_backward_in_registers<8>};

}  // namespace

void attn_softmax_rows_avx2(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y) {
  if (n > 0 && n <= 8 * kMaxVec) return kInRegisters[(n - 1) / 8](x, rows, n, scale, mask, y);
  srows::softmax_rows(x, rows, n, scale, mask, y);
}
void attn_softmax_rows_backward_avx2(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                     float* dx) {
  if (n > 0 && n <= 8 * kMaxVec) return kBackwardInRegisters[(n - 1) / 8](y, g, rows, n, scale, dx);
  srows::softmax_rows_backward(y, g, rows, n, scale, dx);
}

}  // namespace quench::kernels
