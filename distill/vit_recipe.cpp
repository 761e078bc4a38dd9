#include "distill/vit_recipe.hpp"

namespace quench::distill {

std::vector<LayerMapping> vit_layer_mappings(const nn::ViTConfig& student, const nn::ViTConfig& teacher,
                                             const ViTDistillRecipe& r, std::string* note) {
  std::vector<LayerMapping> maps;
  if (!r.layers.empty()) {
    if (r.block_weight != 0)
      for (const auto& l : r.layers) maps.emplace_back(l, "", "MSE", r.block_weight);
    return maps;
  }
  const int64_t ds = student.depth, dt = teacher.depth;
  const bool attn = r.attn_weight != 0 && student.heads == teacher.heads;
  if (r.attn_weight != 0 && !attn && note)
    *note = "student and teacher head counts differ; attention maps are not distilled";
  for (int64_t i = 0; i < ds; ++i) {
    const std::string s = "blocks." + std::to_string(i), t = "blocks." + std::to_string((i + 1) * dt / ds - 1);
    if (r.block_weight != 0) maps.emplace_back(s, t, "MSE", r.block_weight);
    if (attn) maps.emplace_back(s + ".attn:probs", t + ".attn:probs", "MSE", r.attn_weight);
  }
  return maps;
}

DistillationConfig vit_distillation_config(const nn::ModulePtr& teacher, const nn::ViTConfig& student,
                                           const nn::ViTConfig& teacher_cfg, const ViTDistillRecipe& r,
                                           std::string* note) {
  std::vector<DistillationCriterion> criteria{
      KnowledgeDistillationLossConfig(r.temperature, {"CE", "KL"}, {1.0 - r.kd_weight, r.kd_weight})};
  std::vector<LayerMapping> maps = vit_layer_mappings(student, teacher_cfg, r, note);
  if (!maps.empty()) criteria.emplace_back(IntermediateLayersKnowledgeDistillationLossConfig(maps));
  return DistillationConfig(teacher, criteria);
}

}  // namespace quench::distill
