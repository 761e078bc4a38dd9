// Internal: the BLIS/GotoBLAS loop nest shared by the per-ISA sgemm files. Included by exactly one
// .cpp per ISA, each compiled with its own flags, so everything here has internal linkage (an
// inline function shared between those files could be merged by the linker into the AVX-512 copy).
//
// An Arch provides:
//   MR, NR, VL            register tile (MR rows x NR columns, NR = VL * max vectors)
//   tile(mode, mr, nv)    the microkernel for an mr x (nv*VL) tile (TileArgs, TileMode below)
//   kAlwaysCopyA          copy every transposed-A micro-panel (kPackA), not only aliasing strides
//   kInPlaceBPanels       the most micro-panels of a rectangle that read an in-place B unpacked
//   pack_b(...)           B^T block [kc, nc] (trans_b) into NR-wide panels [k][w] (w = panel width
//                         rounded up to VL, zero padded)
//   DMR, DNR, dot(mr, nr) the dot-product tile for NT with few rows (DotArgs below)
//   kSkinnyRows, kSkinnyNV, skinny(mode, mr, nv)  the one-pass tile for MR < M <= kSkinnyRows
//                         (gemm_skinny; kSkinnyRows <= MR alone: none)
// Loop nest for one rectangle of C (one thread):
//   jc over NC columns / pc over KC of K (B block packed, stays in L2) / ir over MR rows (A
//   micro-panel, stays in L1) / jr over NR columns: tile. Packing happens inside the tiles where
//   it can (kPackOut, kPackA): the copy overlaps the multiply-adds instead of being a pass of its own.
// Every element of C gets the same k-order (KC blocks in order, k ascending inside the microkernel)
// whatever rectangle or thread computes it, so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <new>

#include "kernels/parallel.hpp"

// Full unrolling of the register-tile loops, so the accumulator arrays live in registers.
#if defined(__clang__)
#define QUENCH_UNROLL _Pragma("clang loop unroll(full)")
#else
#define QUENCH_UNROLL _Pragma("GCC unroll 16")
#endif

