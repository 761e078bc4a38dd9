// AVX-512 VNNI u8s4 path: vpdpbusd (u8 x s8, four products summed straight into int32: exact) on
// weights unpacked from nibbles in registers. One zmm load of the vnni layout holds, for 16
// channels, eight consecutive k: the low nibbles are the dwords of the first 4-k step, the high
// nibbles those of the second. Each is isolated in the high half of its byte,
//   lo = (v << 4) & 0xF0,  hi = v & 0xF0   (vpsllw + vpandd, vpandd)
// which, read as s8, is exactly 16 * w (a two's complement nibble in the top four bits), so the
// accumulators hold 16 * acc and one arithmetic shift right by 4 gives acc exactly at the end
// (|16 * acc| <= 16 * 255 * 8 * 65536 < 2^31, and int32 wraparound addition is exact on the way).
// Activations are broadcast 4 bytes at a time from rows packed with K zero padded to Kp (s8
// activations XOR 0x80 to u8, the +128 folded into the column-sum compensation).
//   per channel: a 4x64 tile, 16 accumulators, the f32 epilogue on them in registers;
//   per group:   a 6x32 tile, 12 accumulators and 12 float sums; at each group's end the
//                accumulators go through float(acc) * mult_g into the sums (the epilogue of
//                gemm_u8s4.hpp, in its order) and restart from the next group's compensation.
// Full tiles are written with plain stores (masked ones cost more on AMD cores).
// One or two rows: a 4-k step has too few independent vpdpbusd to cover their latency, so KU sets
// of accumulators take turns and are added at the end (the same int32 sum).
// Compiled with -mavx512f/bw/vl/dq -mavx512vnni -ffp-contract=off.
#include <immintrin.h>

#include <cstring>

#include "kernels/gemm_u8s4_driver.hpp"

namespace quench::kernels::u8s4 {
namespace {

inline int32_t load_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline __mmask16 column_mask(int ncols, int j) {
  const int left = std::clamp(ncols - 16 * j, 0, 16);
  return static_cast<__mmask16>((1u << left) - 1u);
}

// The tile's float epilogue after the last group: + bias, residual +, store (masked past N).
template <int MR, int NJ>
inline void store_f32(const Job& job, const Tile& t, __m512 (&y)[MR][NJ]) {
  const bool full = t.ncols == 16 * NJ;  // plain stores: masked ones are slower on AMD cores
#pragma GCC unroll 8
  for (int j = 0; j < NJ; ++j) {
    const __mmask16 mk = column_mask(t.ncols, j);
    const int64_t n = t.n0 + 16 * j;
    const __m512 b = job.bias ? _mm512_maskz_loadu_ps(mk, job.bias + n) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      __m512 f = y[r][j];
      if (job.bias) f = _mm512_add_ps(f, b);
      if (job.res) f = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, job.res + (t.m0 + r) * job.ldr + n), f);
      float* c = static_cast<float*>(job.C) + (t.m0 + r) * job.ldc + n;
      if (full) _mm512_storeu_ps(c, f);
      else _mm512_mask_storeu_ps(c, mk, f);
    }
  }
}

// float(acc) * mult_g for the tile's rows: mult from the per-tensor table, or s_a[m] * ws.
template <int MR, int NJ>
inline void scaled(const Job& job, const Tile& t, int64_t g, __m512i (&acc)[MR][NJ], __m512 (&p)[MR][NJ]) {
#pragma GCC unroll 8
  for (int j = 0; j < NJ; ++j) {
    const __mmask16 mk = column_mask(t.ncols, j);
    const int64_t idx = g * job.N + t.n0 + 16 * j;
    if (!job.ass) {
      const __m512 mult = _mm512_maskz_loadu_ps(mk, job.mult + idx);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) p[r][j] = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][j]), mult);
    } else {
      const __m512 ws = _mm512_maskz_loadu_ps(mk, job.ws + idx);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512 mult = _mm512_mul_ps(_mm512_set1_ps(job.ass[t.m0 + r]), ws);
        p[r][j] = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][j]), mult);
      }
    }
  }
}

