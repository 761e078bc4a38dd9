#include "nn/layers/attention.hpp"

#include <cmath>

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

Tensor Attention::forward_multi(const tensor_list& inputs) { return attend(inputs, -1); }

Tensor Attention::forward_prefix(const tensor_list& inputs, int64_t tokens) {
  if (num_forward_hooks() > 0) return Tensor();
  return attend(inputs, tokens);
}

Tensor Attention::attend(const tensor_list& inputs, int64_t queries) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "Attention: expected inputs {x} or {x, key_padding_mask}, got ", inputs.size());
  const Tensor& x = inputs[0];
  QUENCH_CHECK(x.dim() == 3 && x.size(2) == dim, "Attention: expected x [B, N, ", dim, "], got ",
               shape_str(x.sizes()));
  // Fused: q, k, v are read in place from the packed qkv output, heads written side by side.
  Tensor qkv = (*child("qkv"))(x);  // [B, N, 3D]
  Tensor mask = inputs.size() == 2 ? inputs[1] : Tensor();
  if (mask.defined())
    QUENCH_CHECK(mask.dtype() == kUInt8 && mask.dim() == 2 && mask.size(0) == x.size(0) &&
                     mask.size(1) == x.size(1),
                 "Attention: expected a u8 key-padding mask [", x.size(0), ", ", x.size(1), "], got ",
                 dtype_name(mask.dtype()), " ", shape_str(mask.sizes()));
  Tensor out;  // [B, Q, D]
  if (num_forward_hooks() > 0) {
    // The probabilities as a tensor of the graph, for hooks (distillation losses on attention maps).
    Tensor probs = attention_probs(qkv, heads, scale, mask, queries);  // [B, H, Q, N]
    emit("probs", probs);
    out = attention_apply(probs, qkv, heads);
  } else {
    out = attention(qkv, heads, scale, mask, queries);  // the same bits in one op
  }
  return (*child("proj"))(out);
}

}  // namespace quench::nn