namespace {

struct TileArgs {
  int64_t kc;
  const float* a;        // element (i, k) at a[i * a_rs + k * a_cs]
  int64_t a_rs, a_cs;
  const float* b;        // element (k, j) at b[k * b_rs + j]
  int64_t b_rs;
  float* c;              // C = alpha * acc + beta * C (+ bias); beta == 0 never reads C
  int64_t ldc;
  float alpha, beta;
  const float* bias;     // the tile's first column of the bias, or nullptr (K blocks after the first)
  float* bp;             // kPackOut: where the B vectors go, [k][nv * VL]
  float* ap;             // kPackA: where the A micro-panel goes, [k][MR] (+ 2 floats of slack)
  int last;              // valid lanes of the last vector (1..VL): C loads/stores are masked, B
                         // loads too in kMasked and kPackOut
  // Lines to prefetch, one per k step for the first pf_n steps (0: none): pf + r * pf_rs for
  // r < pf_rows, then pf advances by pf_cs. Spread over the multiply-adds, so they never queue up in
  // a burst of their own. The next A micro-panel (into L1), or rows of B's next k block (pf_l2: into
  // L2 only, as this tile does not read them).
  const float* pf;
  int64_t pf_n, pf_rs, pf_cs;
  int pf_rows;
  bool pf_l2;
};

// One prefetch step of TileArgs::pf (called at each k while steps are left).
struct PrefetchWalk {
  const float* p;
  int64_t left;
  int r = 0;
  explicit PrefetchWalk(const TileArgs& t) : p(t.pf), left(t.pf_n) {}
  inline void step(const TileArgs& t) {
    if (left <= 0) return;
    if (t.pf_l2)
      __builtin_prefetch(p + r * t.pf_rs, 0, 2);
    else
      __builtin_prefetch(p + r * t.pf_rs, 0, 3);
    // (no step past the last line: the walk's end may be the end of B)
    if (--left > 0 && ++r == t.pf_rows) r = 0, p += t.pf_cs;
  }
};
using TileFn = void (*)(const TileArgs&);

// Dot-product tile for NT with few rows of A: C[i, j] = alpha * dot(A row i, B row j) + beta * C,
// both rows contiguous in k, so nothing is packed (packing B^T would cost more than the product).
struct DotArgs {
  int64_t K;
  const float* a;  // row i at a + i * lda
  int64_t lda;
  const float* b;  // row j at b + j * ldb
  int64_t ldb;
  float* c;
  int64_t ldc;
  float alpha, beta;
  const float* bias;  // the tile's first column of the bias, or nullptr
};
using DotFn = void (*)(const DotArgs&);

struct GemmArgs {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  const float* bias;  // N floats added to every row, or nullptr
};

constexpr int64_t kKC = 256;  // k block: A micro-panel 6 x 256 x 4 B = 6 KiB in L1
constexpr int64_t kNC = 512;  // B block 256 x 512 x 4 B = 512 KiB in L2 (1 MiB)
constexpr int64_t kDotMaxM = 32;  // NT with at most this many rows: dot-product tiles, no packing

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Per-thread packing buffer, allocated once per thread (pool threads are persistent).
struct PackBuffer {
  float* p = nullptr;
  ~PackBuffer() { std::free(p); }
  float* get() {
    if (!p) {
      constexpr size_t bytes = sizeof(float) * (kKC * kNC + 4 * kKC * 6 + 16);
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
    }
    return p;
  }
};
inline float* pack_buffer() {
  static thread_local PackBuffer buf;
  return buf.get();
}

// K == 0 or alpha == 0: C = beta * C (+ bias), without reading C when beta == 0.
inline void scale_c(const GemmArgs& g) {
  for (int64_t i = 0; i < g.M; ++i) {
    float* c = g.C + i * g.ldc;
    if (g.beta == 0.f)
      for (int64_t j = 0; j < g.N; ++j) c[j] = 0.f;
    else
      for (int64_t j = 0; j < g.N; ++j) c[j] *= g.beta;
    if (g.bias)
      for (int64_t j = 0; j < g.N; ++j) c[j] += g.bias[j];
  }
}

// K split into equal blocks of at most kKC, or more when N is narrow (the B block kc x N still fits
// the buffer and L2): fewer passes over C. Depends on the shape only, never on the thread split.
inline int64_t k_block(int64_t K, int64_t N) {
  int64_t kc_max = kKC * kNC / (cdiv(min64(N, kNC), 64) * 64);
  if (kc_max > 4 * kKC) kc_max = 4 * kKC;  // the A micro-panel must stay in L1
  return cdiv(K, cdiv(K, kc_max));
}

// Tile modes (the first index of an Arch's tile table).
enum TileMode : int {
  kPlain = 0,    // B vectors loaded whole: packed B, or B in place with a full last vector
  kMasked = 1,   // B in place, last vector under the lane mask
  kPackOut = 2,  // B in place (last vector masked) and each loaded vector also stored to t.bp: the
                 // first micro-panel packs B as it goes, so there is no separate packing pass
  kPackA = 3,    // B packed; A read in place (a_rs == 1, stored transposed) and copied to t.ap
};

template <class Arch>
void gemm_rect(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr int MR = Arch::MR, NR = Arch::NR, VL = Arch::VL;
  const int64_t mrect = m1 - m0;
  // B is reused by every MR-row micro-panel: pack it (contiguous, no TLB or cache-set trouble)
  // unless there are only a few micro-panels to share the packing's stores: up to 2, or up to
  // Arch::kInPlaceBPanels when B's rows are not a multiple of 2 KiB apart (such rows fall in a few
  // L1 sets: 32x1024x1024 in place measured 0.8x). A transposed B is packed up front
  // (Arch::pack_b); otherwise the first micro-panel packs it on the fly. A is read in place: its
  // MR x kc micro-panel stays in L1 while every NR-column tile passes. (Packing A in MC blocks, or
  // one micro-panel at a time in a pass of its own, measured slower here.)
  const bool pack_b = g.tb || cdiv(mrect, MR) > (g.ldb % 512 ? Arch::kInPlaceBPanels : 2);
  // Stored transposed, an A micro-panel is MR floats from each of kc rows. When the row stride is
  // a multiple of 256 B under 4 KiB those rows fall in a few L1 sets and evict each other: then the
  // first tile copies the micro-panel to MR x kc contiguous floats as it goes and the others read
  // the copy. (For other strides the copy measured slower than reading in place.)
  // The AVX2 tile (16 columns) re-reads its A micro-panel 4x as often: there the copy always pays.
  const bool pack_a = g.ta && n1 - n0 >= 4 * NR &&
                      (Arch::kAlwaysCopyA || (g.lda % 64 == 0 && g.lda < 1024));
  float* bpack = pack_buffer();
  float* apack = bpack + kKC * kNC;
  const int64_t kcb = k_block(g.K, g.N);
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = min64(kNC, n1 - jc);
    for (int64_t pc = 0; pc < g.K; pc += kcb) {
      const int64_t kc = min64(kcb, g.K - pc);
      TileArgs t;
      t.kc = kc;
      t.ldc = g.ldc;
      t.alpha = g.alpha;
      t.beta = pc == 0 ? g.beta : 1.f;
      t.bp = nullptr;
      if (g.tb) Arch::pack_b(g, pc, kc, jc, nc, bpack);
      // B read in place is packed by the first micro-panel as it goes, which then waits on memory
      // (a large-K TN product's B, the layer input of a dW, is long out of cache): the tiles that
      // have no A micro-panel to fetch (all but each micro-panel's first) walk the next k block's
      // rows of B into L2 meanwhile, a few rows each. A tile issues one line per k step, so it takes
      // at most kc / line_cols rows; with few micro-panels only the block's first rows are covered.
      const int64_t kc_next = pc + kc < g.K ? min64(kcb, g.K - pc - kc) : 0;
      const int64_t line_cols = cdiv(nc, 16), spare = (cdiv(mrect, MR) - 1) * (cdiv(nc, NR) - 1);
      const int64_t nb_rows = !g.tb && pack_b && spare > 0 ? min64(cdiv(kc_next, spare), kc / line_cols) : 0;
      int64_t nb_next = 0;  // next k-block row of B to hand out
      for (int64_t ir = 0, mr; ir < mrect; ir += mr) {
        // A last panel of 1 or 2 rows is load-bound: end on two balanced panels instead (8 = 4 + 4).
        const int64_t rest = mrect - ir;
        mr = rest > MR && rest < MR + 3 ? (rest + 1) / 2 : min64(MR, rest);
        const float* a_in;  // the micro-panel in place
        // The next micro-panel is prefetched by the first tile, one line per k step (TileArgs::pf).
        const bool next = ir + mr < mrect;
        if (g.ta) {
          a_in = g.A + pc * g.lda + m0 + ir, t.a_rs = 1, t.a_cs = g.lda;
          // One line per k, a new one every ~16 / MR panels.
          t.pf = a_in + mr + MR - 1, t.pf_n = next ? kc : 0, t.pf_rs = 0, t.pf_cs = g.lda, t.pf_rows = 1;
        } else {
          a_in = g.A + (m0 + ir) * g.lda + pc, t.a_rs = g.lda, t.a_cs = 1;
          // The next micro-panel's rows: short streams the hardware prefetcher picks up late.
          t.pf = a_in + mr * g.lda, t.pf_n = next ? MR * cdiv(kc, 16) : 0, t.pf_rs = g.lda, t.pf_cs = 16,
          t.pf_rows = MR;
        }
        const int64_t pf_n = t.pf_n;
        for (int64_t jr = 0; jr < nc; jr += NR) {
          t.pf_n = jr == 0 ? pf_n : 0, t.pf_l2 = false;
          if (jr > 0 && ir > 0 && nb_rows > 0 && nb_next < kc_next) {
            const int64_t rows = min64(nb_rows, kc_next - nb_next);
            t.pf = g.B + (pc + kc + nb_next) * g.ldb + jc, t.pf_rs = 16, t.pf_cs = g.ldb;
            t.pf_rows = static_cast<int>(line_cols), t.pf_n = rows * line_cols, t.pf_l2 = true;
            nb_next += rows;
          }
          const int nr = static_cast<int>(min64(NR, nc - jr));
          const int nv = (nr + VL - 1) / VL;
          t.last = nr - (nv - 1) * VL;
          t.c = g.C + (m0 + ir) * g.ldc + jc + jr;
          t.bias = pc == 0 && g.bias ? g.bias + jc + jr : nullptr;
          t.a = a_in;
          float* panel = bpack + (jr / NR) * kc * NR;
          if (pack_b && (g.tb || ir > 0)) {
            t.b = panel, t.b_rs = nv * VL;
            if (pack_a) {
              if (jr == 0) {
                t.ap = apack;
                Arch::tile(kPackA, mr, nv)(t);
                continue;
              }
              t.a = apack, t.a_rs = 1, t.a_cs = MR;
            }
            Arch::tile(kPlain, mr, nv)(t);
            if (g.ta) t.a_rs = 1, t.a_cs = g.lda;
          } else {
            t.b = g.B + pc * g.ldb + jc + jr, t.b_rs = g.ldb;
            t.bp = pack_b ? panel : nullptr;
            Arch::tile(pack_b ? kPackOut : t.last != VL ? kMasked : kPlain, mr, nv)(t);
          }
        }
      }
    }
  }
}

