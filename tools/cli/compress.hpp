// Post-training quantization and quantization-aware training with distillation of a ViT checkpoint:
// the logic of `quench quantize` and `quench distill`, callable from tests.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/layers/vit.hpp"
#include "quant/qconfig.hpp"
#include "tools/cli/checkpoint.hpp"
#include "tools/cli/data.hpp"
#include "tools/cli/trainer.hpp"

namespace quench::cli {

// A loaded classifier: an FP32 training checkpoint or an int8 checkpoint (metadata format
// "quench-int8", read by quant::load_int8_vit), with its preprocessing and class names.
struct LoadedModel {
  std::shared_ptr<nn::ViT> vit;
  bool int8 = false;
  Preprocess preprocess;
  std::vector<std::string> classes;
};
bool is_int8_checkpoint(const Checkpoint& ckpt);
LoadedModel load_model(const std::string& path);
// Saves an int8 ViT with the preprocessing and class names that load_model reads back.
void save_int8_model(const std::string& path, nn::ViT& model, const Preprocess& pp,
                     const std::vector<std::string>& classes, const nlohmann::json& recipe);

// The weights' precision for PTQ and QAT: `bits` (2..8) symmetric per output channel, or per group of
// `group_size` along K (0: per channel), and mixed-precision rules for chosen layers
// (quant::add_precision_rules: "head=8,blocks.0.*=fp32"). 4 bits or fewer convert to Int4Linear.
struct WeightPrecision {
  int bits = 8;
  int64_t group_size = 0;
  std::string rules;
  nlohmann::json to_json() const;
};
// The quantization plan `cfg` with `base`'s activations and observers and the weight precision `w`.
quant::QuantizationAwareTrainingConfig with_weight_precision(quant::QuantizationAwareTrainingConfig cfg,
                                                             const quant::QConfig& base, const WeightPrecision& w);
// How a report names a converted model's precision, from the "recipe" metadata its PTQ or QAT run
// wrote: "int8", or "W4A8" / "W4A8 g64" when the recipe asked for fewer weight bits.
std::string precision_label(const nlohmann::json& recipe);
// The "recipe" entry of a checkpoint's metadata as JSON (null when absent); `file` names it in the
// error when the entry is not JSON.
nlohmann::json recipe_of(const nn::Metadata& metadata, const std::string& file);

// PTQ: calibration observer for activations (weights always use exact per-channel min/max).
struct PtqOptions {
  int64_t calib_batches = 32, batch_size = 128;
  std::string observer = "histogram";  // "histogram" (L2-optimal range) or "minmax"
  uint64_t seed = 0;                   // order of the calibration images
  WeightPrecision weights;
};
// A converted int8 copy of `fp32` calibrated on shuffled batches of `train`.
std::shared_ptr<nn::ViT> ptq_quantize(const nn::ViT& fp32, const nn::LabeledImages& train, const Preprocess& pp,
                                      const PtqOptions& o);

// QAT of a student, with (kd) or without distillation from the teacher.
// Default loss (kd): 0.5 * CE(student, labels) + 0.5 * T^2 * KL(student/T || teacher/T), T = 2, plus
// MSE with weight 1 for every block's output ("blocks.i") and every block's attention probabilities
// ("blocks.i.attn:probs"), i.e. INC's BERT recipe of layer-wise MSE plus logit KD and the task loss;
// the mapping of a smaller student is distill::vit_layer_mappings (distill/vit_recipe.hpp).
struct DistillOptions {
  bool copy_teacher = true;   // the student starts as the teacher (else a random init of `student`)
  nn::ViTConfig student;      // used when !copy_teacher
  bool kd = true;             // false: QAT alone (the task loss)
  double temperature = 2.0, kd_weight = 0.5;
  double layer_weight = 1.0, attn_weight = 1.0;  // per block-output / attention-map MSE term (0: none)
  std::vector<std::string> layers;  // tap names (each with layer_weight); empty: the defaults above
  int64_t epochs = 2, batch_size = 128;
  double lr = 5e-5, min_lr = 1e-6, weight_decay = 0.01, warmup_epochs = 0.0;
  int freeze_observers_epoch = -1;  // observers freeze at the start of this 0-based epoch (< 0: never)
  WeightPrecision weights;
  uint64_t seed = 0;
  nlohmann::json to_json() const;
};

struct DistillEpoch {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, fq_test_acc = 0, int8_test_acc = 0, int8_test_loss = 0, seconds = 0;
  // The labels' cross-entropy over the epoch: train_loss itself without KD, the task part of it with
  // KD (what the student learned of the task, beside the objective it minimized). Optional in JSON
  // (-1 when absent).
  double train_task_loss = -1;
  // Fake-quant student against its int8 conversion on the whole test set: the fraction of images with
  // the same predicted class and the largest absolute logit difference (issue 5, item 7). Optional in
  // JSON (metrics written before they existed read as -1).
  double fq_int8_agreement = -1, fq_int8_max_logit_diff = -1;
};
nlohmann::json to_json(const DistillEpoch& e);
DistillEpoch distill_epoch_from_json(const nlohmann::json& j);

struct DistillResult {
  std::vector<DistillEpoch> epochs;
  double best_int8_acc = -1;
  int64_t best_epoch = -1;
  std::string int8_path;  // out_dir/int8.safetensors: the best epoch's int8 model
};

// Runs the QAT(+KD) loop writing out_dir/metrics.jsonl (one DistillEpoch per line) and
// out_dir/int8.safetensors (the best int8 test accuracy so far). Every epoch evaluates the fake-quant
// student and its int8 conversion (a second model that loads the student's state and is converted).
DistillResult distill(const DistillOptions& o, const std::shared_ptr<nn::ViT>& teacher, const Preprocess& pp,
                      const DataSplits& data, const std::string& out_dir, const TrainHooks& hooks = {});

}  // namespace quench::cli
