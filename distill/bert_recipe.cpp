#include "distill/bert_recipe.hpp"

namespace quench::distill {

std::vector<LayerMapping> bert_layer_mappings(const nn::BertConfig& student, const nn::BertConfig& teacher,
                                              const BertDistillRecipe& r, std::string* note) {
  std::vector<LayerMapping> maps;
  const int64_t ls = student.num_hidden_layers, lt = teacher.num_hidden_layers;
  const bool attn = r.attn_weight != 0 && student.num_attention_heads == teacher.num_attention_heads;
  if (r.attn_weight != 0 && !attn && note)
    *note = "student and teacher head counts differ; attention maps are not distilled";
  for (int64_t i = 0; i < ls; ++i) {
    const std::string s = "bert.encoder.layer." + std::to_string(i),
                      t = "bert.encoder.layer." + std::to_string((i + 1) * lt / ls - 1);
    if (r.hidden_weight != 0) maps.emplace_back(s, t, "MSE", r.hidden_weight);
    if (attn) maps.emplace_back(s + ".attention.self:probs", t + ".attention.self:probs", "MSE", r.attn_weight);
  }
  if (r.logits_weight != 0) maps.emplace_back("classifier", "classifier", "MSE", r.logits_weight);
  return maps;
}

DistillationConfig bert_distillation_config(const nn::ModulePtr& teacher, const nn::BertConfig& student,
                                            const nn::BertConfig& teacher_cfg, const BertDistillRecipe& r,
                                            std::string* note) {
  IntermediateLayersKnowledgeDistillationLossConfig layers(bert_layer_mappings(student, teacher_cfg, r, note));
  layers.add_origin_loss = r.add_origin_loss;
  return DistillationConfig(teacher, DistillationCriterion(layers));
}

}  // namespace quench::distill
