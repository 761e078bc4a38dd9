// attn_softmax_rows dispatch and the _ref twins.
#include "kernels/softmax_rows.hpp"

#include <iterator>

#include "kernels/isa.hpp"
#include "kernels/softmax_rows_scalar.hpp"

namespace quench::kernels {

void attn_softmax_rows_avx2(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y);
void attn_softmax_rows_backward_avx2(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                     float* dx);
void attn_softmax_rows_avx512(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask,
                              float* y);
void attn_softmax_rows_backward_avx512(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                       float* dx);

using RowsFn = void (*)(const float*, int64_t, int64_t, float, const uint8_t*, float*);
using RowsBackwardFn = void (*)(const float*, const float*, int64_t, int64_t, float, float*);
// Indexed by Isa.
static const RowsFn kRows[] = {attn_softmax_rows_ref, attn_softmax_rows_avx2, attn_softmax_rows_avx2, attn_softmax_rows_avx512,
                                       attn_softmax_rows_avx512};
static_assert(std::size(kRows) == kNumIsas, "one entry per Isa");
static const RowsBackwardFn kRowsBackward[] = {
    attn_softmax_rows_backward_ref, attn_softmax_rows_backward_avx2, attn_softmax_rows_backward_avx2,
    attn_softmax_rows_backward_avx512,
    attn_softmax_rows_backward_avx512};
static_assert(std::size(kRowsBackward) == kNumIsas, "one entry per Isa");

void attn_softmax_rows(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y) {
  kRows[static_cast<int>(active_isa())](x, rows, n, scale, mask, y);
}
void attn_softmax_rows_backward(const float* y, const float* g, int64_t rows, int64_t n, float scale, float* dx) {
  kRowsBackward[static_cast<int>(active_isa())](y, g, rows, n, scale, dx);
}

void attn_softmax_rows_ref(const float* x, int64_t rows, int64_t n, float scale, const uint8_t* mask, float* y) {
  srows::softmax_rows(x, rows, n, scale, mask, y);
}
void attn_softmax_rows_backward_ref(const float* y, const float* g, int64_t rows, int64_t n, float scale,
                                    float* dx) {
  srows::softmax_rows_backward(y, g, rows, n, scale, dx);
}

}  // namespace quench::kernels