// NT with M <= kDotMaxM: split N over the threads, tiles of DMR rows x DNR columns.
template <class Arch>
void gemm_dot(const GemmArgs& g, int64_t n0, int64_t n1) {
  constexpr int DMR = Arch::DMR, DNR = Arch::DNR;
  DotArgs d{g.K, nullptr, g.lda, nullptr, g.ldb, nullptr, g.ldc, g.alpha, g.beta, nullptr};
  for (int64_t j = n0; j < n1; j += DNR) {  // B rows stay in L1 while every row tile of A passes
    const int nr = static_cast<int>(min64(DNR, n1 - j));
    for (int64_t i = 0; i < g.M; i += DMR) {
      const int mr = static_cast<int>(min64(DMR, g.M - i));
      d.a = g.A + i * g.lda, d.b = g.B + j * g.ldb, d.c = g.C + i * g.ldc + j;
      d.bias = g.bias ? g.bias + j : nullptr;
      Arch::dot(mr, nr)(d);
    }
  }
}

// M just above MR, where two MR-row micro-panels would each stream B: one pass of tiles of all M
// rows (Arch::kSkinnyRows at most) by Arch::kSkinnyNV vectors, B read once in place, A in blocks of
// kSkinnyKC that stay in L1 while every column tile passes (bench_gemm 8 x 768 x 768, nn and tn:
// 1.05-1.3x the two panels).
constexpr int64_t kSkinnyKC = 768;  // A block 8 x 768 x 4 B = 24 KiB, in a Zen 4's 32 KiB L1 too

