#include "distill/compression.hpp"

#include <set>

#include "distill/distillation.hpp"
#include "distill/qat_component.hpp"
#include "engine/error.hpp"

namespace quench::distill {

CompressionManager::CompressionManager(nn::ModulePtr model,
                                       std::vector<std::shared_ptr<CompressionComponent>> components)
    : components_(std::move(components)) {
  QUENCH_CHECK(model != nullptr, "CompressionManager: model is null");
  for (size_t i = 0; i < components_.size(); ++i)
    QUENCH_CHECK(components_[i] != nullptr, "CompressionManager: component ", i, " is null");
  ctx_.model = std::move(model);
}

// Runs f on each component in order; a model swap by one is announced to all.
template <class F>
void CompressionManager::each(F&& f) {
  for (auto& c : components_) {
    nn::ModulePtr before = ctx_.model;
    f(*c);
    QUENCH_CHECK(ctx_.model != nullptr, "CompressionManager: component ", c->name(), " set a null model");
    if (ctx_.model != before)
      for (auto& other : components_) other->on_model_changed(ctx_);
  }
}

void CompressionManager::on_train_begin() {
  ctx_.epoch = ctx_.step = -1;
  each([&](CompressionComponent& c) { c.on_train_begin(ctx_); });
}

void CompressionManager::on_epoch_begin(int64_t epoch) {
  ctx_.epoch = epoch;
  each([&](CompressionComponent& c) { c.on_epoch_begin(ctx_); });
}

void CompressionManager::on_step_begin(int64_t step) {
  ctx_.step = step;
  each([&](CompressionComponent& c) { c.on_step_begin(ctx_); });
}

Tensor CompressionManager::on_after_compute_loss(const Tensor& input, const Tensor& student_output,
                                                 const Tensor& student_loss) {
  return on_after_compute_loss(tensor_list{input}, student_output, student_loss);
}

Tensor CompressionManager::on_after_compute_loss(const tensor_list& input, const Tensor& student_output,
                                                 const Tensor& student_loss) {
  Tensor loss = student_loss;
  each([&](CompressionComponent& c) { loss = c.on_after_compute_loss(ctx_, input, student_output, loss); });
  return loss;
}

void CompressionManager::on_before_optimizer_step() {
  each([&](CompressionComponent& c) { c.on_before_optimizer_step(ctx_); });
}
void CompressionManager::on_step_end() {
  each([&](CompressionComponent& c) { c.on_step_end(ctx_); });
}
void CompressionManager::on_epoch_end() {
  each([&](CompressionComponent& c) { c.on_epoch_end(ctx_); });
}
void CompressionManager::on_train_end() {
  each([&](CompressionComponent& c) { c.on_train_end(ctx_); });
}

std::vector<Tensor> CompressionManager::trainable_parameters() const {
  std::vector<Tensor> out = ctx_.model->parameters();
  std::set<const void*> seen;
  for (const Tensor& p : out) seen.insert(p.impl_ptr().get());
  for (const auto& c : components_)
    for (const Tensor& p : c->extra_parameters())
      if (seen.insert(p.impl_ptr().get()).second) out.push_back(p);
  return out;
}

nn::StateDict CompressionManager::state_dict() const {
  nn::StateDict sd = ctx_.model->state_dict();
  for (const auto& c : components_)
    for (const auto& [name, t] : c->extra_state()) {
      QUENCH_CHECK(!sd.contains(name), "CompressionManager: component ", c->name(), " state '", name,
                   "' collides with a key already in the state dict (the model's or another component's)");
      sd.insert(name, t);
    }
  return sd;
}

void CompressionManager::load_state_dict(const nn::StateDict& sd, bool strict) {
  std::set<std::string> taken;
  for (const auto& c : components_)
    for (const auto& n : c->load_extra_state(sd)) taken.insert(n);
  std::vector<nn::StateDict::Item> rest;
  for (const auto& [name, t] : sd)
    if (!taken.count(name)) rest.emplace_back(name, t);
  if (strict)
    for (const auto& c : components_)
      for (const auto& [name, t] : c->extra_state())
        QUENCH_CHECK(taken.count(name), "CompressionManager: load_state_dict: missing key '", name,
                     "' of component ", c->name());
  ctx_.model->load_state_dict(nn::StateDict(rest), strict);
}

CompressionManager prepare_compression(nn::ModulePtr model, const std::vector<CompressionConfig>& configs) {
  QUENCH_CHECK(model != nullptr, "prepare_compression: model is null");
  std::vector<std::shared_ptr<CompressionComponent>> comps;
  for (const auto& cfg : configs) {
    if (const auto* d = std::get_if<DistillationConfig>(&cfg))
      comps.push_back(std::make_shared<DistillationComponent>(model, *d));
    else if (const auto* q = std::get_if<quant::QuantizationAwareTrainingConfig>(&cfg))
      comps.push_back(make_qat_component(*q));
    else
      comps.push_back(std::get<std::shared_ptr<CompressionComponent>>(cfg));
  }
  return CompressionManager(std::move(model), std::move(comps));
}

}  // namespace quench::distill
