#include "quant/qat_bert_attention.hpp"

#include "engine/ops.hpp"
#include "quant/qat_attention.hpp"

namespace quench::quant {

QATBertSelfAttention::QATBertSelfAttention(nn::BertSelfAttention& a, const QConfig& qc)
    : Module("QATBertSelfAttention"), heads(a.heads), head_dim(a.head_dim), scale(a.scale) {
  for (const char* n : {"query", "key", "value", "dropout"}) register_module(n, a.child(n));
  add_attention_fake_quants(*this, qc);
  train(a.is_training());
}

std::string QATBertSelfAttention::extra_repr() const {
  return "heads=" + std::to_string(heads) + ", head_dim=" + std::to_string(head_dim);
}

Tensor QATBertSelfAttention::forward(const Tensor& h) { return forward_multi({h}); }

Tensor QATBertSelfAttention::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "QATBertSelfAttention: expected {hidden} or {hidden, key_padding_mask}, got ", inputs.size(),
               " inputs");
  const Tensor& h = inputs[0];
  QUENCH_CHECK(h.dim() == 3 && h.size(2) == heads * head_dim, "QATBertSelfAttention: expected hidden [B, N, ",
               heads * head_dim, "], got ", shape_str(h.sizes()));
  const Tensor mask = inputs.size() == 2 ? inputs[1] : Tensor();
  nn::Module* dropout = child("dropout").get();
  if (Tensor ctx = qat_attention_fused_projected(*this, h, {"query", "key", "value"}, heads, head_dim, scale, mask,
                                                 dropout, "QATBertSelfAttention");
      ctx.defined())
    return ctx;
  const int64_t B = h.size(0), N = h.size(1);
  // [B, N, H] -> [B, heads, N, head_dim]
  auto split_heads = [&](const char* name) {
    return (*child(name))(h).reshape({B, N, heads, head_dim}).permute({0, 2, 1, 3});
  };
  const Tensor q = split_heads("query"), k = split_heads("key"), v = split_heads("value");
  if (Tensor fused = qat_attention_fused(*this, q, k, v, scale, mask, dropout, "QATBertSelfAttention"); fused.defined())
    return fused;
  Tensor probs = qat_attention_probs(*this, q, k, scale, mask, "QATBertSelfAttention");
  emit("probs", probs);
  Tensor ctx = qat_attention_apply(*this, probs, v, dropout);
  return ctx.transpose(1, 2).reshape({B, N, heads * head_dim});
}

// The factory lives here so qat_attention.cpp needs no BERT.
nn::ModulePtr make_qat_attention(nn::Module& m, const QConfig& qc) {
  if (auto* a = dynamic_cast<nn::Attention*>(&m)) return std::make_shared<QATAttention>(*a, qc);
  if (auto* b = dynamic_cast<nn::BertSelfAttention*>(&m)) return std::make_shared<QATBertSelfAttention>(*b, qc);
  return nullptr;
}

bool is_qat_attention(const nn::Module& m) {
  return dynamic_cast<const QATAttention*>(&m) || dynamic_cast<const QATBertSelfAttention*>(&m);
}

}  // namespace quench::quant
