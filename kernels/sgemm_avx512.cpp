// fp32 GEMM, AVX-512 path: 6x64 zmm microkernel (24 accumulators, 4 B loads and 6 broadcasts per
// k), ~100% of FMA peak on Zen 4. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma.
#include "kernels/avx512_common.hpp"

#include "kernels/sgemm_driver.hpp"
#include "kernels/sgemm_impl.hpp"

namespace {

constexpr int kMR = 6;  // rows of the register tile (and the packed A row stride)

// mr x (NV*16) tile; MODE is a TileMode (driver).
template <int MR_, int NV, int MODE>
void tile512(const TileArgs& t) {
  __m512 acc[MR_][NV];
QUENCH_UNROLL
  for (int i = 0; i < MR_; ++i)
QUENCH_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const __mmask16 lm = static_cast<__mmask16>((1u << t.last) - 1u);
  const float* a = t.a;
  const float* b = t.b;
  float* bp = t.bp;
  float* ap = t.ap;
  const int64_t rs = t.a_rs, cs = t.a_cs, brs = t.b_rs;
  // C is read or written once per tile: start fetching it now rather than stalling at the end.
  QUENCH_UNROLL
  for (int i = 0; i < MR_; ++i)
    QUENCH_UNROLL
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(t.c + i * t.ldc + 16 * v), _MM_HINT_T0);
  PrefetchWalk pf(t);
  for (int64_t k = 0; k < t.kc; ++k) {
    pf.step(t);
    QUENCH_UNROLL
    for (int v = 0; v < NV; ++v)  // B comes from L2 (or memory when read in place): ask early
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * brs + 16 * v), _MM_HINT_T0);
    __m512 bv[NV];
QUENCH_UNROLL
    for (int v = 0; v < NV; ++v)
      bv[v] = ((MODE == kMasked || MODE == kPackOut) && v == NV - 1) ? _mm512_maskz_loadu_ps(lm, b + 16 * v)
                                              : _mm512_loadu_ps(b + 16 * v);
    if (MODE == kPackOut) {
      QUENCH_UNROLL
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(bp + 16 * v, bv[v]);
      bp += 16 * NV;
    }
    if (MODE == kPackA) {  // 8-float stores, each overwriting the last one's tail, forward cleanly
      _mm256_storeu_ps(ap, _mm256_maskz_loadu_ps(static_cast<__mmask8>((1u << MR_) - 1u), a));
      ap += kMR;
    }
QUENCH_UNROLL
    for (int i = 0; i < MR_; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * rs]);
QUENCH_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += cs;
    b += brs;
  }
  const __m512 alpha = _mm512_set1_ps(t.alpha), beta = _mm512_set1_ps(t.beta);
  const bool use_beta = t.beta != 0.f, unit_alpha = t.alpha == 1.f;
QUENCH_UNROLL
  for (int i = 0; i < MR_; ++i) {
    float* c = t.c + i * t.ldc;
QUENCH_UNROLL
    for (int v = 0; v < NV; ++v) {
      __m512 r = unit_alpha ? acc[i][v] : _mm512_mul_ps(alpha, acc[i][v]);
      if (v == NV - 1) {
        if (use_beta) r = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(lm, c + 16 * v), r);
        if (t.bias) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(lm, t.bias + 16 * v));
        _mm512_mask_storeu_ps(c + 16 * v, lm, r);
      } else {
        if (use_beta) r = _mm512_fmadd_ps(beta, _mm512_loadu_ps(c + 16 * v), r);
        if (t.bias) r = _mm512_add_ps(r, _mm512_loadu_ps(t.bias + 16 * v));
        _mm512_storeu_ps(c + 16 * v, r);
      }
    }
  }
}

// R x C dot-product tile (NT, few rows): 16 k per step, the tail under a mask.
template <int R, int C>
void dot512(const DotArgs& d) {
  __m512 acc[R][C];
  QUENCH_UNROLL
  for (int i = 0; i < R; ++i)
    QUENCH_UNROLL
    for (int j = 0; j < C; ++j) acc[i][j] = _mm512_setzero_ps();
  auto step = [&](int64_t k, __mmask16 m) {
    __m512 av[R];
    QUENCH_UNROLL
    for (int i = 0; i < R; ++i) av[i] = _mm512_maskz_loadu_ps(m, d.a + i * d.lda + k);
    QUENCH_UNROLL
    for (int j = 0; j < C; ++j) {
      const __m512 bv = _mm512_maskz_loadu_ps(m, d.b + j * d.ldb + k);
      QUENCH_UNROLL
      for (int i = 0; i < R; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
    }
  };
  int64_t k = 0;
  for (; k + 16 <= d.K; k += 16) step(k, 0xFFFF);
  if (k < d.K) step(k, static_cast<__mmask16>((1u << (d.K - k)) - 1u));
  QUENCH_UNROLL
  for (int i = 0; i < R; ++i)
    QUENCH_UNROLL
    for (int j = 0; j < C; ++j) {
      float* c = d.c + i * d.ldc + j;
      const float s = d.alpha * _mm512_reduce_add_ps(acc[i][j]);
      *c = d.beta == 0.f ? s : s + d.beta * *c;
      if (d.bias) *c += d.bias[j];
    }
}

// In-register 16x16 transpose (unpack, shuffle within lanes, then 128-bit lane shuffles).
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 4; ++i) {
      t[8 * h + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0x88);
      t[8 * h + 4 + i] = _mm512_shuffle_f32x4(r[8 * h + i], r[8 * h + 4 + i], 0xDD);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
  }
}

