#include "nn/layers/attention.hpp"

#include <cmath>
#include <limits>

#include "engine/ops.hpp"
#include "nn/layers/linear.hpp"

namespace quench::nn {

Attention::Attention(int64_t d, int64_t h, bool qkv_bias) : Attention(d, h, qkv_bias, default_generator()) {}

Attention::Attention(int64_t d, int64_t h, bool qkv_bias, Generator& gen)
    : Module("Attention"), dim(d), heads(h), head_dim(h > 0 ? d / h : 0) {
  QUENCH_CHECK(d > 0 && h > 0 && d % h == 0, "Attention: dim (", d, ") must be a positive multiple of heads (",
               h, ")");
  scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  register_module("qkv", std::make_shared<Linear>(d, 3 * d, qkv_bias, gen));
  register_module("proj", std::make_shared<Linear>(d, d, true, gen));
}

std::string Attention::extra_repr() const {
  return "dim=" + std::to_string(dim) + ", heads=" + std::to_string(heads);
}

Tensor Attention::forward(const Tensor& x) { return forward_multi({x}); }

Tensor Attention::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "Attention: expected inputs {x} or {x, key_padding_mask}, got ", inputs.size());
  const Tensor& x = inputs[0];
  QUENCH_CHECK(x.dim() == 3 && x.size(2) == dim, "Attention: expected x [B, N, ", dim, "], got ",
               shape_str(x.sizes()));
  const int64_t B = x.size(0), N = x.size(1);
  // [B, N, 3D] -> [3, B, H, N, hd]
  Tensor qkv = (*child("qkv"))(x).reshape({B, N, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  Tensor q = qkv.select(0, 0), k = qkv.select(0, 1), v = qkv.select(0, 2);
  Tensor scores = matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, N, N]
  if (inputs.size() == 2 && inputs[1].defined()) {
    const Tensor& mask = inputs[1];
    QUENCH_CHECK(mask.dtype() == kUInt8 && mask.dim() == 2 && mask.size(0) == B && mask.size(1) == N,
                 "Attention: expected a u8 key-padding mask [", B, ", ", N, "], got ",
                 dtype_name(mask.dtype()), " ", shape_str(mask.sizes()));
    scores = masked_fill(scores, mask.view({B, 1, 1, N}), -std::numeric_limits<double>::infinity());
  }
  Tensor probs = softmax(scores, -1);
  emit("probs", probs);
  Tensor out = matmul(probs, v).transpose(1, 2).reshape({B, N, dim});  // [B, N, D]
  return (*child("proj"))(out);
}

}  // namespace quench::nn
