// Internal: the blocking and threading shared by the SIMD u8s8 paths, instantiated once per ISA TU
// with that TU's micro-kernel (anonymous namespace: every TU keeps its own copy).
//
// C is cut into tasks of MC rows x a run of weight panels; parallel_for hands whole tasks to
// threads, so every output is computed by one thread in one fixed order (integer, exact: the
// blocking may vary with the thread count without changing a bit). A task packs its MC activation
// rows once (all of K, MC*Kp at most ~256 KiB so they stay in L2; u8 rows the VNNI kernel can read
// in place are not copied), then walks its panels in groups that fit in L1, running the
// micro-kernel row group by row group over the group. K is not split (no KC loop, a deliberate
// departure from BLIS): the 6x64 VNNI tile needs only ~11 bytes/cycle of weights + activations,
// well inside what L2 delivers, so the whole dot product stays in registers and the epilogue runs
// on it directly, with no partial sums going through memory. Measured here against oneDNN that is
// at or above its speed for K from 128 to 3072 (see bench/bench_gemm_u8s8.cpp).
#pragma once
#include <algorithm>
#include <memory>

#include "kernels/gemm_u8s8_internal.hpp"
#include "kernels/parallel.hpp"

namespace quench::kernels::u8s8 {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How the two vpdpbusd paths (AVX-512 VNNI, AVX-VNNI) take activations: vpdpbusd wants u8, so s8
// ones are stored as a + 128 and 128 more column sums come off; u8 rows with K a multiple of 4 are
// read in place, the others copied with K zero padded to Kp.
struct VnniActivations {
  static constexpr int AElem = 1;
  static int32_t offset(const Job& job) { return job.za + (job.a_signed ? 128 : 0); }
  static bool direct(const Job& job) { return !job.a_signed && job.K % 4 == 0; }
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

// Kern provides: MR, NR, AElem (bytes per packed activation), direct(job) (read A in place),
// pack_a(job, m0, rows, dst, stride), offset(job) and kernel(out, mr) -> fn(kp, a, astride, w,
// colsum, offset, TileOut, ncols), which starts every accumulator at -offset * colsum[n] (the
// zero-point compensation) and leaves an mr x NR tile (ncols valid) through the `out` epilogue;
// null where the kernel has no such epilogue (s32 always exists): the tile then goes through an
// int32 buffer and epilogue_row_avx2.
template <class Kern>
void run_gemm(const Job& job) {
  constexpr int MR = Kern::MR, NR = Kern::NR;
  const PackedWeightsU8S8& W = *job.W;
  const int64_t M = job.M, Kp = W.Kp, npan = W.num_panels();
  // Activations the kernel can read in place (u8, K a multiple of 4 for VNNI) are not copied.
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

  const int32_t offset = Kern::offset(job);
  // Panels go in groups that fit in 24 of L1's 32 KiB; down the rows of the block each row group
  // runs over the group's panels, so a C row is written in runs of group * NR channels while the
  // group's weights stay in L1. Large K: a group is one panel, reused down all the rows from L2.
  const int64_t group = std::max<int64_t>(1, 24 * 1024 / W.panel_bytes);
  // One MR x NR tile of C: rows m0+r.. of the packed block a, channels of panel p.
  auto tile_at = [&](int64_t p, int64_t m0, int64_t r, int64_t rows, const uint8_t* abase) {
    alignas(64) int32_t tile[MR * NR];
    const int64_t n0 = p * NR;
    const int ncols = static_cast<int>(std::min<int64_t>(NR, W.N - n0));
    const int mr = static_cast<int>(std::min<int64_t>(MR, rows - r));
    const uint8_t* a = abase + r * astride;
    const uint8_t* w = W.panel(p);
    const int32_t* cs = W.panel_colsum(p);
    if (auto fn = Kern::kernel(job.out, mr)) {
      const int64_t elem = job.out == U8S8Output::u8 ? 1 : 4;
      void* c = static_cast<uint8_t*>(job.C) + ((m0 + r) * job.ldc + n0) * elem;
      fn(Kp, a, astride, w, cs, offset,
         TileOut{c, job.ldc, job.mult ? job.mult + n0 : nullptr, job.bias ? job.bias + n0 : nullptr, job.zy,
                 job.res ? job.res + (m0 + r) * job.ldr + n0 : nullptr, job.ldr},
         ncols);
    } else {
      Kern::kernel(U8S8Output::s32, mr)(Kp, a, astride, w, cs, offset, TileOut{tile, NR, nullptr, nullptr, 0.f},
                                        ncols);
      for (int i = 0; i < mr; ++i) epilogue_row_avx2(job, m0 + r + i, n0, ncols, tile + i * NR);
    }
  };
  parallel_for(mb * nb, 1, [&](int64_t t0, int64_t t1) {
    // Grow-only per-thread buffer: a fresh allocation of this size would be mmapped and page
    // faulted on every call.
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
        for (int64_t r = 0; r < rows; r += MR)
          for (int64_t p = g0; p < g1; ++p) tile_at(p, m0, r, rows, ablock);
      }
    }
  });
}

}  // namespace
}  // namespace quench::kernels::u8s8
