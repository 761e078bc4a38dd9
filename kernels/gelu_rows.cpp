// gelu_rows dispatch and the _ref twins.
#include "kernels/gelu_rows.hpp"

#include <iterator>

#include "kernels/isa.hpp"
#include "kernels/vmath.hpp"

namespace quench::kernels {

void gelu_rows_avx2(const float* x, int64_t n, float* y);
void gelu_backward_rows_avx2(const float* g, const float* x, int64_t n, float* dx);
void gelu_rows_avx512(const float* x, int64_t n, float* y);
void gelu_backward_rows_avx512(const float* g, const float* x, int64_t n, float* dx);

using RowsFn = void (*)(const float*, int64_t, float*);
using RowsBackwardFn = void (*)(const float*, const float*, int64_t, float*);
// Indexed by Isa.
static const RowsFn kRows[] = {gelu_rows_ref, gelu_rows_avx2, gelu_rows_avx2, gelu_rows_avx512,
                                       gelu_rows_avx512};
static_assert(std::size(kRows) == kNumIsas, "one entry per Isa");
static const RowsBackwardFn kRowsBackward[] = {gelu_backward_rows_ref, gelu_backward_rows_avx2,
                                                       gelu_backward_rows_avx2, gelu_backward_rows_avx512, gelu_backward_rows_avx512};
static_assert(std::size(kRowsBackward) == kNumIsas, "one entry per Isa");

void gelu_rows(const float* x, int64_t n, float* y) { kRows[static_cast<int>(active_isa())](x, n, y); }
void gelu_backward_rows(const float* g, const float* x, int64_t n, float* dx) {
  kRowsBackward[static_cast<int>(active_isa())](g, x, n, dx);
}

void gelu_rows_ref(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = vgelu(x[i]);
}
void gelu_backward_rows_ref(const float* g, const float* x, int64_t n, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = vgelu_backward(g[i], x[i]);
}

}  // namespace quench::kernels
