#include "quant/qat_embedding.hpp"

#include "engine/ops.hpp"

namespace quench::quant {

void check_embedding_spec(const QuantSpec& ws, const std::string& where) {
  const int64_t qmax = ws.bits >= 2 && ws.bits <= 8 ? (int64_t{1} << (ws.bits - 1)) - 1 : 0;
  QUENCH_CHECK(ws.is_signed && ws.symmetric && qmax > 0 && ws.quant_min >= -qmax && ws.quant_max <= qmax &&
                   (!ws.per_channel || ws.axis == 0) && !ws.per_token,
               where, ": embedding tables are quantized to signed symmetric codes of 2..8 bits within "
               "[-(2^(bits-1)-1), 2^(bits-1)-1], per tensor, row or group (QuantSpec::int_symmetric_weight); got ",
               ws.str(), "; keep embeddings FP32 with the rule 'type:Embedding=fp32'");
}

QATEmbedding::QATEmbedding(const nn::Embedding& fp32, const QConfig& qc)
    : Module("QATEmbedding"),
      num_embeddings(fp32.num_embeddings),
      embedding_dim(fp32.embedding_dim),
      padding_idx(fp32.padding_idx),
      qconfig_(qc) {
  const QuantSpec& ws = qc.weight;
  check_embedding_spec(ws, "QATEmbedding");
  weight = register_parameter("weight", fp32.weight, fp32.weight.requires_grad());
  w_fq_ = register_module("weight_fake_quant", std::make_shared<FakeQuantize>(ws, qc.weight_observer, num_embeddings,
                                                                              qc.learnable_scale, embedding_dim));
  train(fp32.is_training());
}

std::string QATEmbedding::extra_repr() const {
  return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) +
         (padding_idx >= 0 ? ", padding_idx=" + std::to_string(padding_idx) : "");
}

Tensor QATEmbedding::forward(const Tensor& ids) {
  w_fq_->observe_step(weight);
  return embedding(w_fq_->fake_quant(weight), ids, padding_idx);
}

}  // namespace quench::quant
