// QatComponent: quantization-aware training as a CompressionComponent, through three callbacks so the
// manager does not depend on quant/'s exact signatures (wire them to quant::prepare_qat / convert):
//
//   auto qat = std::make_shared<QatComponent>(QatCallbacks{
//       .prepare = [&](const nn::ModulePtr& m) { return quant::prepare_qat(m, qat_config); },
//       .epoch_begin = [&](const nn::ModulePtr& m, int64_t epoch) { if (epoch == freeze_at) freeze(m); },
//       .convert = [](const nn::ModulePtr& m) { return quant::convert(m); }});
//   auto cm = prepare_compression(student, {qat, DistillationConfig(teacher, kd)});
//
// on_train_begin: prepare (insert fake quantization and observers) -> the model to train;
// on_epoch_begin: epoch_begin (e.g. the observer-freezing schedule);
// on_train_end:   convert -> the int8 model, which CompressionManager::model() returns from then on.
// A callback may modify the model in place and return it, or return a new root (the other components
// are told through on_model_changed). The loss passes through unchanged. Build the optimizer from
// trainable_parameters() after on_train_begin, since prepare may add parameters (learnable scales).
#pragma once
#include <functional>

#include "distill/compression.hpp"
#include "quant/qconfig.hpp"

namespace quench::distill {

struct QatCallbacks {
  std::function<nn::ModulePtr(const nn::ModulePtr&)> prepare;            // required
  std::function<void(const nn::ModulePtr&, int64_t epoch)> epoch_begin;  // optional
  std::function<nn::ModulePtr(const nn::ModulePtr&)> convert;            // optional (none: stay fake-quant)
};

class QatComponent : public CompressionComponent {
 public:
  explicit QatComponent(QatCallbacks callbacks);
  std::string name() const override { return "quantization"; }
  void on_train_begin(CompressionContext& ctx) override;
  void on_epoch_begin(CompressionContext& ctx) override;
  void on_train_end(CompressionContext& ctx) override;

  bool prepared() const { return prepared_; }
  // The converted model after on_train_end (null before, or without a convert callback).
  const nn::ModulePtr& converted() const { return converted_; }

 private:
  QatCallbacks cb_;
  bool prepared_ = false;
  nn::ModulePtr converted_;
};

// QAT wired to quant/: on_train_begin runs quant::prepare_qat(config), on_epoch_begin the observer
// freezing schedule (config.freeze_observer_epoch), on_train_end quant::convert (in place) to the
// int8 model. prepare_compression makes one of these for a QuantizationAwareTrainingConfig.
std::shared_ptr<QatComponent> make_qat_component(const quant::QuantizationAwareTrainingConfig& config);

}  // namespace quench::distill
