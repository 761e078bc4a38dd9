// What `quench train` runs: model sizes, data, preprocessing and the optimization recipe, plus their
// JSON form (stored in checkpoint metadata, so `eval`, `classify` and `--resume` need no flags).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/layers/vit.hpp"

namespace quench::cli {

// Pixel normalization: (x / 255 - mean[c]) / std[c], one value or one per channel.
struct Preprocess {
  std::vector<float> mean{0.2860f}, std{0.3530f};
};

struct TrainConfig {
  nn::ViTConfig model;
  Preprocess preprocess;

  // Data: Fashion-MNIST from fashion_root unless train_dir (an image folder) is set. Without test_dir,
  // a test_split fraction of train_dir is held out (a seeded split). limit_* > 0 keeps the first rows.
  std::string fashion_root = "/usr/share/datasets/fashion-mnist/";
  std::string train_dir, test_dir;
  double test_split = 0.1;
  int64_t limit_train = 0, limit_test = 0;

  // Augmentation (torchvision RandomCrop(padding), RandomHorizontalFlip, RandomErasing(p)).
  int64_t crop_padding = 0;
  bool hflip = false;
  double random_erase = 0.0;
  // PatchDropout (nn::ViT::patch_dropout): drop this share of the patch tokens of every training
  // image, in the first patch_dropout_epochs epochs (0: all of them); the last epochs then train on
  // every token, as evaluation sees them.
  double patch_dropout = 0.0;
  int64_t patch_dropout_epochs = 0;

  // Optimization: AdamW (no decay on biases, norms, pos_embed, cls_token), per-step linear warmup then
  // cosine decay to min_lr, label smoothing, global-norm clipping (0: off), EMA of weights (0: off).
  int64_t epochs = 10, batch_size = 128;
  double lr = 1e-3, min_lr = 1e-5, weight_decay = 0.05, beta1 = 0.9, beta2 = 0.999;
  double warmup_epochs = 1.0;
  double label_smoothing = 0.0, clip_grad = 0.0, ema = 0.0;
  uint64_t seed = 0;
  std::string init = "timm";  // "timm" (nn::ViT::init_weights) or "torch" (init_weights_torch)
};

nlohmann::json to_json(const nn::ViTConfig& c);
nn::ViTConfig vit_config_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Preprocess& p);
Preprocess preprocess_from_json(const nlohmann::json& j);
nlohmann::json to_json(const TrainConfig& c);
// Missing keys keep their defaults; wrong types throw quench::Error naming the key.
TrainConfig train_config_from_json(const nlohmann::json& j);

// Fashion-MNIST class names, the default when a checkpoint carries none.
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace quench::cli
