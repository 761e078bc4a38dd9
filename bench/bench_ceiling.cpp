// What the core can do at best: the GEMM microkernels' instruction mixes in loops whose operands
// stay in registers or in L1, timed on one thread. bench_gemm's figures are read against these: a
// kernel cannot beat its mix's ceiling, and two kernels whose mixes have different ceilings cannot run
// at the same speed. Names:
//   ceiling/f32/fma_zmm/reg       20 zmm FMA chains, no memory operand at all (not a GEMM: on Zen 4
//                                 this runs above one zmm FMA per cycle, any load in the loop brings
//                                 it back to one)
//   ceiling/f32/fma_zmm/l1        the 6x64 tile of kernels/sgemm_avx512.cpp: per k, 4 B loads and 6
//                                 A broadcasts from L1, 24 FMAs (without the tile's prefetches)
//   ceiling/u8s8/vnni_zmm         the 6x64 tile of kernels/gemm_u8s8_vnni.cpp: 24 vpdpbusd per k
//                                 group of 4
//   ceiling/u8s8/avx2_exact       the 6x16 tile of kernels/gemm_u8s8_avx2.cpp: vpmaddwd + vpaddd on
//                                 int16, exact (4 ops per 32 multiply-adds)
//   ceiling/u8s8/avx2_maddubs     the same tile with oneDNN's AVX2 mix: vpmaddubsw + vpmaddwd(ones) +
//                                 vpaddd (3 ops per 32; vpmaddubsw saturates int16 pair sums). With
//                                 the ones vector 17 ymm would be live: one operand comes from L1.
//                                 It still reaches the 32 per cycle that Zen 4's two multiply pipes allow.
// Read these from a clang build (the README's): gcc 12 moves the vpdpbusd accumulators through extra
// registers and memory, so its VNNI and AVX2 cases measure the compiler rather than the core.
// Counters: GFLOPS or GOPS (2 per multiply-add, as bench_gemm), per_cycle (multiply-adds per clock
// cycle) and GHz (the clock, measured by a chain of dependent adds right after each case; a core that
// lowers its clock for AVX-512 would show a per_cycle too low).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstring>

#include "kernels/isa.hpp"

namespace {

using quench::kernels::Isa;

// Keeps the compiler from folding the loop body across iterations (the values never change).
#define QUENCH_OPAQUE(v) asm volatile("" : "+v"(v))

// The clock now: a chain of dependent scalar adds, one per cycle, for ~25 ms.
double measure_ghz() {
  const int64_t n = 25'000'000;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t x = 0, one = 1;  // register operands: some cores fold an add of an immediate at rename
  for (int64_t i = 0; i < n; ++i)
    asm volatile("add %1, %0\n\tadd %1, %0\n\tadd %1, %0\n\tadd %1, %0" : "+r"(x) : "r"(one));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(x);
  return 4.0 * n / s * 1e-9;
}

// Runs body() per iteration; sets the rate counter `name` (2 ops per multiply-add) and per_cycle
// (multiply-adds per cycle at the clock measured right after the loop; the clock drifts, so per
// case).
template <class Body>
void run_timed(benchmark::State& st, Body body, double macs_per_iter, const char* name) {
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) body();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double macs = macs_per_iter * static_cast<double>(st.iterations()), ghz = measure_ghz();
  st.counters[name] = benchmark::Counter(2.0 * macs * 1e-9, benchmark::Counter::kIsRate);
  st.counters["per_cycle"] = macs / (s * ghz * 1e9);
  st.counters["GHz"] = ghz;
}

bool need(benchmark::State& st, Isa isa) {
  if (quench::kernels::cpu_isa() >= isa) return true;
  st.SkipWithError("this CPU lacks the instructions");
  return false;
}

constexpr int64_t kSteps = 4096;  // loop trips per benchmark iteration

