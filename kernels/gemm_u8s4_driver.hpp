// Internal: the blocking and threading shared by the SIMD u8s4 paths, instantiated once per ISA TU
// with that TU's micro-kernels (anonymous namespace: every TU keeps its own copy).
//
// The scheme of the u8s8 driver (kernels/gemm_u8s8_driver.hpp), kept apart so the two GEMMs can be
// tuned independently: C is cut into tasks of MC rows x a run of weight panels; parallel_for hands
// whole tasks to threads, so every output is computed by one thread in one fixed order (integer
// sums exact, the epilogue per output: the blocking may vary with the thread count without
// changing a bit). A task packs its MC activation rows once (all of K; u8 rows the kernel can read
// in place are not copied), then walks its panels in groups that fit in L1, running the micro-kernel
// row group by row group over the group. K is not split: the whole dot product (or, per group,
// each group's) stays in registers and the epilogue runs on it directly.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>

#include "kernels/gemm_u8s4_internal.hpp"
#include "kernels/parallel.hpp"

namespace quench::kernels::u8s4 {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One micro-kernel call: up to MR rows x one column tile (tile_cols channels of a panel).
struct Tile {
  const uint8_t* a;     // the tile's first activation row (packed block or A itself)
  int64_t astride;      // bytes between rows
  int mr;               // rows (1..MR)
  const uint8_t* w;     // the panel
  const int32_t* cs;    // the panel's column sums [num_groups][nr]
  int sub;              // which column tile of the panel (tile_cols channels each)
  int ncols;            // valid channels in the tile
  int64_t m0, n0;       // C's first row and channel
  const int32_t* off;   // [mr] per-row activation offsets (zero point, + 128 where the kernel flips s8)
  bool uniform;         // every row has off[0]
};

// Kern provides: MR (the most rows of a micro-kernel call), NR (panel channels), AElem (bytes per
// packed activation), rows(job) (the rows of one call, <= MR), tile_cols(job) (the channels of one
// call, dividing NR), direct(job) (read A in place),
// pack_a(job, m0, rows, dst, stride), offset(job, m) and kernel(job, mr) -> fn(job, tile), which
// leaves the tile's outputs in C through the job's epilogue.
template <class Kern>
void run_gemm(const Job& job) {
  constexpr int NR = Kern::NR;
  const int MR = Kern::rows(job), nrt = Kern::tile_cols(job);
  const PackedWeightsU8S4& W = *job.W;
  const int64_t M = job.M, Kp = W.Kp, npan = W.num_panels();
  const bool direct = Kern::direct(job);
  const int64_t astride = direct ? job.lda : (Kp * Kern::AElem + 63) / 64 * 64;  // bytes per row
  const int64_t want = 4 * int64_t(get_num_threads());

  const int64_t row_bytes = Kp * Kern::AElem;
  int64_t mc_max = std::clamp<int64_t>((256 * 1024 / row_bytes) / MR * MR, MR, 384 / MR * MR);
  int64_t mb = ceil_div(M, mc_max);
  if (mb > 1) mb = std::min(ceil_div(mb, want) * want, ceil_div(M, MR));
  int64_t nb = std::min(npan, std::max<int64_t>(1, ceil_div(want, mb)));
  if (mb * nb < want) mb = std::min(ceil_div(M, MR), ceil_div(want, nb));
  const int64_t mc = ceil_div(ceil_div(M, mb), MR) * MR;
  mb = ceil_div(M, mc);
  const int64_t pb = ceil_div(npan, nb);
  nb = ceil_div(npan, pb);
  // Panels in groups that fit in 24 of L1's 32+ KiB; large K: one panel reused down all rows from L2.
  const int64_t group = std::max<int64_t>(1, 24 * 1024 / W.panel_bytes);

  parallel_for(mb * nb, 1, [&](int64_t t0, int64_t t1) {
    // Grow-only per-thread buffer: a fresh allocation of this size would be page faulted per call.
    thread_local std::unique_ptr<uint8_t[], AlignedFree> abuf;
    thread_local int64_t abuf_bytes = 0;
    if (!direct && abuf_bytes < mc * astride) {
      abuf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, mc * astride)));
      if (!abuf) {
        abuf_bytes = 0;
        throw std::bad_alloc();
      }
      abuf_bytes = mc * astride;
    }
    int64_t packed_m0 = -1;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t m0 = (t / nb) * mc, rows = std::min(mc, M - m0);
      const uint8_t* ablock = direct ? job.A + m0 * job.lda : abuf.get();
      if (!direct && m0 != packed_m0) {
        Kern::pack_a(job, m0, rows, abuf.get(), astride);
        packed_m0 = m0;
      }
      const int64_t p0 = (t % nb) * pb, p1 = std::min(npan, p0 + pb);
      for (int64_t g0 = p0; g0 < p1; g0 += group) {
        const int64_t g1 = std::min(p1, g0 + group);
        for (int64_t r = 0; r < rows; r += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, rows - r));
          int32_t off[Kern::MR];
          bool uniform = true;
          for (int i = 0; i < mr; ++i) {
            off[i] = Kern::offset(job, m0 + r + i);
            uniform = uniform && off[i] == off[0];
          }
          const auto fn = Kern::kernel(job, mr);
          for (int64_t p = g0; p < g1; ++p)
            for (int sub = 0; sub < NR / nrt; ++sub) {
              const int64_t n0 = p * NR + sub * nrt;
              if (n0 >= W.N) break;
              const Tile tile{ablock + r * astride, astride, mr, W.panel(p), W.panel_colsums(p), sub,
                              static_cast<int>(std::min<int64_t>(nrt, W.N - n0)), m0 + r, n0, off, uniform};
              fn(job, tile);
            }
        }
      }
    }
  });
}

}  // namespace
}  // namespace quench::kernels::u8s4
