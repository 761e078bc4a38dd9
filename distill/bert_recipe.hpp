// Intel Neural Compressor's distillation-for-quantization recipe for BERT classifiers (its
// SST-2 / QNLI / QQP / MNLI examples): MSE on every layer's output hidden state, on every layer's
// attention probabilities, and on the logits, weight 1 each, no ground-truth loss; a 12-layer model
// has 25 taps. A shallower student's layer i follows the teacher's layer (i + 1) * Lt / Ls - 1
// (TinyBERT's uniform mapping); attention maps only when the head counts agree; a narrower student
// gets learnable projections (distillation.hpp).
#pragma once
#include <string>
#include <vector>

#include "distill/config.hpp"
#include "nn/layers/bert_config.hpp"

namespace quench::distill {

struct BertDistillRecipe {
  double hidden_weight = 1.0;  // each layer's output (bert.encoder.layer.i)
  double attn_weight = 1.0;    // each layer's probabilities (bert.encoder.layer.i.attention.self:probs)
  double logits_weight = 1.0;  // the classifier's output
  bool add_origin_loss = false;  // INC's recipe uses no ground truth; true adds the task loss
};

// The layer mappings of the recipe; `note` (optional) says why attention maps were left out.
std::vector<LayerMapping> bert_layer_mappings(const nn::BertConfig& student, const nn::BertConfig& teacher,
                                              const BertDistillRecipe& r, std::string* note = nullptr);

// DistillationConfig(teacher, {the layer mappings}) for prepare_compression; the loss is the sum of
// the weighted MSE terms (+ the loss passed to on_after_compute_loss with add_origin_loss).
DistillationConfig bert_distillation_config(const nn::ModulePtr& teacher, const nn::BertConfig& student,
                                            const nn::BertConfig& teacher_cfg, const BertDistillRecipe& r,
                                            std::string* note = nullptr);

}  // namespace quench::distill
