// Strided N-d iteration shared by element-wise ops, copies and reductions (internal to engine/).
//
// The shape is first simplified: size-1 dims are dropped and neighbouring dims that are contiguous
// for every operand are merged, so the common cases (contiguous tensors, a bias broadcast over rows)
// become a few long rows. fn is then called once per innermost row.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "engine/shape.hpp"
#include "kernels/parallel.hpp"

namespace quench::detail {

template <size_t N>
struct StridedLayout {
  Shape sizes;                              // outer..inner, simplified
  std::array<std::vector<int64_t>, N> strides;

  StridedLayout(const Shape& shape, const std::array<const Shape*, N>& op_strides) {
    // Keep non-trivial dims.
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      sizes.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) strides[k].push_back((*op_strides[k])[d]);
    }
    // Merge dim i into dim i+1 when every operand steps through both as one.
    Shape s2;
    std::array<std::vector<int64_t>, N> st2;
    for (size_t d = 0; d < sizes.size(); ++d) {
      bool merge = !s2.empty();
      for (size_t k = 0; k < N && merge; ++k)
        merge = st2[k].back() == strides[k][d] * sizes[d];
      if (merge) {
        s2.back() *= sizes[d];
        for (size_t k = 0; k < N; ++k) st2[k].back() = strides[k][d];
      } else {
        s2.push_back(sizes[d]);
        for (size_t k = 0; k < N; ++k) st2[k].push_back(strides[k][d]);
      }
    }
    sizes = std::move(s2);
    strides = std::move(st2);
    if (sizes.empty()) {
      sizes.push_back(1);
      for (size_t k = 0; k < N; ++k) strides[k].push_back(0);
    }
  }

  int64_t inner() const { return sizes.back(); }
  int64_t rows() const {
    int64_t r = 1;
    for (size_t d = 0; d + 1 < sizes.size(); ++d) r *= sizes[d];
    return r;
  }
  // Element offsets of every operand at the start of outer row `row`.
  std::array<int64_t, N> row_offsets(int64_t row) const {
    std::array<int64_t, N> off{};
    for (size_t d = sizes.size() - 1; d-- > 0;) {
      int64_t i = row % sizes[d];
      row /= sizes[d];
      for (size_t k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
    return off;
  }
  std::array<int64_t, N> inner_strides() const {
    std::array<int64_t, N> s{};
    for (size_t k = 0; k < N; ++k) s[k] = strides[k].back();
    return s;
  }
};

// fn(offsets, n, inner_strides) for every row; rows are split over threads when the work is large.
template <size_t N, class F>
void for_each_row(const Shape& shape, const std::array<const Shape*, N>& op_strides, F&& fn,
                  int64_t grain_elems = 32768) {
  StridedLayout<N> lay(shape, op_strides);
  const int64_t rows = lay.rows(), n = lay.inner();
  const auto is = lay.inner_strides();
  if (rows * n == 0) return;
  int64_t grain = std::max<int64_t>(1, grain_elems / std::max<int64_t>(1, n));
  if (rows == 1 && n >= 2 * grain_elems) {
    // One long row: split it into pieces so it still runs on every thread.
    int64_t pieces = (n + grain_elems - 1) / grain_elems;
    kernels::parallel_for(pieces, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        int64_t lo = p * n / pieces, hi = (p + 1) * n / pieces;
        std::array<int64_t, N> off{};
        for (size_t k = 0; k < N; ++k) off[k] = lo * is[k];
        fn(off, hi - lo, is);
      }
    });
    return;
  }
  kernels::parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) fn(lay.row_offsets(r), n, is);
  });
}

}  // namespace quench::detail
