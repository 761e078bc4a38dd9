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
  // tensor with the activation spec, by swapping nn::Attention for QATAttention.
  bool quantize_attention_matmuls = false;
  // Observers freeze (stop updating scale / zero point) at the start of this epoch; < 0: never
  // (INC's default). See freeze_observers_on_epoch in quant/prepare.hpp.
  int freeze_observer_epoch = -1;
};

// Glob match of a whole dotted name ('*' any run, '?' one character).
bool glob_match(const std::string& pattern, const std::string& name);

// The QConfig for the module at `name` of type `type_name`, or nullopt when it stays FP32.
std::optional<QConfig> qconfig_for(const QuantizationAwareTrainingConfig& cfg, const std::string& name,
                                   const std::string& type_name);

// The name of an observer kind ("moving_average_min_max", ...).
std::string observer_kind_name(ObserverKind k);

}  // namespace quench::quant