template <class Arch>
void gemm_skinny(const GemmArgs& g, int64_t n0, int64_t n1) {
  constexpr int VL = Arch::VL, W = Arch::kSkinnyNV * VL;
  const int mr = static_cast<int>(g.M);
  const int64_t kcb = cdiv(g.K, cdiv(g.K, kSkinnyKC));
  TileArgs t{};
  t.ldc = g.ldc, t.alpha = g.alpha;
  for (int64_t pc = 0; pc < g.K; pc += kcb) {
    t.kc = min64(kcb, g.K - pc);
    t.beta = pc == 0 ? g.beta : 1.f;
    if (g.ta)
      t.a = g.A + pc * g.lda, t.a_rs = 1, t.a_cs = g.lda;
    else
      t.a = g.A + pc, t.a_rs = g.lda, t.a_cs = 1;
    for (int64_t j = n0; j < n1; j += W) {
      const int nr = static_cast<int>(min64(W, n1 - j));
      const int nv = (nr + VL - 1) / VL;
      t.last = nr - (nv - 1) * VL;
      t.b = g.B + pc * g.ldb + j, t.b_rs = g.ldb;
      t.c = g.C + j;
      t.bias = pc == 0 && g.bias ? g.bias + j : nullptr;
      Arch::skinny(t.last != VL ? kMasked : kPlain, mr, nv)(t);
    }
  }
}

