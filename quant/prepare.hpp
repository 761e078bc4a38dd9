// Preparing a model for quantization: QAT (fake quantization + observers) and PTQ (observers only,
// then calibration), plus the observer switches and the freeze schedule.
//
// prepare_qat swaps, in place, every nn::Linear whose dotted name gets a QConfig from the config
// (quant/qconfig.hpp: fallback list, name patterns, type overrides, default) for a QATLinear sharing
// its weight and bias, every nn::Embedding (type name "Embedding") for a QATEmbedding sharing its
// table (weight-only: the QConfig's weight spec, per row), and, with quantize_attention_matmuls, every
// nn::Attention for a QATAttention (nn::BertSelfAttention for a QATBertSelfAttention). The default
// QConfig thus quantizes embedding tables too; the rule "type:Embedding=fp32" (add_precision_rules)
// or a type override keeps them FP32.
// Works on any model built from nn/ layers whose parents call children through the registry (every
// nn/ layer does). Load FP32 weights before preparing (or use load_state_dict(sd, false): only the
// fake-quant state is then missing), and build the optimizer after preparing or keep it: the
// parameters are the same tensors (LSQ scales are new parameters, add them to the optimizer).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "quant/qconfig.hpp"

namespace quench::quant {

struct PrepareSummary {
  struct Swap {
    std::string name, from, to, qconfig;
  };
  std::vector<Swap> swapped;
  std::vector<std::string> kept_fp32;  // Linear / Embedding / Attention modules the config left FP32
  // One line per module: "blocks.0.attn.qkv: Linear -> QATLinear (activation ..., weight ...)".
  std::string str() const;
};

PrepareSummary prepare_qat(nn::Module& model, const QuantizationAwareTrainingConfig& config = {});

// PTQ: the same swaps (default qconfig QConfig::default_ptq()), with fake quantization off so the
// observers see the FP32 activations during calibration.
QuantizationAwareTrainingConfig default_ptq_config();
PrepareSummary prepare_ptq(nn::Module& model, const QuantizationAwareTrainingConfig& config = default_ptq_config());

// Runs the model on each batch in eval mode without gradients while its FakeQuantize modules alone
// observe (training mode), then computes every scale / zero point, freezes the observers and turns
// fake quantization on: the model is then the fake-quant twin of its int8 conversion. The model's
// training flags are restored except that FakeQuantize observers stay frozen. Returns the batch count.
int64_t calibrate(nn::Module& model, const std::vector<Tensor>& batches);
// The same with batches produced on demand: next(i) for i in [0, num_batches).
int64_t calibrate(nn::Module& model, int64_t num_batches, const std::function<Tensor(int64_t)>& next);
// Models of several inputs (BERT's {input_ids, attention_mask, token_type_ids}).
int64_t calibrate_multi(nn::Module& model, int64_t num_batches, const std::function<tensor_list(int64_t)>& next);

// Switches on every FakeQuantize under `model`; return the number of FakeQuantize modules touched.
int64_t enable_observers(nn::Module& model, bool on = true);
int64_t freeze_observers(nn::Module& model);
int64_t enable_fake_quant(nn::Module& model, bool on = true);
// The observer schedule: freezes the observers when config.freeze_observer_epoch >= 0 and
// epoch >= it (call at each epoch's start). Returns true when the observers are frozen now.
bool freeze_observers_on_epoch(nn::Module& model, const QuantizationAwareTrainingConfig& config, int epoch);

}  // namespace quench::quant
