#include "quant/qconfig.hpp"

namespace quench::quant {

QConfig QConfig::default_ptq() {
  QConfig q;
  q.activation_observer = ObserverKind::histogram;
  q.weight_observer = ObserverKind::min_max;
  return q;
}

std::string observer_kind_name(ObserverKind k) {
  static const char* names[] = {"min_max", "moving_average_min_max", "histogram"};
  return names[static_cast<int>(k)];
}

std::string QConfig::str() const {
  return "activation " + activation.str() + " (" + observer_kind_name(activation_observer) + "), weight " +
         weight.str() + " (" + observer_kind_name(weight_observer) + ")" + (learnable_scale ? ", LSQ" : "");
}

bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative wildcard matching with one backtrack point (the last '*').
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::optional<QConfig> qconfig_for(const QuantizationAwareTrainingConfig& cfg, const std::string& name,
                                   const std::string& type_name) {
  for (const auto& pat : cfg.fp32_fallback)
    if (glob_match(pat, name)) return std::nullopt;
  for (const auto& [pat, qc] : cfg.name_overrides)
    if (glob_match(pat, name)) return qc;
  auto it = cfg.type_overrides.find(type_name);
  if (it != cfg.type_overrides.end()) return it->second;
  return cfg.default_qconfig;
}

}  // namespace quench::quant
