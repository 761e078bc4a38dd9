#include "quant/convert.hpp"

#include <vector>

#include "engine/autograd.hpp"
#include "quant/int4_linear.hpp"
#include "quant/int8_block.hpp"
#include "quant/int8_linear.hpp"
#include "quant/int8_mlp.hpp"
#include "quant/prepare.hpp"
#include "quant/int8_bert_layer.hpp"
#include "quant/qat_attention.hpp"
#include "quant/qat_embedding.hpp"
#include "quant/qat_linear.hpp"
#include "quant/qparams.hpp"
#include "quant/quantized_embedding.hpp"

namespace quench::quant {
namespace {

// The weight fake-quant's codes of a [rows, cols] weight by the shared rounding rule, with the scale of
// each (row, group of group_size cols) written to scales [rows, groups]: per tensor (one scale),
// per row, or per group. Symmetric only: every zero point must be 0.
void quantize_weight(const Tensor& weight, FakeQuantize& fw, int64_t rows, int64_t cols, int64_t groups,
                     const std::string& name, int8_t* codes, float* scales) {
  const QuantSpec& ws = fw.spec();
  Tensor wscale = fw.scale.detach().contiguous(), wzp = fw.zero_point.contiguous();
  const int32_t* pz = wzp.data_ptr<int32_t>();
  for (int64_t i = 0; i < wzp.numel(); ++i)
    QUENCH_CHECK(pz[i] == 0, "convert: '", name, "': weight zero point ", i, " is ", pz[i],
                 "; symmetric weights need 0");
  QUENCH_CHECK(wscale.numel() == 1 || wscale.numel() == rows * groups, "convert: '", name, "': ", wscale.numel(),
               " weight scales for [", rows, ", ", groups, "] groups");
  const float* ps = wscale.data_ptr<float>();
  Tensor w = weight.detach().contiguous();
  const float* pw = w.data_ptr<float>();
  const int64_t gs = ws.group_size ? ws.group_size : cols;
  const int32_t qlo = static_cast<int32_t>(ws.quant_min), qhi = static_cast<int32_t>(ws.quant_max);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float sc = ps[wscale.numel() == 1 ? 0 : r * groups + c / gs];
      scales[r * groups + c / gs] = sc;
      codes[r * cols + c] = static_cast<int8_t>(quantize_value(pw[r * cols + c], 1.0f / sc, 0, qlo, qhi));
    }
}

std::shared_ptr<Int8Linear> to_int8(QATLinear& q, const std::string& name) {
  FakeQuantize& fx = q.input_fake_quant();
  FakeQuantize& fw = q.weight_fake_quant();
  const QuantSpec &as = fx.spec(), &ws = fw.spec();
  QUENCH_CHECK(!as.is_signed && !as.per_channel && as.quant_min >= 0 && as.quant_max <= 255, "convert: '", name,
               "': the int8 kernels take u8 activations per tensor within [0, 255], got ", as.str());
  QUENCH_CHECK(ws.is_signed && ws.bits <= 8 && ws.symmetric && (!ws.per_channel || ws.axis == 0), "convert: '",
               name, "': the int8 kernels take signed symmetric weights of at most 8 bits (per tensor or per "
               "output channel), got ", ws.str());
  QUENCH_CHECK(fx.calibrated() || fx.learnable(), "convert: '", name,
               "': the input quantizer never saw data; train (QAT) or calibrate (PTQ) the model first");
  QUENCH_CHECK(fw.calibrated() || fw.learnable(), "convert: '", name,
               "': the weight quantizer never saw data; run at least one training or calibration batch first");
  const int64_t N = q.out_features, K = q.in_features;
  auto m = std::make_shared<Int8Linear>(K, N, q.bias.defined(), static_cast<int32_t>(as.quant_min),
                                        static_cast<int32_t>(as.quant_max));
  NoGradGuard ng;
  quantize_weight(q.weight, fw, N, K, 1, name, m->weight.data_ptr<int8_t>(), m->weight_scale.data_ptr<float>());
  if (q.bias.defined()) m->bias.copy_(q.bias.detach());
  m->input_scale.copy_(fx.scale.detach().reshape({1}));
  m->input_zero_point.copy_(fx.zero_point.reshape({1}));
  m->validate("convert: '" + name + "'");
  m->eval();
  return m;
}

// Weights of at most 4 bits (symmetric), per-group scales or per-token activations: the s4 GEMM.
// (Codes of -2^(bits-1), as in QuantSpec::make(4, ...)'s [-8, 7], stay on the int8 GEMM.)
bool wants_int4(const QATLinear& q) {
  const QConfig& qc = q.qconfig();
  const bool sym4 = qc.weight.bits <= 4 && qc.weight.quant_min >= -((int64_t{1} << (qc.weight.bits - 1)) - 1);
  return sym4 || qc.weight.group_size > 0 || qc.activation.per_token;
}

std::shared_ptr<Int4Linear> to_int4(QATLinear& q, const std::string& name) {
  FakeQuantize& fx = q.input_fake_quant();
  FakeQuantize& fw = q.weight_fake_quant();
  const QuantSpec &as = fx.spec(), &ws = fw.spec();
  QUENCH_CHECK(!as.is_signed && !as.per_channel && as.quant_min == 0 && as.quant_max == 255, "convert: '", name,
               "': the s4 GEMM takes u8 activations over [0, 255] per tensor or per token, got ", as.str());
  const int64_t qmax = ws.bits >= 2 && ws.bits <= 4 ? (int64_t{1} << (ws.bits - 1)) - 1 : 0;
  QUENCH_CHECK(ws.is_signed && ws.symmetric && qmax > 0 && ws.quant_min >= -qmax && ws.quant_max <= qmax &&
                   (!ws.per_channel || ws.axis == 0) && (ws.group_size == 0 || ws.group_size % 8 == 0),
               "convert: '", name, "': per-group scales and per-token activations run on the s4 GEMM, which takes "
               "signed symmetric weights of 2..4 bits within [-(2^(bits-1)-1), 2^(bits-1)-1] per tensor, channel "
               "or group of a multiple of 8 (QuantSpec::int_symmetric_weight); got ", ws.str());
  QUENCH_CHECK(fx.calibrated() || fx.learnable(), "convert: '", name,
               "': the input quantizer never saw data; train (QAT) or calibrate (PTQ) the model first");
  QUENCH_CHECK(fw.calibrated() || fw.learnable(), "convert: '", name,
               "': the weight quantizer never saw data; run at least one training or calibration batch first");
  const int64_t N = q.out_features, K = q.in_features;
  auto m = std::make_shared<Int4Linear>(K, N, q.bias.defined(), ws.group_size, as.per_token, ws.bits);
  NoGradGuard ng;
  std::vector<int8_t> codes(N * K);
  quantize_weight(q.weight, fw, N, K, m->groups, name, codes.data(), m->weight_scale.data_ptr<float>());
  m->set_weight_codes(codes.data());
  if (q.bias.defined()) m->bias.copy_(q.bias.detach());
  if (!as.per_token) {
    m->input_scale.copy_(fx.scale.detach().reshape({1}));
    m->input_zero_point.copy_(fx.zero_point.reshape({1}));
  }
  m->validate("convert: '" + name + "'");
  m->eval();
  return m;
}

std::shared_ptr<QuantizedEmbedding> to_quantized_embedding(QATEmbedding& q, const std::string& name) {
  FakeQuantize& fw = q.weight_fake_quant();
  const QuantSpec& ws = fw.spec();
  check_embedding_spec(ws, "convert: '" + name + "'");
  QUENCH_CHECK(fw.calibrated() || fw.learnable(), "convert: '", name,
               "': the weight quantizer never saw data; run at least one training or calibration batch first");
  const int64_t R = q.num_embeddings, D = q.embedding_dim;
  auto m = std::make_shared<QuantizedEmbedding>(R, D, ws.bits, ws.group_size, q.padding_idx);
  NoGradGuard ng;
  std::vector<int8_t> codes(R * D);
  quantize_weight(q.weight, fw, R, D, m->groups, name, codes.data(), m->weight_scale.data_ptr<float>());
  m->set_weight_codes(codes.data());
  m->validate("convert: '" + name + "'");
  m->eval();
  return m;
}

}  // namespace

