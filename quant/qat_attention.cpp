#include "quant/qat_attention.hpp"

#include <limits>

#include "engine/ops.hpp"

namespace quench::quant {

QATAttention::QATAttention(nn::Attention& a, const QConfig& qc)
    : Module("QATAttention"), dim(a.dim), heads(a.heads), head_dim(a.head_dim), scale(a.scale) {
  register_module("qkv", a.child("qkv"));
  register_module("proj", a.child("proj"));
  add_attention_fake_quants(*this, qc);
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
  Tensor probs = qat_attention_probs(*this, qkv.select(0, 0), qkv.select(0, 1), scale,
                                     inputs.size() == 2 ? inputs[1] : Tensor(), "QATAttention");
  emit("probs", probs);
  Tensor out = qat_attention_apply(*this, probs, qkv.select(0, 2)).transpose(1, 2).reshape({B, N, dim});
  return (*child("proj"))(out);
}

void add_attention_fake_quants(nn::Module& m, const QConfig& qc) {
  // The matmul inputs stay per tensor (observed) even when the Linear inputs are quantized per token.
  QuantSpec as = qc.activation;
  as.per_token = false;
  for (const char* n : {"q_fake_quant", "k_fake_quant", "probs_fake_quant", "v_fake_quant"})
    m.register_module(n, std::make_shared<FakeQuantize>(as, qc.activation_observer, 0, qc.learnable_scale));
}

Tensor qat_attention_probs(nn::Module& m, const Tensor& q, const Tensor& k, double scale,
                           const Tensor& mask, const char* op) {
  const int64_t B = q.size(0), N = k.size(2);
  Tensor scores = matmul((*m.child("q_fake_quant"))(q), (*m.child("k_fake_quant"))(k).transpose(-2, -1)) * scale;
  if (mask.defined()) {
    QUENCH_CHECK(mask.dtype() == kUInt8 && mask.dim() == 2 && mask.size(0) == B && mask.size(1) == N, op,
                 ": expected a u8 key-padding mask [", B, ", ", N, "], got ", dtype_name(mask.dtype()), " ",
                 shape_str(mask.sizes()));
    scores = masked_fill(scores, mask.view({B, 1, 1, N}), -std::numeric_limits<double>::infinity());
  }
  return softmax(scores, -1);
}

Tensor qat_attention_apply(nn::Module& m, const Tensor& probs, const Tensor& v, nn::Module* dropout) {
  Tensor p = (*m.child("probs_fake_quant"))(probs);
  return matmul(dropout ? (*dropout)(p) : p, (*m.child("v_fake_quant"))(v));
}

}  // namespace quench::quant
