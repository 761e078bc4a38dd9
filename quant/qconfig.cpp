#include "quant/qconfig.hpp"

#include <sstream>

#include "engine/error.hpp"

namespace quench::quant {

QConfig QConfig::default_ptq() {
  QConfig q;
  q.activation_observer = ObserverKind::histogram;
  q.weight_observer = ObserverKind::min_max;
  return q;
}

QConfig QConfig::low_bit(int weight_bits, int64_t group_size, bool per_token_activations) {
  return low_bit(QConfig{}, weight_bits, group_size, per_token_activations);
}

QConfig QConfig::low_bit(const QConfig& base, int weight_bits, int64_t group_size, bool per_token_activations) {
  QConfig q = base;
  q.weight = QuantSpec::int_symmetric_weight(weight_bits, group_size);
  if (per_token_activations) q.activation = QuantSpec::uint8_affine_per_token();
  return q;
}

void add_precision_rules(QuantizationAwareTrainingConfig& cfg, const std::string& rules, const QConfig& base) {
  std::istringstream in(rules);
  std::string rule;
  while (std::getline(in, rule, ',')) {
    if (rule.empty()) continue;
    const size_t eq = rule.rfind('=');
    QUENCH_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < rule.size(), "add_precision_rules: '", rule,
                 "' is not pattern=precision (e.g. head=8, blocks.*.mlp.*=4g64, type:Linear=fp32)");
    const std::string pat = rule.substr(0, eq), prec = rule.substr(eq + 1);
    std::optional<QConfig> qc;
    if (prec != "fp32") {
      int bits = 0;
      int64_t group = 0;
      size_t used = 0;
      try {
        bits = std::stoi(prec, &used);
        if (used < prec.size()) {
          QUENCH_CHECK(prec[used] == 'g' && used + 1 < prec.size(), "add_precision_rules: '", rule,
                       "': precision must be fp32, <bits> or <bits>g<group size>, got '", prec, "'");
          size_t used2 = 0;
          group = std::stoll(prec.substr(used + 1), &used2);
          used += 1 + used2;
        }
      } catch (const std::logic_error&) {
        used = 0;
      }
      QUENCH_CHECK(used == prec.size(), "add_precision_rules: '", rule,
                   "': precision must be fp32, <bits> or <bits>g<group size>, got '", prec, "'");
      try {
        qc = QConfig::low_bit(base, bits, group, base.activation.per_token);
      } catch (const Error& e) {
        throw Error("add_precision_rules: '" + rule + "': " + e.what());
      }
    }
    if (pat.rfind("type:", 0) == 0)
      cfg.type_overrides[pat.substr(5)] = qc;
    else
      cfg.name_overrides.emplace_back(pat, qc);
  }
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
