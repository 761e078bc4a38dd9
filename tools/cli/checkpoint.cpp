#include "tools/cli/checkpoint.hpp"

#include "engine/error.hpp"

namespace quench::cli {

using nlohmann::json;

namespace {

constexpr const char* kOptimPrefix = "optim.";
constexpr const char* kEmaPrefix = "ema.";

bool starts_with(const std::string& s, const char* pre) { return s.rfind(pre, 0) == 0; }

json parse_meta(const Checkpoint& c, const char* key) {
  auto it = c.metadata.find(key);
  QUENCH_CHECK(it != c.metadata.end(), "checkpoint ", c.path, ": metadata has no \"", key, "\"");
  try {
    return json::parse(it->second);
  } catch (const json::exception& e) {
    throw Error("checkpoint " + c.path + ": metadata \"" + key + "\" is not valid JSON: " + e.what());
  }
}

}  // namespace

json to_json(const TrainProgress& p) {
  return {{"epoch", p.epoch},       {"batch", p.batch},           {"global_step", p.global_step},
          {"loss_sum", p.loss_sum}, {"correct", p.correct},       {"seen", p.seen},
          {"best_acc", p.best_acc}, {"best_epoch", p.best_epoch}, {"seconds", p.seconds}};
}

TrainProgress train_progress_from_json(const json& j) {
  TrainProgress p;
  try {
    p.epoch = j.at("epoch").get<int64_t>();
    p.batch = j.at("batch").get<int64_t>();
    p.global_step = j.at("global_step").get<int64_t>();
    p.loss_sum = j.at("loss_sum").get<double>();
    p.correct = j.at("correct").get<int64_t>();
    p.seen = j.at("seen").get<int64_t>();
    p.best_acc = j.at("best_acc").get<double>();
    p.best_epoch = j.at("best_epoch").get<int64_t>();
    p.seconds = j.value("seconds", 0.0);
  } catch (const json::exception& e) {
    throw Error(std::string("checkpoint progress: ") + e.what() + " in " + j.dump());
  }
  QUENCH_CHECK(p.epoch >= 0 && p.batch >= 0 && p.global_step >= 0, "checkpoint progress: negative ",
               "epoch / batch / step in ", j.dump());
  return p;
}

nn::ViTConfig Checkpoint::vit_config() const {
  return has_config() ? vit_config_from_json(parse_meta(*this, "model")) : nn::ViTConfig{};
}

Preprocess Checkpoint::preprocess() const {
  return metadata.count("preprocess") ? preprocess_from_json(parse_meta(*this, "preprocess")) : Preprocess{};
}

std::vector<std::string> Checkpoint::classes() const {
  if (!metadata.count("classes")) return fashion_mnist_classes();
  json j = parse_meta(*this, "classes");
  QUENCH_CHECK(j.is_array(), "checkpoint ", path, ": metadata \"classes\" must be an array of names");
  std::vector<std::string> out;
  for (const auto& v : j) {
    QUENCH_CHECK(v.is_string(), "checkpoint ", path, ": class names must be strings, got ", v.dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}

TrainConfig Checkpoint::train_config() const { return train_config_from_json(parse_meta(*this, "train")); }

TrainProgress Checkpoint::progress() const { return train_progress_from_json(parse_meta(*this, "progress")); }

void save_checkpoint(const std::string& path, const nn::StateDict& model, const nn::StateDict& optim,
                     const nn::StateDict& ema, const nn::Metadata& metadata) {
  nn::NamedTensors all;
  for (const auto& [k, t] : model) all.emplace_back(k, t);
  for (const auto& [k, t] : optim) all.emplace_back(kOptimPrefix + k, t);
  for (const auto& [k, t] : ema) all.emplace_back(kEmaPrefix + k, t);
  nn::Metadata meta = metadata;
  meta["format"] = kCheckpointFormat;
  nn::save_safetensors(path, all, meta);
}

Checkpoint load_checkpoint(const std::string& path) {
  nn::SafeTensorsFile f = nn::load_safetensors(path);
  Checkpoint c;
  c.path = path;
  c.metadata = f.metadata;
  for (const auto& name : f.names) {
    const Tensor& t = f.tensors.at(name);
    if (starts_with(name, kOptimPrefix))
      c.optim.insert(name.substr(6), t);
    else if (starts_with(name, kEmaPrefix))
      c.ema.insert(name.substr(4), t);
    else
      c.model.insert(name, t);
  }
  return c;
}

nn::Metadata checkpoint_metadata(const TrainConfig& cfg, const std::vector<std::string>& classes,
                                 const TrainProgress& progress) {
  return {{"model", to_json(cfg.model).dump()},
          {"preprocess", to_json(cfg.preprocess).dump()},
          {"classes", json(classes).dump()},
          {"train", to_json(cfg).dump()},
          {"progress", to_json(progress).dump()}};
}

}  // namespace quench::cli

namespace quench::cli {

std::shared_ptr<nn::ViT> model_from_checkpoint(const Checkpoint& ckpt) {
  Generator gen(0);  // the init is overwritten by the weights
  auto model = std::make_shared<nn::ViT>(ckpt.vit_config(), gen);
  // check_state_dict names the file and lists every problem at once.
  std::map<std::string, Tensor> expected, found;
  for (const auto& [k, t] : model->state_dict()) expected[k] = t;
  for (const auto& [k, t] : ckpt.model) found[k] = t;
  nn::check_state_dict(expected, found, ckpt.path);
  model->load_state_dict(ckpt.model, true);
  model->eval();
  return model;
}

}  // namespace quench::cli
