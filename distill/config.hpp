// Distillation configs, mirroring Intel Neural Compressor 2.x (neural_compressor.config):
//
//   KnowledgeDistillationLossConfig(temperature = 1, loss_types = {"CE", "CE"}, loss_weights = {0.5, 0.5})
//     L = w0 * task_loss + w1 * T^2 * D(z_s / T, z_t / T)
//     loss_types[0] names the task loss the user's loop computed (passed to on_after_compute_loss; not
//     recomputed); loss_types[1] is D: "CE" (soft cross-entropy), "KL" or "MSE". Weights in [0, 1]
//     summing to 1. KL uses kl_reduction: batchmean (the true KL, default) or mean (INC's average over
//     batch * classes, i.e. batchmean / classes).
//
//   IntermediateLayersKnowledgeDistillationLossConfig(layer_mappings, loss_types = {}, loss_weights = {},
//                                                     add_origin_loss = false)
//     L = sum_i w_i * D_i(M_i(f_s^i), f_t^i)  (+ task_loss when add_origin_loss)
//     f^i are tap features (see taps.hpp); D_i in MSE (default), L1, KL, Cosine; w_i default 1 / N.
//     KL reads a ":probs" tap as probabilities and any other feature as logits over its last dim.
//     M_i is a learnable nn::Linear(student width -> teacher width), created only when the last dims
//     differ (see distillation.hpp).
//
//   DistillationConfig(teacher, criterion) — one or several criteria share one teacher forward per step;
//     with several, their formulas add up (each one contributing its own task-loss term).
#pragma once
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "distill/losses.hpp"
#include "nn/module.hpp"

namespace quench::distill {

struct KnowledgeDistillationLossConfig {
  double temperature = 1.0;
  std::vector<std::string> loss_types{"CE", "CE"};
  std::vector<double> loss_weights{0.5, 0.5};
  Reduction kl_reduction = Reduction::batchmean;

  KnowledgeDistillationLossConfig() = default;
  KnowledgeDistillationLossConfig(double temperature, std::vector<std::string> loss_types = {"CE", "CE"},
                                  std::vector<double> loss_weights = {0.5, 0.5})
      : temperature(temperature), loss_types(std::move(loss_types)), loss_weights(std::move(loss_weights)) {}
  // Throws naming the bad field.
  void validate() const;
  LossType kd_type() const;  // parse of loss_types[1]
};

// One student feature compared with one teacher feature. Names are tap names ("blocks.3",
// "blocks.3.attn:probs"); an empty teacher name means the same name as the student's. loss_type and
// weight, when given, override the config's per-index lists (giving both for one mapping is an error).
struct LayerMapping {
  std::string student;
  std::string teacher;
  std::optional<std::string> loss_type;
  std::optional<double> weight;

  LayerMapping(std::string student, std::string teacher = "", std::optional<std::string> loss_type = {},
               std::optional<double> weight = {})
      : student(std::move(student)),
        teacher(std::move(teacher)),
        loss_type(std::move(loss_type)),
        weight(weight) {}
  const std::string& teacher_name() const { return teacher.empty() ? student : teacher; }
};

// A mapping with its loss settled (what the distillation component runs).
struct ResolvedMapping {
  std::string student, teacher;
  LossType type = LossType::MSE;
  FeatureKind kind = FeatureKind::values;
  double weight = 1.0;
};

struct IntermediateLayersKnowledgeDistillationLossConfig {
  std::vector<LayerMapping> layer_mappings;
  std::vector<std::string> loss_types;  // empty: MSE for all; else one per mapping
  std::vector<double> loss_weights;     // empty: 1 / N each; else one per mapping
  bool add_origin_loss = false;

  IntermediateLayersKnowledgeDistillationLossConfig() = default;
  IntermediateLayersKnowledgeDistillationLossConfig(std::vector<LayerMapping> layer_mappings,
                                                    std::vector<std::string> loss_types = {},
                                                    std::vector<double> loss_weights = {},
                                                    bool add_origin_loss = false)
      : layer_mappings(std::move(layer_mappings)),
        loss_types(std::move(loss_types)),
        loss_weights(std::move(loss_weights)),
        add_origin_loss(add_origin_loss) {}
  // Settles every mapping's loss type, feature kind and weight; throws naming the bad entry.
  std::vector<ResolvedMapping> resolve() const;
};

using DistillationCriterion =
    std::variant<KnowledgeDistillationLossConfig, IntermediateLayersKnowledgeDistillationLossConfig>;

struct DistillationConfig {
  nn::ModulePtr teacher;
  std::vector<DistillationCriterion> criteria;
  // Optional: an input the student and teacher accept, run once (eval, no grad) at prepare time to
  // learn feature shapes (projection widths) and check mappings. For an nn::ViT student it is made
  // from the model's config when absent.
  tensor_list example_input;
  // Seeds the projections' initialization.
  uint64_t seed = 0x5eed;

  DistillationConfig(nn::ModulePtr teacher, DistillationCriterion criterion)
      : teacher(std::move(teacher)), criteria{std::move(criterion)} {}
  DistillationConfig(nn::ModulePtr teacher, std::vector<DistillationCriterion> criteria)
      : teacher(std::move(teacher)), criteria(std::move(criteria)) {}
};

}  // namespace quench::distill
