// dropout_rows dispatch and the _ref twins.
#include "kernels/dropout_rows.hpp"

#include <iterator>

#include "kernels/isa.hpp"

namespace quench::kernels {

void dropout_rows_avx2(const float*, int64_t, uint64_t, uint64_t, uint32_t, float, uint8_t*, float*);
void dropout_rows_avx512(const float*, int64_t, uint64_t, uint64_t, uint32_t, float, uint8_t*, float*);
void dropout_backward_rows_avx2(const float*, const uint8_t*, int64_t, float, float*);
void dropout_backward_rows_avx512(const float*, const uint8_t*, int64_t, float, float*);

using RowsFn = void (*)(const float*, int64_t, uint64_t, uint64_t, uint32_t, float, uint8_t*, float*);
using RowsBackwardFn = void (*)(const float*, const uint8_t*, int64_t, float, float*);
// Indexed by Isa.
static const RowsFn kRows[] = {dropout_rows_ref, dropout_rows_avx2, dropout_rows_avx2, dropout_rows_avx512,
                               dropout_rows_avx512};
static_assert(std::size(kRows) == kNumIsas, "one entry per Isa");
static const RowsBackwardFn kRowsBackward[] = {dropout_backward_rows_ref, dropout_backward_rows_avx2,
                                               dropout_backward_rows_avx2, dropout_backward_rows_avx512,
                                               dropout_backward_rows_avx512};
static_assert(std::size(kRowsBackward) == kNumIsas, "one entry per Isa");

void dropout_rows(const float* x, int64_t n, uint64_t key, uint64_t first, uint32_t keep_below, float scale,
                  uint8_t* mask, float* y) {
  kRows[static_cast<int>(active_isa())](x, n, key, first, keep_below, scale, mask, y);
}
void dropout_backward_rows(const float* g, const uint8_t* mask, int64_t n, float scale, float* dx) {
  kRowsBackward[static_cast<int>(active_isa())](g, mask, n, scale, dx);
}

void dropout_rows_ref(const float* x, int64_t n, uint64_t key, uint64_t first, uint32_t keep_below, float scale,
                      uint8_t* mask, float* y) {
  dropout_rows_loop(x, n, key, first, keep_below, scale, mask, y);
}
void dropout_backward_rows_ref(const float* g, const uint8_t* mask, int64_t n, float scale, float* dx) {
  dropout_backward_rows_loop(g, mask, n, scale, dx);
}

}  // namespace quench::kernels
