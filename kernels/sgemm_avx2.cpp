// fp32 GEMM, AVX2 + FMA path: 6x16 ymm microkernel (12 accumulators + 2 B vectors + 1 broadcast
// fit the 16 ymm registers). Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "kernels/sgemm_driver.hpp"
#include "kernels/sgemm_impl.hpp"

namespace {

constexpr int kMR = 6;  // rows of the register tile (and the packed A row stride)

inline __m256i lane_mask(int n) {  // lanes [0, n) set
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// mr x (NV*8) tile; MODE is a TileMode (driver).
template <int MR_, int NV, int MODE>
void tile256(const TileArgs& t) {
  __m256 acc[MR_][NV];
QUENCH_UNROLL
  for (int i = 0; i < MR_; ++i)
QUENCH_UNROLL
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_setzero_ps();
  const __m256i lm = lane_mask(t.last);
  const float* a = t.a;
  const float* b = t.b;
  float* bp = t.bp;
  float* ap = t.ap;
  const int64_t rs = t.a_rs, cs = t.a_cs, brs = t.b_rs;
  PrefetchWalk pf(t);
  for (int64_t k = 0; k < t.kc; ++k) {
    pf.step(t);
    __m256 bv[NV];
QUENCH_UNROLL
    for (int v = 0; v < NV; ++v)
      bv[v] = ((MODE == kMasked || MODE == kPackOut) && v == NV - 1) ? _mm256_maskload_ps(b + 8 * v, lm)
                                              : _mm256_loadu_ps(b + 8 * v);
    if (MODE == kPackOut) {
      QUENCH_UNROLL
      for (int v = 0; v < NV; ++v) _mm256_storeu_ps(bp + 8 * v, bv[v]);
      bp += 8 * NV;
    }
    if (MODE == kPackA) {  // 8-float stores, each overwriting the last one's tail, forward cleanly
      _mm256_storeu_ps(ap, _mm256_maskload_ps(a, lane_mask(MR_)));
      ap += kMR;
    }
QUENCH_UNROLL
    for (int i = 0; i < MR_; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * rs);
QUENCH_UNROLL
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm256_fmadd_ps(av, bv[v], acc[i][v]);
    }
    a += cs;
    b += brs;
  }
  const __m256 alpha = _mm256_set1_ps(t.alpha), beta = _mm256_set1_ps(t.beta);
  const bool use_beta = t.beta != 0.f, full = t.last == 8, unit_alpha = t.alpha == 1.f;
QUENCH_UNROLL
  for (int i = 0; i < MR_; ++i) {
    float* c = t.c + i * t.ldc;
QUENCH_UNROLL
    for (int v = 0; v < NV; ++v) {
      __m256 r = unit_alpha ? acc[i][v] : _mm256_mul_ps(alpha, acc[i][v]);
      if (v == NV - 1 && !full) {
        if (use_beta) r = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c + 8 * v, lm), r);
        if (t.bias) r = _mm256_add_ps(r, _mm256_maskload_ps(t.bias + 8 * v, lm));
        _mm256_maskstore_ps(c + 8 * v, lm, r);
      } else {
        if (use_beta) r = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8 * v), r);
        if (t.bias) r = _mm256_add_ps(r, _mm256_loadu_ps(t.bias + 8 * v));
        _mm256_storeu_ps(c + 8 * v, r);
      }
    }
  }
}

