#include "distill/qat_component.hpp"

#include "engine/error.hpp"
#include "quant/convert.hpp"
#include "quant/prepare.hpp"

namespace quench::distill {

QatComponent::QatComponent(QatCallbacks callbacks) : cb_(std::move(callbacks)) {
  QUENCH_CHECK(static_cast<bool>(cb_.prepare), "QatComponent: the prepare callback is required");
}

void QatComponent::on_train_begin(CompressionContext& ctx) {
  // A second on_train_begin (another training run) must not insert fake quantization twice.
  if (prepared_) return;
  nn::ModulePtr m = cb_.prepare(ctx.model);
  QUENCH_CHECK(m != nullptr, "QatComponent: prepare returned a null model");
  ctx.model = m;
  prepared_ = true;
}

void QatComponent::on_epoch_begin(CompressionContext& ctx) {
  if (cb_.epoch_begin) cb_.epoch_begin(ctx.model, ctx.epoch);
}

void QatComponent::on_train_end(CompressionContext& ctx) {
  if (!cb_.convert) return;
  converted_ = cb_.convert(ctx.model);
  QUENCH_CHECK(converted_ != nullptr, "QatComponent: convert returned a null model");
  ctx.model = converted_;
}

std::shared_ptr<QatComponent> make_qat_component(const quant::QuantizationAwareTrainingConfig& config) {
  QatCallbacks cb;
  cb.prepare = [config](const nn::ModulePtr& m) {
    quant::prepare_qat(*m, config);
    return m;
  };
  cb.epoch_begin = [config](const nn::ModulePtr& m, int64_t epoch) {
    quant::freeze_observers_on_epoch(*m, config, static_cast<int>(epoch));
  };
  cb.convert = [](const nn::ModulePtr& m) {
    quant::convert(*m);
    return m;
  };
  return std::make_shared<QatComponent>(std::move(cb));
}

}  // namespace quench::distill
