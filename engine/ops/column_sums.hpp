// Column sums over many rows, the shape of every parameter gradient that sums over the batch (a
// Linear's bias, LayerNorm's weight and bias: [6400, 128] -> [128]), internal to engine/.
//
// The rows are cut into fixed chunks of kColumnChunkRows; a chunk streams its rows one after another,
// each row contiguous, adding row by row into its own double partial sums, and the partials are
// then added in chunk order. Every column's order is a function of the row count alone, so results
// do not depend on the thread count or the ISA path. (Walking column blocks down all the rows, as
// before, read rows 512 bytes apart and ran 4x slower than a contiguous pass.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/ops/row_math.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"

namespace quench::detail {

inline constexpr int64_t kColumnChunkRows = 64;

// S sums of N columns over rows [0, M): add_row(r, acc) adds row r's S summands into acc[s * N + j]
// (forced inline, so it is compiled into the AVX2 path); finish(s, j, total) receives each total.
template <int S, class AddRow, class Finish>
void column_sums(int64_t M, int64_t N, const AddRow& add_row, const Finish& finish) {
  const int64_t chunks = (M + kColumnChunkRows - 1) / kColumnChunkRows;
  std::vector<double> part(static_cast<size_t>(chunks * S * N), 0.0);
  const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
  kernels::parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    call_isa(avx2, [&]() QUENCH_ROW_INLINE {
      for (int64_t c = c0; c < c1; ++c) {
        double* acc = part.data() + c * S * N;
        for (int64_t r = c * kColumnChunkRows, r1 = std::min(M, r + kColumnChunkRows); r < r1; ++r)
          add_row(r, acc);
      }
    });
  });
  // The partials' sum: chunks * S * N adds (100 x 256 for a LayerNorm over 6400 rows), not worth
  // waking the pool for.
  std::vector<double> total(static_cast<size_t>(S * N), 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    const double* p = part.data() + c * S * N;
    for (int64_t i = 0; i < S * N; ++i) total[i] += p[i];
  }
  for (int64_t i = 0; i < S * N; ++i) finish(static_cast<int>(i / N), i % N, total[i]);
}

}  // namespace quench::detail