inline float hsum(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

// R x C dot-product tile (NT, few rows): 8 k per step, the tail under a mask.
template <int R, int C>
void dot256(const DotArgs& d) {
  __m256 acc[R][C];
  QUENCH_UNROLL
  for (int i = 0; i < R; ++i)
    QUENCH_UNROLL
    for (int j = 0; j < C; ++j) acc[i][j] = _mm256_setzero_ps();
  auto step = [&](int64_t k, auto load) {
    __m256 av[R];
    QUENCH_UNROLL
    for (int i = 0; i < R; ++i) av[i] = load(d.a + i * d.lda + k);
    QUENCH_UNROLL
    for (int j = 0; j < C; ++j) {
      const __m256 bv = load(d.b + j * d.ldb + k);
      QUENCH_UNROLL
      for (int i = 0; i < R; ++i) acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
    }
  };
  int64_t k = 0;
  for (; k + 8 <= d.K; k += 8) step(k, [](const float* p) { return _mm256_loadu_ps(p); });
  if (k < d.K) {
    const __m256i m = lane_mask(static_cast<int>(d.K - k));
    step(k, [m](const float* p) { return _mm256_maskload_ps(p, m); });
  }
  QUENCH_UNROLL
  for (int i = 0; i < R; ++i)
    QUENCH_UNROLL
    for (int j = 0; j < C; ++j) {
      float* c = d.c + i * d.ldc + j;
      const float s = d.alpha * hsum(acc[i][j]);
      *c = d.beta == 0.f ? s : s + d.beta * *c;
      if (d.bias) *c += d.bias[j];
    }
}

// In-register 8x8 transpose.
inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm256_permute2f128_ps(r[i], r[4 + i], 0x20);
    t[4 + i] = _mm256_permute2f128_ps(r[i], r[4 + i], 0x31);
  }
  for (int i = 0; i < 8; ++i) r[i] = t[i];
}

struct Avx2 {
  static constexpr int MR = kMR, NR = 16, VL = 8;
  static constexpr bool kAlwaysCopyA = true;
  static constexpr int kInPlaceBPanels = 2;

  static TileFn tile(int mode, int mr, int nv) { return kTiles[mode][mr - 1][nv - 1]; }

  // B [N, K] stored: transpose 8 x 8 blocks; ragged edges element by element, padding zeroed.
  static void pack_b(const GemmArgs& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* dst) {
    for (int64_t jr = 0; jr < nc; jr += NR) {
      const int64_t nr = min64(NR, nc - jr), w = cdiv(nr, VL) * VL;
      float* d = dst + (jr / NR) * kc * NR;
      const float* s = g.B + (j0 + jr) * g.ldb + k0;
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        int64_t j = 0;
        for (; j + 8 <= nr; j += 8) {
          __m256 r[8];
          for (int x = 0; x < 8; ++x) r[x] = _mm256_loadu_ps(s + (j + x) * g.ldb + k);
          transpose8(r);
          for (int x = 0; x < 8; ++x) _mm256_storeu_ps(d + (k + x) * w + j, r[x]);
        }
        for (; j < w; ++j)
          for (int x = 0; x < 8; ++x) d[(k + x) * w + j] = j < nr ? s[j * g.ldb + k + x] : 0.f;
      }
      for (; k < kc; ++k)
        for (int64_t j = 0; j < w; ++j) d[k * w + j] = j < nr ? s[j * g.ldb + k] : 0.f;
    }
  }

  static const TileFn kTiles[4][6][2];

  // No one-pass tile for M just above MR: 16 ymm registers hold no taller tile.
  static constexpr int kSkinnyRows = 0;

  static constexpr int DMR = 3, DNR = 4;
  static DotFn dot(int mr, int nr) { return kDots[mr - 1][nr - 1]; }
  static const DotFn kDots[3][4];
};

#define QUENCH_ROW(MB, R) {tile256<R, 1, MB>, tile256<R, 2, MB>}
#define QUENCH_ROWS(MB) \
  {QUENCH_ROW(MB, 1), QUENCH_ROW(MB, 2), QUENCH_ROW(MB, 3), QUENCH_ROW(MB, 4), QUENCH_ROW(MB, 5), QUENCH_ROW(MB, 6)}
const TileFn Avx2::kTiles[4][6][2] = {QUENCH_ROWS(kPlain), QUENCH_ROWS(kMasked),
                                      QUENCH_ROWS(kPackOut), QUENCH_ROWS(kPackA)};
#undef QUENCH_ROWS
#undef QUENCH_ROW
#define QUENCH_ROW(R) {dot256<R, 1>, dot256<R, 2>, dot256<R, 3>, dot256<R, 4>}
const DotFn Avx2::kDots[3][4] = {QUENCH_ROW(1), QUENCH_ROW(2), QUENCH_ROW(3)};
#undef QUENCH_ROW

}  // namespace

namespace quench::kernels {

void sgemm_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                int64_t ldc, const float* bias) {
  gemm<Avx2>({trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias});
}

}  // namespace quench::kernels
