// What to quantize and how: QConfig (one module's scheme) and QuantizationAwareTrainingConfig (the
// whole model's plan, named after Intel Neural Compressor's config).
//
// Defaults follow REFERENCE.md section 2 and PyTorch's x86 QAT qconfig: activations uint8 affine per
// tensor over [0, 255] with a moving-average min/max observer (constant 0.01); weights int8 symmetric
// per output channel over [-127, 127], also moving-average (PyTorch's
// MovingAveragePerChannelMinMaxObserver). PTQ defaults (QConfig::default_ptq): a histogram observer
// (L2-optimal range) for activations and an exact per-channel min/max for weights.
//
// How a module's QConfig is chosen by qconfig_for (first rule that applies wins):
//   1. a dotted name matching a pattern of `fp32_fallback`    -> stays FP32
//   2. the first entry of `name_overrides` whose pattern matches -> that entry (nullopt = FP32)
//   3. an entry of `type_overrides` for the module's type_name  -> that entry (nullopt = FP32)
//   4. `default_qconfig` (nullopt = FP32)
// Patterns are globs over the whole dotted name: '*' matches any run of characters (dots included),
// '?' one character; "blocks.*.mlp.fc2", "head", "*.qkv".
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "quant/observer.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

struct QConfig {
  QuantSpec activation = QuantSpec::uint8_affine_per_tensor();
  ObserverKind activation_observer = ObserverKind::moving_average_min_max;
  QuantSpec weight = QuantSpec::int8_symmetric_per_channel(0);
  ObserverKind weight_observer = ObserverKind::moving_average_min_max;
  // LSQ: scales become parameters (initialized by the observer while it is enabled, learned once the
  // observers are frozen); zero points stay fixed.
  bool learnable_scale = false;

  static QConfig default_qat() { return {}; }
  static QConfig default_ptq();
  // Low-bit weights: `weight_bits` symmetric per output channel, or per group of group_size along K
  // (QuantSpec::int_symmetric_weight), with the default activations (uint8 per tensor, or per token
  // when per_token_activations), observers and LSQ setting of `base` (default_qat()). low_bit(8) is
  // default_qat().
  static QConfig low_bit(int weight_bits, int64_t group_size = 0, bool per_token_activations = false);
  static QConfig low_bit(const QConfig& base, int weight_bits, int64_t group_size, bool per_token_activations);
  std::string str() const;
};

struct QuantizationAwareTrainingConfig {
  std::optional<QConfig> default_qconfig = QConfig::default_qat();
  // type_name ("Linear") -> qconfig, or nullopt to keep that type FP32.
  std::map<std::string, std::optional<QConfig>> type_overrides;
  // (glob over dotted names, qconfig or nullopt), tried in order.
  std::vector<std::pair<std::string, std::optional<QConfig>>> name_overrides;
  // Globs of modules kept FP32 whatever else says (e.g. {"head", "patch_embed.*"}).
  std::vector<std::string> fp32_fallback;
  // Also fake-quantize the attention matmul inputs (q, k for q @ k^T; probs, v for probs @ v), per
  // tensor with the activation spec, by swapping nn::Attention for QATAttention (nn::BertSelfAttention
  // for QATBertSelfAttention).
  bool quantize_attention_matmuls = false;
  // Observers freeze (stop updating scale / zero point) at the start of this epoch; < 0: never
  // (INC's default). See freeze_observers_on_epoch in quant/prepare.hpp.
  int freeze_observer_epoch = -1;
};

// Mixed precision from text: comma-separated rules "pattern=precision", appended in order to
// cfg.name_overrides (a pattern "type:Linear" goes to cfg.type_overrides instead). precision is "fp32"
// (keep FP32) or weight bits with an optional group size, "8", "4", "4g64", built by
// QConfig::low_bit on `base` (its activations, observers and LSQ kept). Example, first and last
// layers 8-bit with the rest 4-bit in groups of 64:
//   cfg.default_qconfig = QConfig::low_bit(4, 64);
//   add_precision_rules(cfg, "patch_embed*=8,head=8");
// Throws quench::Error naming the malformed rule.
void add_precision_rules(QuantizationAwareTrainingConfig& cfg, const std::string& rules,
                         const QConfig& base = QConfig::default_qat());

// Glob match of a whole dotted name ('*' any run, '?' one character).
bool glob_match(const std::string& pattern, const std::string& name);

// The QConfig for the module at `name` of type `type_name`, or nullopt when it stays FP32.
std::optional<QConfig> qconfig_for(const QuantizationAwareTrainingConfig& cfg, const std::string& name,
                                   const std::string& type_name);

// The name of an observer kind ("moving_average_min_max", ...).
std::string observer_kind_name(ObserverKind k);

}  // namespace quench::quant
