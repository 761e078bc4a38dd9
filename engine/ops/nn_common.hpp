// Helpers shared by the nn ops (internal to engine/): viewing a tensor as [outer, n, inner] around
// one dim, Reduction names, and a sum whose result does not depend on the thread count.
#pragma once
#include <algorithm>
#include <vector>

#include "engine/ops/nn_ops.hpp"
#include "engine/tensor.hpp"
#include "kernels/parallel.hpp"

namespace quench::detail {

// A contiguous tensor seen as [outer, n, inner] where n is the size of `dim`.
struct DimLayout {
  int64_t outer = 1, n = 1, inner = 1;
};

inline DimLayout dim_layout(const Shape& s, int64_t dim) {
  DimLayout l;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
    if (d < dim) l.outer *= s[d];
    else if (d == dim) l.n = s[d];
    else l.inner *= s[d];
  }
  return l;
}

inline const char* reduction_name(Reduction r) {
  static const char* const names[] = {"none", "mean", "sum", "batchmean"};
  return names[static_cast<int>(r)];
}

// sum_{i<n} f(i) in double. The range is cut into fixed chunks (independent of the thread count),
// each summed in order, and the chunk sums are added in order: bit-identical for any thread count.
template <class F>
double deterministic_sum(int64_t n, F f) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks <= 1) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += f(i);
    return s;
  }
  std::vector<double> part(chunks, 0.0);
  kernels::parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double s = 0.0;
      const int64_t hi = std::min(n, (c + 1) * kChunk);
      for (int64_t i = c * kChunk; i < hi; ++i) s += f(i);
      part[c] = s;
    }
  });
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

// Rows per parallel_for chunk so that a chunk holds about `work` elements.
inline int64_t row_grain(int64_t row_len, int64_t work = 8192) {
  return std::max<int64_t>(1, work / std::max<int64_t>(1, row_len));
}

}  // namespace quench::detail
