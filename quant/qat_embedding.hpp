// QATEmbedding: nn::Embedding whose table is fake-quantized (weight-only, as
// torch.ao.nn.qat.Embedding): the rows it returns are those of the table the converted
// QuantizedEmbedding stores.
//   ids int32 [...] -> [..., dim];  y = fq_w(weight)[ids]   (STE: the table's gradient passes where
//   the weight lies inside its clamp range)
// The weight spec of the QConfig applies (signed symmetric, per row = per channel along axis 0,
// optionally per group of group_size along dim); the activation spec is unused (ids are not
// quantized; the rows stay FP32 after dequantization). The parameter keeps Embedding's name
// (weight [num, dim]) so FP32 checkpoints load; child weight_fake_quant.
#pragma once
#include <memory>
#include <string>

#include "nn/layers/embedding.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/qconfig.hpp"

namespace quench::quant {

// Throws naming `where` unless `spec` is one a QuantizedEmbedding stores: signed symmetric codes of
// 2..8 bits within [-(2^(bits-1)-1), 2^(bits-1)-1], per tensor or per row (axis 0), optionally grouped.
void check_embedding_spec(const QuantSpec& spec, const std::string& where);

class QATEmbedding : public nn::Module {
 public:
  // Shares the weight of `fp32` (optimizers holding it keep working).
  QATEmbedding(const nn::Embedding& fp32, const QConfig& qconfig);
  std::string extra_repr() const override;

  FakeQuantize& weight_fake_quant() { return *w_fq_; }
  const QConfig& qconfig() const { return qconfig_; }

  int64_t num_embeddings, embedding_dim, padding_idx;
  Tensor weight;

 protected:
  Tensor forward(const Tensor& ids) override;

 private:
  QConfig qconfig_;
  std::shared_ptr<FakeQuantize> w_fq_;
};

}  // namespace quench::quant