struct Avx512 {
  static constexpr int MR = kMR, NR = 64, VL = 16;
  static constexpr bool kAlwaysCopyA = false;
  // Up to 36 rows: packing B measured 1.03-1.08x slower on 32x768x768.
  static constexpr int kInPlaceBPanels = 6;

  static TileFn tile(int mode, int mr, int nv) { return kTiles[mode][mr - 1][nv - 1]; }

  // B [N, K] stored: transpose 16 x 16 blocks; ragged edges element by element, padding zeroed.
  static void pack_b(const GemmArgs& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    for (int64_t jr = 0; jr < nc; jr += NR) {
      const int64_t nr = min64(NR, nc - jr), w = cdiv(nr, VL) * VL;
      float* d = dst + (jr / NR) * kc * NR;
      const float* s = g.B + (j0 + jr) * g.ldb + k0;
      int64_t k = 0;
      for (; k + 16 <= kc; k += 16) {
        int64_t j = 0;
        for (; j + 16 <= nr; j += 16) {
          __m512 r[16];
          for (int x = 0; x < 16; ++x) r[x] = _mm512_loadu_ps(s + (j + x) * g.ldb + k);
          transpose16(r);
          for (int x = 0; x < 16; ++x) _mm512_storeu_ps(d + (k + x) * w + j, r[x]);
        }
        for (; j < w; ++j)
          for (int x = 0; x < 16; ++x) d[(k + x) * w + j] = j < nr ? s[j * g.ldb + k + x] : 0.f;
      }
      for (; k < kc; ++k)
        for (int64_t j = 0; j < w; ++j) d[k * w + j] = j < nr ? s[j * g.ldb + k] : 0.f;
    }
  }

  static const TileFn kTiles[4][6][4];

  // 8 rows x 3 zmm: 24 accumulators, 3 B loads and 8 broadcasts per k.
  static constexpr int kSkinnyRows = 8, kSkinnyNV = 3;
  static TileFn skinny(int mode, int mr, int nv) { return kSkinny[mode][mr - MR - 1][nv - 1]; }
  static const TileFn kSkinny[2][2][3];

  static constexpr int DMR = 4, DNR = 6;
  static DotFn dot(int mr, int nr) { return kDots[mr - 1][nr - 1]; }
  static const DotFn kDots[4][6];
};

#define QUENCH_ROW(MB, R) {tile512<R, 1, MB>, tile512<R, 2, MB>, tile512<R, 3, MB>, tile512<R, 4, MB>}
#define QUENCH_ROWS(MB) \
  {QUENCH_ROW(MB, 1), QUENCH_ROW(MB, 2), QUENCH_ROW(MB, 3), QUENCH_ROW(MB, 4), QUENCH_ROW(MB, 5), QUENCH_ROW(MB, 6)}
const TileFn Avx512::kTiles[4][6][4] = {QUENCH_ROWS(kPlain), QUENCH_ROWS(kMasked),
                                        QUENCH_ROWS(kPackOut), QUENCH_ROWS(kPackA)};
#undef QUENCH_ROWS
#undef QUENCH_ROW
#define QUENCH_ROW(MB, R) {tile512<R, 1, MB>, tile512<R, 2, MB>, tile512<R, 3, MB>}
const TileFn Avx512::kSkinny[2][2][3] = {{QUENCH_ROW(kPlain, 7), QUENCH_ROW(kPlain, 8)},
                                         {QUENCH_ROW(kMasked, 7), QUENCH_ROW(kMasked, 8)}};
#undef QUENCH_ROW
#define QUENCH_ROW(R) {dot512<R, 1>, dot512<R, 2>, dot512<R, 3>, dot512<R, 4>, dot512<R, 5>, dot512<R, 6>}
const DotFn Avx512::kDots[4][6] = {QUENCH_ROW(1), QUENCH_ROW(2), QUENCH_ROW(3), QUENCH_ROW(4)};
#undef QUENCH_ROW

}  // namespace

namespace quench::kernels {

void sgemm_avx512(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc, const float* bias) {
  gemm<Avx512>({trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias});
}

}  // namespace quench::kernels
