// Training checkpoints: one safetensors file per checkpoint.
//
// Layout (design choice): the model's state_dict under its PyTorch names ("blocks.0.attn.qkv.weight"),
// so `safetensors.torch.load_file` + a filter loads it into vit_reference.ViT; in last.safetensors also
// the optimizer state under "optim." ("optim.state.<i>.exp_avg", ...) and, with EMA on, the averaged
// weights under "ema.". best.safetensors holds only model weights (the EMA weights when EMA is on).
// PyTorch: {k: v for k, v in load_file(p).items() if not k.startswith(("optim.", "ema."))}.
//
// String metadata (every value JSON text):
//   "format"     "quench.train.v1"
//   "model"      ViTConfig {"img", "patch", "chans", "dim", "depth", "heads", "hidden", "classes", "eps"}
//   "preprocess" {"mean": [..], "std": [..]}
//   "classes"    ["T-shirt/top", ...]
//   "train"      the full TrainConfig (last only needs it for --resume; best carries it for the record)
//   "progress"   TrainProgress: where training stands (see below)
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/io/safetensors.hpp"
#include "nn/layers/vit.hpp"
#include "nn/module.hpp"
#include "tools/cli/config.hpp"

namespace quench::cli {

inline constexpr const char* kCheckpointFormat = "quench.train.v1";

// Where a run stands after `global_step` optimizer steps: the next batch is batch `batch` of epoch
// `epoch` (both from 0). The sums are the running train loss / correct / seen of that epoch so far,
// so a resumed epoch reports the same metrics as an uninterrupted one. Nothing else is random: the
// model init and the data loader derive everything from TrainConfig::seed (the loader from seed,
// epoch and position), so epoch + batch restore the data stream exactly.
struct TrainProgress {
  int64_t epoch = 0, batch = 0, global_step = 0;
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;
  double best_acc = -1.0;  // best test accuracy so far (-1: none yet)
  int64_t best_epoch = -1;
  double seconds = 0.0;  // training time spent so far (for the log)
};
nlohmann::json to_json(const TrainProgress& p);
TrainProgress train_progress_from_json(const nlohmann::json& j);

struct Checkpoint {
  std::string path;
  nn::StateDict model, optim, ema;  // prefixes stripped
  nn::Metadata metadata;

  bool has_config() const { return metadata.count("model") != 0; }
  // The model config from metadata; a checkpoint without it (e.g. from PyTorch) gives the defaults.
  nn::ViTConfig vit_config() const;
  Preprocess preprocess() const;
  // Class names from metadata, else the Fashion-MNIST names.
  std::vector<std::string> classes() const;
  // Needed for --resume; throws naming the file when absent.
  TrainConfig train_config() const;
  TrainProgress progress() const;
};

// Writes atomically (nn::save_safetensors). optim / ema may be empty.
void save_checkpoint(const std::string& path, const nn::StateDict& model, const nn::StateDict& optim,
                     const nn::StateDict& ema, const nn::Metadata& metadata);
Checkpoint load_checkpoint(const std::string& path);

// Metadata for a checkpoint of a run with `cfg` at `progress`.
nn::Metadata checkpoint_metadata(const TrainConfig& cfg, const std::vector<std::string>& classes,
                                 const TrainProgress& progress);

}  // namespace quench::cli

namespace quench::cli {
// A ViT built from the checkpoint's config with its model weights loaded strictly (errors name every
// missing, unexpected or wrong-shape key), in eval mode.
std::shared_ptr<nn::ViT> model_from_checkpoint(const Checkpoint& ckpt);
}  // namespace quench::cli
