// Matrix products on the kernels' GEMMs.
#pragma once
#include "engine/tensor.hpp"

namespace quench {

// torch.matmul: 1-D and 2-D operands, and batched N-D operands broadcasting over the batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x W^T + b, x [..., in], weight [out, in], bias [out] or undefined: one GEMM, bias fused.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

}  // namespace quench
