#include "quant/qat_attention.hpp"

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "nn/layers/activation.hpp"
#include "quant/int8_attention.hpp"
#include "quant/quantized_linear.hpp"
#include "quant/qat_matmul_op.hpp"

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
  const Tensor mask = inputs.size() == 2 ? inputs[1] : Tensor();
  if (Tensor ctx = qat_attention_fused_projected(*this, x, {"qkv"}, heads, head_dim, scale, mask, nullptr, "QATAttention");
      ctx.defined())
    return (*child("proj"))(ctx);
  // [B, N, 3D] -> [3, B, H, N, hd]
  Tensor qkv = (*child("qkv"))(x).reshape({B, N, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  if (Tensor ctx = qat_attention_fused(*this, qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2), scale, mask,
                                       nullptr, "QATAttention");
      ctx.defined())
    return (*child("proj"))(ctx);
  Tensor probs = qat_attention_probs(*this, qkv.select(0, 0), qkv.select(0, 1), scale, mask, "QATAttention");
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

namespace {

// fq(a) @ fq(b)^T (b_kn: fq(a) @ fq(b)) on the integer codes (qat_matmul_op.hpp) when both quantizers
// allow it, else the composition of the two fake quantizations and an fp32 matmul (LSQ scales, fake
// quant switched off, codes outside u8). The quantizers observe first, as their own forward would.
Tensor fq_matmul(nn::Module& m, const char* fa_name, const Tensor& a, const char* fb_name, const Tensor& b,
                 bool b_kn) {
  auto& fa = static_cast<FakeQuantize&>(*m.child(fa_name));
  auto& fb = static_cast<FakeQuantize&>(*m.child(fb_name));
  if (integer_operand(fa) && integer_operand(fb)) {
    fa.observe_step(a);
    fb.observe_step(b);
    if (a.size(-1) <= kQatMatmulMaxK && qat_matmul_fits(fa.spec(), fa.scale, fa.zero_point) &&
        qat_matmul_fits(fb.spec(), fb.scale, fb.zero_point))
      return (b_kn ? qat_matmul : qat_matmul_nt)(a, fa.scale, fa.zero_point, fa.spec(), b, fb.scale, fb.zero_point,
                                                fb.spec());
    const Tensor aq = fa.fake_quant(a), bq = fb.fake_quant(b);
    return matmul(aq, b_kn ? bq : bq.transpose(-2, -1));
  }
  const Tensor aq = fa(a), bq = fb(b);  // the quantizers' hooks in their order
  return matmul(aq, b_kn ? bq : bq.transpose(-2, -1));
}

// A dropout that leaves its input as it is (none, eval mode or p = 0) and has no hook to call.
bool identity_dropout(nn::Module* dropout) {
  if (!dropout) return true;
  auto* d = dynamic_cast<nn::Dropout*>(dropout);
  return d && d->num_forward_hooks() == 0 && (!d->is_training() || d->p == 0.0);
}

// The four quantizers of attention `m`.
struct Quantizers {
  const FakeQuantize &q, &k, &probs, &v;
  explicit Quantizers(nn::Module& m)
      : q(get(m, "q_fake_quant")), k(get(m, "k_fake_quant")), probs(get(m, "probs_fake_quant")),
        v(get(m, "v_fake_quant")) {}
  static const FakeQuantize& get(nn::Module& m, const char* n) { return static_cast<const FakeQuantize&>(*m.child(n)); }
};

// Whether the fused inference applies to attention `m` on N tokens of head_dim (the quantizers'
// state, hooks, the dropout); a gradient to record is the caller's to rule out.
bool fused_applies(nn::Module& m, const Quantizers& f, int64_t N, int64_t head_dim, nn::Module* dropout) {
  return m.num_forward_hooks() == 0 && identity_dropout(dropout) && N <= kInt8AttentionMaxTokens &&
         head_dim <= kQatMatmulMaxK && int8_attention_applies(f.q, f.k, f.probs, f.v);
}

}  // namespace

Tensor qat_attention_fused(nn::Module& m, const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                           const Tensor& mask, nn::Module* dropout, const char* op) {
  const Quantizers f(m);
  const bool grad = GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (grad || !fused_applies(m, f, k.size(2), q.size(3), dropout)) return Tensor();
  check_key_mask(mask, q.size(0), k.size(2), op);
  return int8_attention(q, k, v, scale, mask, f.q, f.k, f.probs, f.v);
}

Tensor qat_attention_fused_projected(nn::Module& m, const Tensor& x, const std::vector<const char*>& projections,
                                     int64_t heads, int64_t head_dim, double scale, const Tensor& mask,
                                     nn::Module* dropout, const char* op) {
  std::vector<QuantizedLinear*> proj;
  for (const char* n : projections) {
    auto* p = dynamic_cast<QuantizedLinear*>(m.child(n).get());
    if (!p || !p->frozen_input_grid() || p->num_forward_hooks() > 0) return Tensor();
    proj.push_back(p);
  }
  const Quantizers f(m);
  if (x.dim() != 3 || x.dtype() != kFloat32 || !fused_applies(m, f, x.size(1), head_dim, dropout)) return Tensor();
  check_key_mask(mask, x.size(0), x.size(1), op);
  return int8_attention_projected(x, proj, heads, scale, mask, f.q, f.k, f.probs, f.v);
}

Tensor qat_attention_probs(nn::Module& m, const Tensor& q, const Tensor& k, double scale,
                           const Tensor& mask, const char* op) {
  check_key_mask(mask, q.size(0), k.size(2), op);
  return attention_softmax(fq_matmul(m, "q_fake_quant", q, "k_fake_quant", k, false), scale, mask);
}

Tensor qat_attention_apply(nn::Module& m, const Tensor& probs, const Tensor& v, nn::Module* dropout) {
  // Dropout in training scales the quantized probabilities off the grid: the composed path.
  if (!identity_dropout(dropout)) {
    Tensor p = (*dropout)((*m.child("probs_fake_quant"))(probs));
    return matmul(p, (*m.child("v_fake_quant"))(v));
  }
  return fq_matmul(m, "probs_fake_quant", probs, "v_fake_quant", v, true);
}

}  // namespace quench::quant
