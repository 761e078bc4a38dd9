// AVX-512 VNNI u8s8 path: vpdpbusd (u8 x s8, four products summed straight into int32: exact) on a
// 6x64 tile, 24 zmm accumulators; weights in the vnni layout, activations broadcast 4 bytes at a
// time from rows packed with K zero padded to Kp (s8 activations XOR 0x80 to u8, the +128 folded
// into the column-sum compensation). The f32 and u8 epilogues run on the accumulators in
// registers (the int32 tile never goes to memory), the same IEEE operations in the same order as
// the scalar and ymm epilogues; f32_gelu goes through epilogue_row_avx2. Also the zmm row
// quantizer. Compiled with -mavx512f/bw/vl/dq -mavx512vnni -ffp-contract=off.
#include <immintrin.h>

#include "kernels/gemm_u8s8_driver.hpp"

namespace quench::kernels::u8s8 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

constexpr int64_t out_bytes(U8S8Output out) { return out == U8S8Output::u8 ? 1 : 4; }

// Column masks of a tile with ncols valid channels: 16 per zmm.
inline void column_masks(int ncols, __mmask16 (&mask)[4]) {
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const int left = std::clamp(ncols - 16 * j, 0, 16);
    mask[j] = static_cast<__mmask16>((1u << left) - 1u);
  }
}

// Leaves an MR x 64 tile of accumulators through the Out epilogue (gemm_u8s8.hpp):
//   s32: acc;  f32: float(acc) * mult (+ bias) (residual +);  u8: clamp(nearbyint(float(acc) * mult) + zy, 0, 255).
template <int MR, U8S8Output Out>
inline void store_tile(__m512i (&acc)[MR][4], const TileOut& to, int ncols) {
  __mmask16 mask[4];
  column_masks(ncols, mask);
  if constexpr (Out == U8S8Output::s32) {
    int32_t* c = static_cast<int32_t*>(to.c);
    if (ncols == 64) {  // full tiles: plain stores
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < 4; ++j) _mm512_storeu_si512(c + r * to.ldc + 16 * j, acc[r][j]);
      return;
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < 4; ++j) _mm512_mask_storeu_epi32(c + r * to.ldc + 16 * j, mask[j], acc[r][j]);
  } else {
    // Full tiles: plain stores (masked ones, and vpmovdb to memory, cost more on AMD cores).
    const bool full = ncols == 64;
    __m512 mult[4];
#pragma GCC unroll 8
    for (int j = 0; j < 4; ++j) mult[j] = _mm512_maskz_loadu_ps(mask[j], to.mult + 16 * j);
    if constexpr (Out == U8S8Output::f32) {
      float* c = static_cast<float*>(to.c);
      __m512 bias[4];
#pragma GCC unroll 8
      for (int j = 0; j < 4; ++j)
        bias[j] = to.bias ? _mm512_maskz_loadu_ps(mask[j], to.bias + 16 * j) : _mm512_setzero_ps();
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < 4; ++j) {
          __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][j]), mult[j]);
          if (to.bias) f = _mm512_add_ps(f, bias[j]);
          if (to.res) f = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[j], to.res + r * to.ldr + 16 * j), f);
          if (full) _mm512_storeu_ps(c + r * to.ldc + 16 * j, f);
          else _mm512_mask_storeu_ps(c + r * to.ldc + 16 * j, mask[j], f);
        }
    } else {
      static_assert(Out == U8S8Output::u8);
      uint8_t* c = static_cast<uint8_t*>(to.c);
      const __m512 zy = _mm512_set1_ps(to.zy), lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.f);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < 4; ++j) {
          __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][j]), mult[j]);
          f = _mm512_add_ps(_mm512_roundscale_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zy);
          f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);  // NaN -> 0, as clamp_0_255
          const __m512i q = _mm512_cvttps_epi32(f);
          if (full) _mm_storeu_si128(reinterpret_cast<__m128i*>(c + r * to.ldc + 16 * j), _mm512_cvtepi32_epi8(q));
          else _mm512_mask_cvtepi32_storeu_epi8(c + r * to.ldc + 16 * j, mask[j], q);
        }
    }
  }
}