// 5 rows x 4 zmm: 20 accumulators + 4 B + 5 A = 29 of the 32 registers (6 rows would spill).
__attribute__((target("avx512f"), noinline)) void fma_reg(int64_t n, float* out) {
  __m512 acc[20], b[4], a[5];
#pragma GCC unroll 24
  for (int i = 0; i < 20; ++i) acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 24
  for (int v = 0; v < 4; ++v) b[v] = _mm512_set1_ps(1e-3f * (v + 1));
#pragma GCC unroll 24
  for (int r = 0; r < 5; ++r) a[r] = _mm512_set1_ps(1.f + r);
  for (int64_t k = 0; k < n; ++k) {
#pragma GCC unroll 24
    for (int r = 0; r < 5; ++r)
#pragma GCC unroll 24
      for (int v = 0; v < 4; ++v) acc[r * 4 + v] = _mm512_fmadd_ps(a[r], b[v], acc[r * 4 + v]);
#pragma GCC unroll 24
    for (int v = 0; v < 4; ++v) QUENCH_OPAQUE(b[v]);
  }
  __m512 s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < 20; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_storeu_ps(out, s);
}

// The 6x64 tile: per k, 4 B vectors and 6 A broadcasts read from L1.
__attribute__((target("avx512f"), noinline)) void fma_l1(int64_t n, const float* a, const float* b, float* out) {
  __m512 acc[24];
#pragma GCC unroll 24
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t kk = k & 63;  // 64 k of A (6 floats) and B (64 floats): 17 KB, in L1
    __m512 bv[4];
#pragma GCC unroll 24
    for (int v = 0; v < 4; ++v) bv[v] = _mm512_loadu_ps(b + kk * 64 + 16 * v);
#pragma GCC unroll 24
    for (int r = 0; r < 6; ++r) {
      const __m512 av = _mm512_set1_ps(a[kk * 6 + r]);
#pragma GCC unroll 24
      for (int v = 0; v < 4; ++v) acc[r * 4 + v] = _mm512_fmadd_ps(av, bv[v], acc[r * 4 + v]);
    }
  }
  __m512 s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, acc[i]);
  _mm512_storeu_ps(out, s);
}

void bm_fma_reg(benchmark::State& st) {
  if (!need(st, Isa::avx512)) return;
  alignas(64) float out[16];
  run_timed(st, [&] { fma_reg(kSteps, out); benchmark::DoNotOptimize(out); }, double(kSteps) * 20 * 16, "GFLOPS");
  benchmark::DoNotOptimize(out[0]);
}

void bm_fma_l1(benchmark::State& st) {
  if (!need(st, Isa::avx512)) return;
  alignas(64) static float a[64 * 6], b[64 * 64];
  for (int i = 0; i < 64 * 6; ++i) a[i] = 1e-3f * i;
  for (int i = 0; i < 64 * 64; ++i) b[i] = 1e-4f * i;
  alignas(64) float out[16];
  run_timed(st, [&] { fma_l1(kSteps, a, b, out); benchmark::DoNotOptimize(out); }, double(kSteps) * 24 * 16, "GFLOPS");
  benchmark::DoNotOptimize(out[0]);
}

// The int8 tiles as the kernels run them: per k group, the tile's B vectors loaded and one A value
// broadcast per row, from buffers in L1 (64 k groups, cycled).
// 6 rows x 4 zmm of vpdpbusd (4 u8 x s8 products per int32 lane), kernels/gemm_u8s8_vnni.cpp's tile.
__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) void vnni_tile(int64_t n, const uint8_t* a,
                                                                                 const int8_t* b, int32_t* out) {
  __m512i acc[24];
#pragma GCC unroll 24
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_setzero_si512();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t kk = k & 63;
    __m512i bv[4];
#pragma GCC unroll 24
    for (int v = 0; v < 4; ++v) bv[v] = _mm512_loadu_si512(b + kk * 256 + 64 * v);
#pragma GCC unroll 24
    for (int r = 0; r < 6; ++r) {
      int32_t a4;
      std::memcpy(&a4, a + kk * 24 + 4 * r, 4);
      const __m512i av = _mm512_set1_epi32(a4);
#pragma GCC unroll 24
      for (int v = 0; v < 4; ++v) acc[r * 4 + v] = _mm512_dpbusd_epi32(acc[r * 4 + v], av, bv[v]);
    }
  }
  __m512i s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < 24; ++i) s = _mm512_add_epi32(s, acc[i]);
  _mm512_storeu_si512(out, s);
}

