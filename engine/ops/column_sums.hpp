// Column sums over many rows, the shape of every parameter gradient that sums over the batch (a
// Linear's bias, LayerNorm's weight and bias: [6400, 128] -> [128]), internal to engine/.
//
// The rows are cut into fixed chunks (column_chunk_rows: 64 rows, more when there would be more than
// 256 chunks or more than 2^21 partial sums); a chunk streams its rows one after another, each row
// contiguous, adding row by row into its own double partial sums, and the partials are then added
// in chunk order. Every column's order is a function of M and N alone, so results do not depend on
// the thread count or the ISA path. (Walking column blocks down all the rows, as before, read rows
// 512 bytes apart and ran 4x slower than a contiguous pass.) Chunks and blocks of 1024 columns are
// the parallel tasks, so a few rows of many columns still use every thread.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/ops/row_math.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"

namespace quench::detail {

inline int64_t column_chunk_rows(int64_t M, int64_t partial_sums_per_chunk) {
  const int64_t max_chunks = std::clamp<int64_t>((int64_t(1) << 21) / std::max<int64_t>(1, partial_sums_per_chunk),
                                                 1, 256);
  return std::max<int64_t>(64, (M + max_chunks - 1) / max_chunks);
}

// S sums of N columns over rows [0, M): add_row(r, j0, j1, acc) adds row r's S summands of columns
// [j0, j1) into acc[s * N + j] (forced inline, so it is compiled into the wide path); finish(s, j,
// total) receives each total.
template <int S, class AddRow, class Finish>
void column_sums(int64_t M, int64_t N, const AddRow& add_row, const Finish& finish) {
  constexpr int64_t kBlock = 1024;
  const int64_t rows = column_chunk_rows(M, S * N), chunks = (M + rows - 1) / rows;
  const int64_t blocks = (N + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(chunks * S * N), 0.0);
  kernels::parallel_for(chunks * blocks, 1, [&](int64_t t0, int64_t t1) {
    call_wide([&]() QUENCH_ROW_INLINE {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t c = t / blocks, j0 = (t % blocks) * kBlock, j1 = std::min(N, j0 + kBlock);
        double* acc = part.data() + c * S * N;
        for (int64_t r = c * rows, r1 = std::min(M, r + rows); r < r1; ++r) add_row(r, j0, j1, acc);
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
