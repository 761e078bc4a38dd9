#include "tools/cli/config.hpp"

#include "engine/error.hpp"

namespace quench::cli {

using nlohmann::json;

namespace {

// Reads j[key] into v when present; a wrong type names the key.
template <class T>
void get_opt(const json& j, const char* key, T& v) {
  if (!j.contains(key)) return;
  try {
    v = j.at(key).get<T>();
  } catch (const json::exception& e) {
    throw Error(std::string("config: key \"") + key + "\": " + e.what());
  }
}

}  // namespace

json to_json(const nn::ViTConfig& c) {
  return {{"img", c.img},       {"patch", c.patch},     {"chans", c.chans},
          {"dim", c.dim},       {"depth", c.depth},     {"heads", c.heads},
          {"hidden", c.hidden}, {"classes", c.classes}, {"eps", c.eps}};
}

nn::ViTConfig vit_config_from_json(const json& j) {
  QUENCH_CHECK(j.is_object(), "config: model config must be a JSON object, got ", j.dump());
  nn::ViTConfig c;
  get_opt(j, "img", c.img);
  get_opt(j, "patch", c.patch);
  get_opt(j, "chans", c.chans);
  get_opt(j, "dim", c.dim);
  get_opt(j, "depth", c.depth);
  get_opt(j, "heads", c.heads);
  get_opt(j, "hidden", c.hidden);
  get_opt(j, "classes", c.classes);
  get_opt(j, "eps", c.eps);
  return c;
}

json to_json(const Preprocess& p) { return {{"mean", p.mean}, {"std", p.std}}; }

Preprocess preprocess_from_json(const json& j) {
  QUENCH_CHECK(j.is_object(), "config: preprocess must be a JSON object, got ", j.dump());
  Preprocess p;
  get_opt(j, "mean", p.mean);
  get_opt(j, "std", p.std);
  return p;
}

json to_json(const TrainConfig& c) {
  return {{"model", to_json(c.model)},
          {"preprocess", to_json(c.preprocess)},
          {"fashion_root", c.fashion_root},
          {"train_dir", c.train_dir},
          {"test_dir", c.test_dir},
          {"test_split", c.test_split},
          {"limit_train", c.limit_train},
          {"limit_test", c.limit_test},
          {"crop_padding", c.crop_padding},
          {"hflip", c.hflip},
          {"random_erase", c.random_erase},
          {"patch_dropout", c.patch_dropout},
          {"patch_dropout_epochs", c.patch_dropout_epochs},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"lr", c.lr},
          {"min_lr", c.min_lr},
          {"weight_decay", c.weight_decay},
          {"beta1", c.beta1},
          {"beta2", c.beta2},
          {"warmup_epochs", c.warmup_epochs},
          {"label_smoothing", c.label_smoothing},
          {"clip_grad", c.clip_grad},
          {"ema", c.ema},
          {"seed", c.seed},
          {"init", c.init}};
}

TrainConfig train_config_from_json(const json& j) {
  QUENCH_CHECK(j.is_object(), "config: train config must be a JSON object, got ", j.dump());
  TrainConfig c;
  if (j.contains("model")) c.model = vit_config_from_json(j.at("model"));
  if (j.contains("preprocess")) c.preprocess = preprocess_from_json(j.at("preprocess"));
  get_opt(j, "fashion_root", c.fashion_root);
  get_opt(j, "train_dir", c.train_dir);
  get_opt(j, "test_dir", c.test_dir);
  get_opt(j, "test_split", c.test_split);
  get_opt(j, "limit_train", c.limit_train);
  get_opt(j, "limit_test", c.limit_test);
  get_opt(j, "crop_padding", c.crop_padding);
  get_opt(j, "hflip", c.hflip);
  get_opt(j, "random_erase", c.random_erase);
  get_opt(j, "patch_dropout", c.patch_dropout);
  get_opt(j, "patch_dropout_epochs", c.patch_dropout_epochs);
  get_opt(j, "epochs", c.epochs);
  get_opt(j, "batch_size", c.batch_size);
  get_opt(j, "lr", c.lr);
  get_opt(j, "min_lr", c.min_lr);
  get_opt(j, "weight_decay", c.weight_decay);
  get_opt(j, "beta1", c.beta1);
  get_opt(j, "beta2", c.beta2);
  get_opt(j, "warmup_epochs", c.warmup_epochs);
  get_opt(j, "init", c.init);
  QUENCH_CHECK(c.init == "timm" || c.init == "torch", "config: \"init\" must be timm or torch, got \"", c.init,
               "\"");
  get_opt(j, "label_smoothing", c.label_smoothing);
  get_opt(j, "clip_grad", c.clip_grad);
  get_opt(j, "ema", c.ema);
  get_opt(j, "seed", c.seed);
  return c;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace quench::cli
