// The default distillation recipe of a ViT student from a ViT teacher (what `quench distill` and
// bench_model's vit_distill_train_step run):
//   loss = (1 - kd_weight) * CE(labels) + kd_weight * T^2 * KL(z_s / T || z_t / T)
//        + block_weight * sum_i MSE(blocks.i) + attn_weight * sum_i MSE(blocks.i.attn:probs)
// A shallower student's block i follows the teacher's block (i + 1) * Dt / Ds - 1 (the last blocks
// line up, TinyBERT's uniform mapping); attention maps only when the head counts agree. A narrower
// student gets learnable projections (distillation.hpp). Explicit `layers` replace the block and
// attention taps (same name in student and teacher, each with block_weight).
#pragma once
#include <string>
#include <vector>

#include "distill/config.hpp"
#include "nn/layers/vit.hpp"

namespace quench::distill {

struct ViTDistillRecipe {
  double temperature = 2.0, kd_weight = 0.5;
  double block_weight = 1.0;        // each mapped block output (0: none)
  double attn_weight = 1.0;         // each mapped attention-probability map (0: none)
  std::vector<std::string> layers;  // explicit taps; empty: the mapped blocks and attention maps
};

// The layer mappings of the recipe; `note` (optional) says why attention maps were left out.
std::vector<LayerMapping> vit_layer_mappings(const nn::ViTConfig& student, const nn::ViTConfig& teacher,
                                             const ViTDistillRecipe& r, std::string* note = nullptr);

// DistillationConfig(teacher, {logit KD, the layer mappings}) for prepare_compression.
DistillationConfig vit_distillation_config(const nn::ModulePtr& teacher, const nn::ViTConfig& student,
                                           const nn::ViTConfig& teacher_cfg, const ViTDistillRecipe& r,
                                           std::string* note = nullptr);

}  // namespace quench::distill