// w: vnni panel, per group of 4 k: 64 channels x 4 bytes (256 bytes).
// a: activation rows, astride bytes apart.
template <int MR, U8S8Output Out>
void kernel_6x64(int64_t Kp, const uint8_t* a, int64_t astride, const uint8_t* w,
                 const int32_t* colsum, int32_t offset, const TileOut& to, int ncols) {
  // Fetch the C lines this tile writes (for ownership) while the k loop runs: at small K the
  // read-for-ownership of C is otherwise exposed at the stores.
  constexpr int64_t eb = out_bytes(Out);
  const uint8_t* cb = static_cast<const uint8_t*>(to.c);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int64_t j = 0; j < 64 * eb; j += 64) __builtin_prefetch(cb + r * to.ldc * eb + j, 1, 3);
  __m512i acc[MR][4];
  const __m512i neg = _mm512_set1_epi32(-offset);  // start at -offset * colsum
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const __m512i c = _mm512_mullo_epi32(_mm512_loadu_si512(colsum + 16 * j), neg);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) acc[r][j] = c;
  }
  for (int64_t k = 0; k < Kp; k += 4) {
    const uint8_t* wk = w + k * 64;
    const __m512i b0 = _mm512_load_si512(wk);
    const __m512i b1 = _mm512_load_si512(wk + 64);
    const __m512i b2 = _mm512_load_si512(wk + 128);
    const __m512i b3 = _mm512_load_si512(wk + 192);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(load_i32(a + r * astride + k));
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], av, b1);
      acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], av, b2);
      acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], av, b3);
    }
  }
  store_tile<MR, Out>(acc, to, ncols);
}

// One or two rows: a k step has too few independent vpdpbusd to cover its latency, so KU sets of
// accumulators take turns over the k steps and are added at the end (int32 wraparound addition is
// associative: the sum is the same bits).
template <int MR, U8S8Output Out>
void kernel_small_x64(int64_t Kp, const uint8_t* a, int64_t astride, const uint8_t* w,
                      const int32_t* colsum, int32_t offset, const TileOut& to, int ncols) {
  constexpr int KU = MR == 1 ? 4 : 2;
  __m512i acc[KU][MR][4];
  const __m512i neg = _mm512_set1_epi32(-offset);
#pragma GCC unroll 8
  for (int j = 0; j < 4; ++j) {
    const __m512i c = _mm512_mullo_epi32(_mm512_loadu_si512(colsum + 16 * j), neg);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      acc[0][r][j] = c;
#pragma GCC unroll 8
      for (int u = 1; u < KU; ++u) acc[u][r][j] = _mm512_setzero_si512();
    }
  }
  int64_t k = 0;
  for (; k + 4 * KU <= Kp; k += 4 * KU) {
#pragma GCC unroll 8
    for (int u = 0; u < KU; ++u) {
      const uint8_t* wk = w + (k + 4 * u) * 64;
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512i av = _mm512_set1_epi32(load_i32(a + r * astride + k + 4 * u));
#pragma GCC unroll 8
        for (int j = 0; j < 4; ++j)
          acc[u][r][j] = _mm512_dpbusd_epi32(acc[u][r][j], av, _mm512_load_si512(wk + 64 * j));
      }
    }
  }
  for (; k < Kp; k += 4) {
    const uint8_t* wk = w + k * 64;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(load_i32(a + r * astride + k));
#pragma GCC unroll 8
      for (int j = 0; j < 4; ++j)
        acc[0][r][j] = _mm512_dpbusd_epi32(acc[0][r][j], av, _mm512_load_si512(wk + 64 * j));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < 4; ++j)
#pragma GCC unroll 8
      for (int u = 1; u < KU; ++u) acc[0][r][j] = _mm512_add_epi32(acc[0][r][j], acc[u][r][j]);
  store_tile<MR, Out>(acc[0], to, ncols);
}

using KernelFn = void (*)(int64_t, const uint8_t*, int64_t, const uint8_t*, const int32_t*, int32_t,
                          const TileOut&, int);

template <U8S8Output Out>
constexpr KernelFn kKernels[6] = {kernel_small_x64<1, Out>, kernel_small_x64<2, Out>, kernel_6x64<3, Out>,
                                  kernel_6x64<4, Out>,      kernel_6x64<5, Out>,      kernel_6x64<6, Out>};

struct KernVnni : VnniActivations {
  static constexpr int MR = 6, NR = 64;
  static KernelFn kernel(U8S8Output out, int mr) {
    switch (out) {
      case U8S8Output::s32: return kKernels<U8S8Output::s32>[mr - 1];
      case U8S8Output::f32: return kKernels<U8S8Output::f32>[mr - 1];
      case U8S8Output::u8: return kKernels<U8S8Output::u8>[mr - 1];
      default: return nullptr;  // f32_gelu: through an int32 tile and epilogue_row_avx2
    }
  }
};

}  // namespace

void gemm_vnni(const Job& job) { run_gemm<KernVnni>(job); }

// The scalar definition's steps (round x * inv to nearest even, add the zero point, clamp to 0..255,
// NaN to 0) in integer lanes after one rounding conversion, which frees the float pipes: values
// are first capped at 2^24 (the largest that still clamps to 255 after any zero point; NaN passes
// the cap), and what the conversion cannot represent (NaN, -inf, below -2^31) comes out as INT_MIN,
// which clamps to 0 like the scalar clamp does. 64 values at a time go to bytes through the
// saturating packs (int32 -> int16 signed, int16 -> u8 unsigned: the clamp) and one dword permute
// that undoes the packs' 128-bit lane interleave; the tail is stored 16 at a time under a mask.
namespace {
inline __m512i quantize16(const float* x, __mmask16 m, __m512 sv, __m512 cap, __m512i zi) {
  const __m512 v = _mm512_min_ps(cap, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x), sv));  // NaN: v
  return _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zi);
}
}  // namespace

