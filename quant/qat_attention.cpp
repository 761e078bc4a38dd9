#include "quant/qat_attention.hpp"

#include <limits>

#include "engine/ops.hpp"

namespace quench::quant {

QATAttention::QATAttention(nn::Attention& a, const QConfig& qc)
    : Module("QATAttention"), dim(a.dim), heads(a.heads), head_dim(a.head_dim), scale(a.scale) {
  register_module("qkv", a.child("qkv"));
  register_module("proj", a.child("proj"));
  // The matmul inputs stay per tensor (observed) even when the Linear inputs are quantized per token.
  QuantSpec as = qc.activation;
  as.per_token = false;
  for (const char* n : {"q_fake_quant", "k_fake_quant", "probs_fake_quant", "v_fake_quant"})
    register_module(n, std::make_shared<FakeQuantize>(as, qc.activation_observer, 0, qc.learnable_scale));
  train(a.is_training());
}

std::string QATAttention::extra_repr() const {
  return "dim=" + std::to_string(dim) + ", heads=" + std::to_string(heads);
}

Tensor QATAttention::forward(const Tensor& x) { return forward_multi({x}); }

Tensor QATAttention::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "QATAttention: expected inputs {x} or {x, key_padding_mask}, got ", inputs.size());
  const Tensor& x = inputs[0];
  QUENCH_CHECK(x.dim() == 3 && x.size(2) == dim, "QATAttention: expected x [B, N, ", dim, "], got ",
               shape_str(x.sizes()));
  const int64_t B = x.size(0), N = x.size(1);
  // [B, N, 3D] -> [3, B, H, N, hd]
  Tensor qkv = (*child("qkv"))(x).reshape({B, N, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  Tensor q = (*child("q_fake_quant"))(qkv.select(0, 0));
  Tensor k = (*child("k_fake_quant"))(qkv.select(0, 1));
  Tensor v = (*child("v_fake_quant"))(qkv.select(0, 2));
  Tensor scores = matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, N, N]
  if (inputs.size() == 2 && inputs[1].defined()) {
    const Tensor& mask = inputs[1];
    QUENCH_CHECK(mask.dtype() == kUInt8 && mask.dim() == 2 && mask.size(0) == B && mask.size(1) == N,
                 "QATAttention: expected a u8 key-padding mask [", B, ", ", N, "], got ",
                 dtype_name(mask.dtype()), " ", shape_str(mask.sizes()));
    scores = masked_fill(scores, mask.view({B, 1, 1, N}), -std::numeric_limits<double>::infinity());
  }
  Tensor probs = softmax(scores, -1);
  emit("probs", probs);
  Tensor out = matmul((*child("probs_fake_quant"))(probs), v).transpose(1, 2).reshape({B, N, dim});
  return (*child("proj"))(out);
}

}  // namespace quench::quant
