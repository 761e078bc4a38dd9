// Internal: the register-tiled body of sgemm_small, written once over a vector type V (Vec512 in
// sgemm_small_avx512.cpp, Vec256 in sgemm_small_avx2.cpp) and compiled in each ISA's unit.
// V provides: kW lanes, kAcc accumulators the register file holds beside the B row, reg, zero(),
// bcast(const float*), from(reg) (the identity), load(p, lanes), store(p, reg, lanes) (lanes < kW
// masks the tail), fma(a, b, c); optionally Narrow, a narrower vector type with the same functions
// whose from() takes V's low lanes.
#pragma once
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/sgemm_small.hpp"

namespace quench::kernels::small {

struct Args {
  int64_t K;
  const float* a;  // row i0 of A(i, k)
  int64_t a_rs, a_ks;
  const float* b;  // column j0 of B
  int64_t ldb;
  float* c;  // C[i0, j0]
  int64_t ldc;
  int last;  // lanes of the last of the NV vectors (1..kW)
};

// R rows x NV vectors of C: per k, NV loads of B's row, R broadcasts of A, R * NV FMAs. The last
// vector (t.last lanes) is of type T: V itself, or V::Narrow (xmm beside zmm) when its lanes fit,
// as attention's 50 columns (3 x 16 + 2): on Zen 4 a 128-bit FMA takes half the issue slots of a
// 512-bit one (50 x 50 x 32: ~12% faster). Each element is the same FMA chain either way.
template <class V, class T, int R, int NV>
void tile(const Args& t) {
  constexpr int NF = NV - 1;  // full vectors before the last
  typename V::reg acc[R][NF > 0 ? NF : 1];
  typename T::reg tail[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NF; ++v) acc[r][v] = V::zero();
    tail[r] = T::zero();
  }
  const float* a = t.a;
  const float* b = t.b;
  for (int64_t k = 0; k < t.K; ++k, a += t.a_ks, b += t.ldb) {
    typename V::reg bv[NF > 0 ? NF : 1];
#pragma GCC unroll 4
    for (int v = 0; v < NF; ++v) bv[v] = V::load(b + v * V::kW, V::kW);
    const typename T::reg bt = T::load(b + NF * V::kW, t.last);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const typename V::reg av = V::bcast(a + r * t.a_rs);
#pragma GCC unroll 4
      for (int v = 0; v < NF; ++v) acc[r][v] = V::fma(av, bv[v], acc[r][v]);
      tail[r] = T::fma(T::from(av), bt, tail[r]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NF; ++v) V::store(t.c + r * t.ldc + v * V::kW, acc[r][v], V::kW);
    T::store(t.c + r * t.ldc + NF * V::kW, tail[r], t.last);
  }
}

inline constexpr int kMaxNV = 4;
inline constexpr int kMaxR = 12;

// Rows per tile for NV vectors: as many as the accumulators allow, at most kMaxR.
template <class V>
constexpr int rows_for(int nv) {
  return V::kAcc / nv < kMaxR ? V::kAcc / nv : kMaxR;
}

using TileFn = void (*)(const Args&);

template <class V, class T, int NV, int... Rm1>
constexpr std::array<TileFn, kMaxR> row_table(std::integer_sequence<int, Rm1...>) {
  return {(Rm1 + 1 <= rows_for<V>(NV) ? &tile<V, T, Rm1 + 1, NV> : nullptr)...};
}

// kTiles<V, T>[nv - 1][r - 1]: the tile for r rows and nv vectors, the last of type T.
template <class V, class T>
inline constexpr std::array<std::array<TileFn, kMaxR>, kMaxNV> kTiles = {
    row_table<V, T, 1>(std::make_integer_sequence<int, kMaxR>{}),
    row_table<V, T, 2>(std::make_integer_sequence<int, kMaxR>{}),
    row_table<V, T, 3>(std::make_integer_sequence<int, kMaxR>{}),
    row_table<V, T, 4>(std::make_integer_sequence<int, kMaxR>{})};

// The tile for r rows and nv vectors whose last has `last` lanes: its last vector narrow where V has
// narrower registers that hold those lanes.
template <class V>
TileFn pick_tile(int nv, int r, int last) {
  if constexpr (requires { typename V::Narrow; }) {
    if (last <= V::Narrow::kW) return kTiles<V, typename V::Narrow>[nv - 1][r - 1];
  }
  return kTiles<V, V>[nv - 1][r - 1];
}

// Column blocks of up to kMaxNV vectors, each swept by row tiles of balanced heights: M = 50 on
// 12-row tiles runs as 5 x 10 rather than 4 x 12 + 2, whose 2-row tile has too few independent
// FMA chains to cover their latency and took a tenth of the time for a twenty-fifth of the work.
template <class V>
void run(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_ks, const float* B,
         int64_t ldb, float* C, int64_t ldc) {
  constexpr int64_t kBlock = kMaxNV * V::kW;
  for (int64_t j0 = 0; j0 < N; j0 += kBlock) {
    const int64_t n = N - j0 < kBlock ? N - j0 : kBlock;
    const int nv = static_cast<int>((n + V::kW - 1) / V::kW);
    const int last = static_cast<int>(n - (nv - 1) * V::kW);
    const int64_t rmax = rows_for<V>(nv);
    const int64_t tiles = (M + rmax - 1) / rmax;
    for (int64_t t = 0, i0 = 0; t < tiles; ++t) {
      const int r = static_cast<int>((M - i0 + (tiles - t) - 1) / (tiles - t));
      pick_tile<V>(nv, r, last)(Args{K, A + i0 * a_rs, a_rs, a_ks, B + j0, ldb, C + i0 * ldc + j0, ldc, last});
      i0 += r;
    }
  }
}

}  // namespace quench::kernels::small