// MR rows x 16*NJ channels (quarters sub*NJ .. of the panel); KU accumulator sets; GROUPED: float
// sums over the groups; Out: the s32 store (per channel only) or the f32 epilogue.
template <int MR, int NJ, int KU, bool GROUPED, U8S4Output Out>
void kernel(const Job& job, const Tile& t) {
  static_assert(KU == 1 || KU == 2 || KU == 4);
  const PackedWeightsU8S4& W = *job.W;
  const int64_t Kp = W.Kp, G = W.group_k, ng = GROUPED ? W.num_groups : 1;
  const int j0 = t.sub * NJ;
  const __m512i f0 = _mm512_set1_epi8(static_cast<char>(0xF0));
  __m512i acc[KU][MR][NJ];
  __m512 y[MR][NJ];
  for (int64_t g = 0; g < ng; ++g) {
    // Start at -16 * offset * colsum_g (the zero-point compensation, in the accumulators' scale).
    const int32_t* cs = t.cs + g * W.nr + 16 * j0;
#pragma GCC unroll 8
    for (int j = 0; j < NJ; ++j) {
      const __m512i c = _mm512_loadu_si512(cs + 16 * j);
      if (t.uniform) {
        const __m512i init = _mm512_mullo_epi32(c, _mm512_set1_epi32(-16 * t.off[0]));
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) acc[0][r][j] = init;
      } else {
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) acc[0][r][j] = _mm512_mullo_epi32(c, _mm512_set1_epi32(-16 * t.off[r]));
      }
#pragma GCC unroll 8
      for (int u = 1; u < KU; ++u)
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) acc[u][r][j] = _mm512_setzero_si512();
    }
    const int64_t k1 = std::min(Kp, (g + 1) * G);
    int64_t k = g * G;
    // One 8-k block: the low nibbles feed set u0, the high nibbles set u1.
    auto block = [&](int64_t kk, int u0, int u1) __attribute__((always_inline)) {
      const uint8_t* wk = t.w + (kk / 8) * 256 + 64 * j0;
      __m512i lo[NJ], hi[NJ];
#pragma GCC unroll 8
      for (int j = 0; j < NJ; ++j) {
        const __m512i v = _mm512_load_si512(wk + 64 * j);
        lo[j] = _mm512_and_si512(_mm512_slli_epi16(v, 4), f0);
        hi[j] = _mm512_and_si512(v, f0);
      }
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const __m512i a0 = _mm512_set1_epi32(load_i32(t.a + r * t.astride + kk));
        const __m512i a1 = _mm512_set1_epi32(load_i32(t.a + r * t.astride + kk + 4));
#pragma GCC unroll 8
        for (int j = 0; j < NJ; ++j) {
          acc[u0][r][j] = _mm512_dpbusd_epi32(acc[u0][r][j], a0, lo[j]);
          acc[u1][r][j] = _mm512_dpbusd_epi32(acc[u1][r][j], a1, hi[j]);
        }
      }
    };
    if constexpr (KU == 4) {
      for (; k + 16 <= k1; k += 16) {
        block(k, 0, 1);
        block(k + 8, 2, 3);
      }
    }
    for (; k < k1; k += 8) block(k, 0, KU == 1 ? 0 : 1);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
      for (int j = 0; j < NJ; ++j) {
#pragma GCC unroll 8
        for (int u = 1; u < KU; ++u) acc[0][r][j] = _mm512_add_epi32(acc[0][r][j], acc[u][r][j]);
        acc[0][r][j] = _mm512_srai_epi32(acc[0][r][j], 4);
      }
    if constexpr (Out == U8S4Output::s32) {
      const bool full = t.ncols == 16 * NJ;
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < NJ; ++j) {
          int32_t* c = static_cast<int32_t*>(job.C) + (t.m0 + r) * job.ldc + t.n0 + 16 * j;
          if (full) _mm512_storeu_si512(c, acc[0][r][j]);
          else _mm512_mask_storeu_epi32(c, column_mask(t.ncols, j), acc[0][r][j]);
        }
      return;
    } else {
      __m512 p[MR][NJ];
      scaled<MR, NJ>(job, t, g, acc[0], p);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < NJ; ++j) y[r][j] = g == 0 ? p[r][j] : _mm512_add_ps(y[r][j], p[r][j]);
    }
  }
  if constexpr (Out == U8S4Output::f32) store_f32<MR, NJ>(job, t, y);
}

using KernelFn = void (*)(const Job&, const Tile&);

// By rows (KernVnni::rows): up to 4 per channel, up to 6 per group.
template <U8S4Output Out>
constexpr KernelFn kChannelKernels[4] = {kernel<1, 4, 4, false, Out>, kernel<2, 4, 2, false, Out>,
                                         kernel<3, 4, 1, false, Out>, kernel<4, 4, 1, false, Out>};
constexpr KernelFn kGroupKernels[6] = {kernel<1, 2, 2, true, U8S4Output::f32>, kernel<2, 2, 2, true, U8S4Output::f32>,
                                       kernel<3, 2, 1, true, U8S4Output::f32>, kernel<4, 2, 1, true, U8S4Output::f32>,
                                       kernel<5, 2, 1, true, U8S4Output::f32>, kernel<6, 2, 1, true, U8S4Output::f32>};

struct KernVnni {
  static constexpr int MR = 6, NR = 64, AElem = 1;
  static bool grouped(const Job& job) { return job.W->num_groups > 1; }
  // Per channel 4x64: 16 accumulators beside the 8 unpacked weight vectors (6x64 spilled
  // accumulators). Per group the float sums double the live registers: 6x32.
  static int rows(const Job& job) { return grouped(job) ? 6 : 4; }
  static int tile_cols(const Job& job) { return grouped(job) ? 32 : 64; }
  static KernelFn kernel(const Job& job, int mr) {
    if (grouped(job)) return kGroupKernels[mr - 1];
    return job.out == U8S4Output::s32 ? kChannelKernels<U8S4Output::s32>[mr - 1]
                                      : kChannelKernels<U8S4Output::f32>[mr - 1];
  }
  // vpdpbusd wants u8 activations: s8 ones are stored as a + 128, so 128 more column sums come off.
  static int32_t offset(const Job& job, int64_t m) { return job.zero_point(m) + (job.a_signed ? 128 : 0); }
  static bool direct(const Job& job) { return !job.a_signed && job.K % 8 == 0; }
  static void pack_a(const Job& job, int64_t m0, int64_t rows, uint8_t* dst, int64_t stride) {
    const int64_t K = job.K, Kp = job.W->Kp;
    const uint8_t flip = job.a_signed ? 0x80 : 0;
    for (int64_t i = 0; i < rows; ++i) {
      const uint8_t* src = job.A + (m0 + i) * job.lda;
      uint8_t* d = dst + i * stride;
      for (int64_t k = 0; k < K; ++k) d[k] = src[k] ^ flip;
      for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    }
  }
};

}  // namespace

void gemm_vnni(const Job& job) { run_gemm<KernVnni>(job); }

}  // namespace quench::kernels::u8s4