ConvertSummary convert(nn::Module& model, bool fuse) {
  ConvertSummary sum;
  for (const auto& [name, m] : model.named_modules()) {
    if (is_qat_attention(*m)) {
      sum.qat_attention.push_back(name);
      continue;
    }
    if (auto* e = dynamic_cast<QATEmbedding*>(m.get())) {
      QUENCH_CHECK(!name.empty(), "convert: the root module is a QATEmbedding; wrap it in a parent module");
      model.set_submodule(name, to_quantized_embedding(*e, name));
      sum.quantized_embeddings.push_back(name);
      continue;
    }
    auto* q = dynamic_cast<QATLinear*>(m.get());
    if (!q) continue;
    QUENCH_CHECK(!name.empty(), "convert: the root module is a QATLinear; wrap it in a parent module");
    if (wants_int4(*q)) {
      model.set_submodule(name, to_int4(*q, name));
      sum.int4_linears.push_back(name);
    } else {
      model.set_submodule(name, to_int8(*q, name));
      sum.int8_linears.push_back(name);
    }
  }
  QUENCH_CHECK(!sum.int8_linears.empty() || !sum.int4_linears.empty() || !sum.qat_attention.empty() ||
                   !sum.quantized_embeddings.empty(),
               "convert: ", model.type_name(),
               " has no QATLinear, QATEmbedding or QATAttention modules; run prepare_qat or prepare_ptq (and train or "
               "calibrate) first");
  for (const auto& [name, m] : model.named_modules())
    if (auto* fq = dynamic_cast<FakeQuantize*>(m.get()))
      QUENCH_CHECK(fq->calibrated() || fq->learnable(), "convert: the quantizer '", name,
                   "' never saw data; train or calibrate the model first");
  freeze_observers(model);
  enable_fake_quant(model, true);
  if (fuse) {
    sum.int8_mlps = fuse_int8_mlps(model);
    sum.int8_blocks = fuse_int8_blocks(model);
    sum.int8_bert_layers = fuse_int8_bert_layers(model);
  }
  model.eval();
  return sum;
}

}  // namespace quench::quant