void quantize_row_avx512(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* y) {
  const __m512 sv = _mm512_set1_ps(inv_scale), cap = _mm512_set1_ps(16777216.f);
  const __m512i zi = _mm512_set1_epi32(zero_point), zero = _mm512_setzero_si512();
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i q01 = _mm512_packs_epi32(quantize16(x + i, 0xffff, sv, cap, zi),
                                           quantize16(x + i + 16, 0xffff, sv, cap, zi));
    const __m512i q23 = _mm512_packs_epi32(quantize16(x + i + 32, 0xffff, sv, cap, zi),
                                           quantize16(x + i + 48, 0xffff, sv, cap, zi));
    _mm512_storeu_si512(y + i, _mm512_permutexvar_epi32(order, _mm512_packus_epi16(q01, q23)));
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512i q = _mm512_max_epi32(quantize16(x + i, m, sv, cap, zi), zero);
    _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, q);  // above 255 saturates
  }
}

// Four k of 16 channels are one dword per channel: a gather of the 16 rows' dwords at k, stored as
// one zmm of the panel's group.
void pack_panel_vnni_avx512(const int8_t* W, int64_t nc, int64_t K, int64_t ldw, uint8_t* dst) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i offs = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(static_cast<int32_t>(ldw)));
  for (int64_t c0 = 0; c0 < nc; c0 += 16) {
    const __mmask16 k = static_cast<__mmask16>((1u << std::min<int64_t>(16, nc - c0)) - 1u);
    const int8_t* rows = W + c0 * ldw;
    int64_t g = 0;
    for (; 4 * g + 4 <= K; ++g)
      _mm512_storeu_si512(dst + (g * 64 + c0) * 4,
                          _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, offs, rows + 4 * g, 1));
    for (int64_t c = 0; c < std::min<int64_t>(16, nc - c0); ++c)  // the last, partial group
      for (int64_t kk = 4 * g; kk < K; ++kk) dst[(g * 64 + c0 + c) * 4 + (kk - 4 * g)] = static_cast<uint8_t>(rows[c * ldw + kk]);
  }
}

// Four rows of Wt (k .. k + 3, 64 channels each) interleaved byte by byte: unpack to pairs, to
// quadruples within 128-bit lanes, then the lanes transposed so channel c's dword lands at c.
void pack_panel_vnni_kn_avx512(const int8_t* Wt, int64_t nc, int64_t K, int64_t ldwt, uint8_t* dst) {
  const __mmask64 k = nc >= 64 ? ~__mmask64{0} : ((__mmask64{1} << nc) - 1);
  for (int64_t k0 = 0; k0 < K; k0 += 4) {
    __m512i r[4];
    for (int i = 0; i < 4; ++i)
      r[i] = k0 + i < K ? _mm512_maskz_loadu_epi8(k, Wt + (k0 + i) * ldwt) : _mm512_setzero_si512();
    const __m512i a = _mm512_unpacklo_epi8(r[0], r[1]), b = _mm512_unpackhi_epi8(r[0], r[1]);
    const __m512i c = _mm512_unpacklo_epi8(r[2], r[3]), d = _mm512_unpackhi_epi8(r[2], r[3]);
    // e[j], lane l: channels 16 l + 4 j .. 16 l + 4 j + 3
    const __m512i e0 = _mm512_unpacklo_epi16(a, c), e1 = _mm512_unpackhi_epi16(a, c);
    const __m512i e2 = _mm512_unpacklo_epi16(b, d), e3 = _mm512_unpackhi_epi16(b, d);
    const __m512i t0 = _mm512_shuffle_i32x4(e0, e1, 0x44), t1 = _mm512_shuffle_i32x4(e2, e3, 0x44);
    const __m512i t2 = _mm512_shuffle_i32x4(e0, e1, 0xEE), t3 = _mm512_shuffle_i32x4(e2, e3, 0xEE);
    uint8_t* out = dst + k0 * 64;  // group k0 / 4: 64 channels x 4 bytes
    _mm512_storeu_si512(out, _mm512_shuffle_i32x4(t0, t1, 0x88));
    _mm512_storeu_si512(out + 64, _mm512_shuffle_i32x4(t0, t1, 0xDD));
    _mm512_storeu_si512(out + 128, _mm512_shuffle_i32x4(t2, t3, 0x88));
    _mm512_storeu_si512(out + 192, _mm512_shuffle_i32x4(t2, t3, 0xDD));
  }
}

}  // namespace quench::kernels::u8s8
