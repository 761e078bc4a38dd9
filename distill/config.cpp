#include "distill/config.hpp"

#include <cmath>

#include "engine/error.hpp"

namespace quench::distill {

void KnowledgeDistillationLossConfig::validate() const {
  QUENCH_CHECK(temperature > 0 && std::isfinite(temperature),
               "KnowledgeDistillationLossConfig: temperature must be positive, got ", temperature);
  QUENCH_CHECK(loss_types.size() == 2,
               "KnowledgeDistillationLossConfig: loss_types needs 2 entries "
               "(task loss, distillation loss), got ",
               loss_types.size());
  QUENCH_CHECK(loss_weights.size() == 2,
               "KnowledgeDistillationLossConfig: loss_weights needs 2 entries "
               "(task loss, distillation loss), got ",
               loss_weights.size());
  parse_loss_type(loss_types[0]);
  LossType d = kd_type();
  QUENCH_CHECK(d == LossType::CE || d == LossType::KL || d == LossType::MSE,
               "KnowledgeDistillationLossConfig: loss_types[1] must be CE, KL or MSE, got ", loss_types[1]);
  double sum = 0;
  for (double w : loss_weights) {
    QUENCH_CHECK(w >= 0 && w <= 1, "KnowledgeDistillationLossConfig: loss_weights must lie in [0, 1], got ",
                 w);
    sum += w;
  }
  QUENCH_CHECK(std::abs(sum - 1.0) < 1e-6,
               "KnowledgeDistillationLossConfig: loss_weights must sum to 1, got ", loss_weights[0], " + ",
               loss_weights[1]);
}

LossType KnowledgeDistillationLossConfig::kd_type() const {
  QUENCH_CHECK(loss_types.size() == 2, "KnowledgeDistillationLossConfig: loss_types needs 2 entries");
  return parse_loss_type(loss_types[1]);
}

std::vector<ResolvedMapping> IntermediateLayersKnowledgeDistillationLossConfig::resolve() const {
  const size_t n = layer_mappings.size();
  const char* who = "IntermediateLayersKnowledgeDistillationLossConfig";
  QUENCH_CHECK(n > 0, who, ": layer_mappings is empty");
  QUENCH_CHECK(loss_types.empty() || loss_types.size() == n, who, ": ", loss_types.size(), " loss_types for ",
               n, " layer_mappings (give one per mapping or none)");
  QUENCH_CHECK(loss_weights.empty() || loss_weights.size() == n, who, ": ", loss_weights.size(),
               " loss_weights for ", n, " layer_mappings (give one per mapping or none)");
  std::vector<ResolvedMapping> out;
  for (size_t i = 0; i < n; ++i) {
    const LayerMapping& m = layer_mappings[i];
    QUENCH_CHECK(!m.student.empty(), who, ": layer_mappings[", i, "] has no student name");
    QUENCH_CHECK(!(m.loss_type && !loss_types.empty()), who, ": layer_mappings[", i,
                 "] sets a loss type and loss_types is given too; use one of them");
    QUENCH_CHECK(!(m.weight && !loss_weights.empty()), who, ": layer_mappings[", i,
                 "] sets a weight and loss_weights is given too; use one of them");
    ResolvedMapping r;
    r.student = m.student;
    r.teacher = m.teacher_name();
    r.type = parse_loss_type(m.loss_type ? *m.loss_type : loss_types.empty() ? "MSE" : loss_types[i]);
    QUENCH_CHECK(r.type != LossType::CE, who, ": layer_mappings[", i, "] (", m.student,
                 "): CE is a logit loss; use MSE, L1, KL or Cosine (or KnowledgeDistillationLossConfig)");
    r.weight = m.weight ? *m.weight : loss_weights.empty() ? 1.0 / static_cast<double>(n) : loss_weights[i];
    QUENCH_CHECK(r.weight >= 0 && std::isfinite(r.weight), who, ": layer_mappings[", i,
                 "] weight must be finite and >= 0, got ", r.weight);
    if (r.type == LossType::KL) {
      const bool probs = m.student.size() >= 6 && m.student.compare(m.student.size() - 6, 6, ":probs") == 0;
      r.kind = probs ? FeatureKind::probabilities : FeatureKind::logits;
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace quench::distill