// Runs body(n0, n1) over column ranges of whole width-wide tiles, one range per thread.
template <class Body>
void split_columns(int64_t N, int64_t width, int threads, const Body& body) {
  const int64_t tiles = cdiv(N, width);
  const int64_t parts = min64(threads, tiles);
  if (parts <= 1) return body(0, N);
  quench::kernels::parallel_for(parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      body(min64(N, r * tiles / parts * width), min64(N, (r + 1) * tiles / parts * width));
  });
}

// Splits C into one rectangle per thread (whole MR x NR tiles), choosing the grid that minimises
// estimated per-thread time (multiply-adds plus packing). The split only changes who computes an
// element, never how.
template <class Arch>
void gemm(const GemmArgs& g) {
  if (g.M <= 0 || g.N <= 0) return;
  if (g.K == 0 || g.alpha == 0.f) {
    scale_c(g);
    return;
  }
  constexpr int MR = Arch::MR, NR = Arch::NR;
  int threads = quench::kernels::in_parallel_region() ? 1 : quench::get_num_threads();
  // Below ~2 M multiply-adds waking the pool costs more than it saves.
  if (g.M * g.N * g.K < (int64_t(1) << 21)) threads = 1;
  if (!g.ta && g.tb && g.M <= kDotMaxM)
    return split_columns(g.N, Arch::DNR, threads, [&](int64_t n0, int64_t n1) { gemm_dot<Arch>(g, n0, n1); });
  if constexpr (Arch::kSkinnyRows > MR) {
    if (!g.tb && g.M > MR && g.M <= Arch::kSkinnyRows)
      return split_columns(g.N, Arch::kSkinnyNV * Arch::VL, threads,
                           [&](int64_t n0, int64_t n1) { gemm_skinny<Arch>(g, n0, n1); });
  }
  const int64_t tiles_m = cdiv(g.M, MR), tiles_n = cdiv(g.N, NR);
  // Rectangle r of a tm x tn grid: whole tiles, the rows and columns split as evenly as they go.
  auto bounds = [&](int64_t r, int64_t tm, int64_t tn, int64_t* b) {
    const int64_t rm = r / tn, rn = r % tn;
    b[0] = min64(g.M, (rm * tiles_m / tm) * MR), b[1] = min64(g.M, ((rm + 1) * tiles_m / tm) * MR);
    b[2] = min64(g.N, (rn * tiles_n / tn) * NR), b[3] = min64(g.N, ((rn + 1) * tiles_n / tn) * NR);
  };
  // Estimated time of the slowest rectangle, in multiply-adds per lane: the tile work, plus each
  // thread streaming its rows of A and its columns of B (transposing B costs more).
  int best_tm = 1, best_tn = 1;
  double best = -1;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm) continue;
    const int tn = threads / tm;
    if (tm > tiles_m || tn > tiles_n) continue;
    double worst = 0;
    for (int64_t r = 0; r < int64_t(tm) * tn; ++r) {
      int64_t b[4];
      bounds(r, tm, tn, b);
      const double rows = double(b[1] - b[0]), cols = double(cdiv(b[3] - b[2], 16) * 16);
      const double k = double(g.K);
      const double cost = rows * cols * k / 16.0 + 0.5 * rows * k + (g.tb ? 0.5 : 0.1) * cols * k;
      if (cost > worst) worst = cost;
    }
    if (best < 0 || worst < best) best = worst, best_tm = tm, best_tn = tn;
  }
  if (best < 0) {  // fewer tiles than threads: split the longer side only
    best_tm = int(min64(threads, tiles_m)), best_tn = 1;
    if (tiles_n > tiles_m) best_tm = 1, best_tn = int(min64(threads, tiles_n));
  }
  const int tm = best_tm, tn = best_tn;
  auto rect = [&](int64_t r) {
    int64_t b[4];
    bounds(r, tm, tn, b);
    if (b[0] < b[1] && b[2] < b[3]) gemm_rect<Arch>(g, b[0], b[1], b[2], b[3]);
  };
  if (tm * tn == 1) {
    rect(0);
    return;
  }
  quench::kernels::parallel_for(int64_t(tm) * tn, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) rect(r);
  });
}

}  // namespace