// 6 rows x 2 ymm, products summed into int32 accumulators, as kernels/gemm_u8s8_avx2.cpp's tile.
// Exact (Maddubs false): int16 pairs, vpmaddwd then vpaddd (16 multiply-adds per two ops). Maddubs:
// oneDNN's AVX2 mix, vpmaddubsw (32 u8 x s8 products summed in saturating int16 pairs), vpmaddwd
// against ones, vpaddd (32 multiply-adds per three ops).
template <bool Maddubs>
__attribute__((target("avx2"), noinline)) void avx2_tile(int64_t n, const uint8_t* a, const int8_t* b,
                                                         int32_t* out) {
  __m256i acc[12];
  const __m256i ones = _mm256_set1_epi16(1);
#pragma GCC unroll 24
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_setzero_si256();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t kk = k & 63;
    const __m256i bv[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kk * 64)),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + kk * 64 + 32))};
#pragma GCC unroll 24
    for (int r = 0; r < 6; ++r) {
      int32_t a4;
      std::memcpy(&a4, a + kk * 24 + 4 * r, 4);
      const __m256i av = _mm256_set1_epi32(a4);
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        const __m256i p = Maddubs ? _mm256_madd_epi16(_mm256_maddubs_epi16(av, bv[v]), ones)
                                  : _mm256_madd_epi16(av, bv[v]);
        acc[r * 2 + v] = _mm256_add_epi32(acc[r * 2 + v], p);
      }
    }
  }
  __m256i s = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < 12; ++i) s = _mm256_add_epi32(s, acc[i]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), s);
}

using IntTile = void (*)(int64_t, const uint8_t*, const int8_t*, int32_t*);

void run_int(benchmark::State& st, IntTile fn, Isa isa, double macs_per_step) {
  if (!need(st, isa)) return;
  alignas(64) static uint8_t a[64 * 24];
  alignas(64) static int8_t b[64 * 256];
  for (int i = 0; i < 64 * 24; ++i) a[i] = static_cast<uint8_t>(i * 7);
  for (int i = 0; i < 64 * 256; ++i) b[i] = static_cast<int8_t>(i * 5);
  alignas(64) int32_t out[16];
  run_timed(st, [&] { fn(kSteps, a, b, out); benchmark::DoNotOptimize(out); }, double(kSteps) * macs_per_step, "GOPS");
  benchmark::DoNotOptimize(out[0]);
}
void bm_vnni(benchmark::State& st) { run_int(st, vnni_tile, Isa::avx512_vnni, 24 * 64); }
void bm_avx2_exact(benchmark::State& st) { run_int(st, avx2_tile<false>, Isa::avx2, 12 * 16); }
void bm_avx2_maddubs(benchmark::State& st) { run_int(st, avx2_tile<true>, Isa::avx2, 12 * 32); }

BENCHMARK(bm_fma_reg)->Name("ceiling/f32/fma_zmm/reg");
BENCHMARK(bm_fma_l1)->Name("ceiling/f32/fma_zmm/l1");
BENCHMARK(bm_vnni)->Name("ceiling/u8s8/vnni_zmm");
BENCHMARK(bm_avx2_exact)->Name("ceiling/u8s8/avx2_exact");
BENCHMARK(bm_avx2_maddubs)->Name("ceiling/u8s8/avx2_maddubs");

}  // namespace
