// Internal: layer_norm's forward on M contiguous rows of N floats, on the calling thread: the op itself
// (engine/ops/layer_norm.cpp) runs it on chunks of rows from a parallel_for, and the fused int8 block
// (quant/int8_block.cpp) on a few rows at a time straight into its row quantizer, so both give the
// same bits. w and b may be null (no affine); mean and rstd (one float per row) may be null.
#pragma once
#include <cstdint>

namespace quench::detail {

void layer_norm_rows(const float* x, int64_t M, int64_t N, const float* w, const float* b, double eps, float* y,
                     float* mean, float* rstd);

}  // namespace quench::detail
