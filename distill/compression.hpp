// CompressionManager: the training-loop callbacks of INC 2.x's `prepare_compression`, built from
// pluggable components (distillation here; quantization-aware training plugs in the same way).
//
//   auto cm = prepare_compression(student, {DistillationConfig(teacher,
//   KnowledgeDistillationLossConfig(2.0))}); cm.on_train_begin(); AdamW opt(cm.trainable_parameters(), ...);
//   // after on_train_begin: QAT may add parameters for epoch: cm.on_epoch_begin(epoch)
//     for step: cm.on_step_begin(step)
//       out = cm.model()(x); loss = cross_entropy(out, y)
//       loss = cm.on_after_compute_loss(x, out, loss)   // + distillation terms
//       loss.backward(); cm.on_before_optimizer_step(); opt.step(); cm.on_step_end()
//     cm.on_epoch_end()
//   cm.on_train_end();                           // QAT: convert to int8
//
// Components run in the order given, each hook in turn; on_after_compute_loss threads the loss through
// them (a component without a loss term returns it unchanged, so QAT alone leaves the loss as is).
// A component may replace the model (ctx.model, e.g. QAT's prepare or convert returning a new root):
// the manager then calls on_model_changed on every component (distillation re-attaches its taps).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <variant>

#include "quant/qconfig.hpp"
#include <vector>

#include "distill/config.hpp"
#include "nn/module.hpp"

namespace quench::distill {

// What components share: the model being compressed (replaceable) and the loop position.
struct CompressionContext {
  nn::ModulePtr model;
  int64_t epoch = -1;
  int64_t step = -1;
};

// One compression technique. Every hook defaults to doing nothing.
class CompressionComponent {
 public:
  virtual ~CompressionComponent() = default;
  virtual std::string name() const = 0;

  virtual void on_train_begin(CompressionContext&) {}
  virtual void on_epoch_begin(CompressionContext&) {}  // ctx.epoch is set
  virtual void on_step_begin(CompressionContext&) {}   // ctx.step is set
  // Returns the loss to use from here on (by default `loss` unchanged).
  virtual Tensor on_after_compute_loss(CompressionContext&, const tensor_list& input,
                                       const Tensor& student_output, const Tensor& loss) {
    return loss;
  }
  virtual void on_before_optimizer_step(CompressionContext&) {}
  virtual void on_step_end(CompressionContext&) {}
  virtual void on_epoch_end(CompressionContext&) {}
  virtual void on_train_end(CompressionContext&) {}
  // Another component replaced ctx.model.
  virtual void on_model_changed(CompressionContext&) {}

  // Parameters the optimizer must train besides the model's (e.g. distillation projections).
  virtual std::vector<Tensor> extra_parameters() const { return {}; }
  // State saved beside the model's state_dict, under names that do not collide with it
  // (e.g. "distill_projections.0.weight").
  virtual std::vector<std::pair<std::string, Tensor>> extra_state() const { return {}; }
  // Loads entries named like extra_state(); returns the names it took.
  virtual std::vector<std::string> load_extra_state(const nn::StateDict&) { return {}; }
};

class CompressionManager {
 public:
  CompressionManager(nn::ModulePtr model, std::vector<std::shared_ptr<CompressionComponent>> components);

  // The model to train (it may change at on_train_begin / on_train_end, e.g. QAT prepare and convert).
  const nn::ModulePtr& model() const { return ctx_.model; }
  const std::vector<std::shared_ptr<CompressionComponent>>& components() const { return components_; }
  // The first component of type C, or null.
  template <class C>
  std::shared_ptr<C> component() const {
    for (const auto& c : components_)
      if (auto p = std::dynamic_pointer_cast<C>(c)) return p;
    return nullptr;
  }

  void on_train_begin();
  void on_epoch_begin(int64_t epoch);
  void on_step_begin(int64_t step);
  Tensor on_after_compute_loss(const Tensor& input, const Tensor& student_output, const Tensor& student_loss);
  Tensor on_after_compute_loss(const tensor_list& input, const Tensor& student_output,
                               const Tensor& student_loss);
  void on_before_optimizer_step();
  void on_step_end();
  void on_epoch_end();
  void on_train_end();

  // The model's parameters followed by every component's extra parameters (each tensor once).
  std::vector<Tensor> trainable_parameters() const;
  // The model's state_dict followed by the components' extra state ("distill_projections.*").
  nn::StateDict state_dict() const;
  // Loads both parts; with strict, missing and unexpected keys throw (one error lists them all).
  void load_state_dict(const nn::StateDict& sd, bool strict = true);

 private:
  template <class F>
  void each(F&& f);

  CompressionContext ctx_;
  std::vector<std::shared_ptr<CompressionComponent>> components_;
};

// A config becomes a component: DistillationConfig -> DistillationComponent (distillation.hpp),
// QuantizationAwareTrainingConfig -> make_qat_component (qat_component.hpp); a ready-made component
// is taken as is.
using CompressionConfig = std::variant<DistillationConfig, quant::QuantizationAwareTrainingConfig,
                                       std::shared_ptr<CompressionComponent>>;

CompressionManager prepare_compression(nn::ModulePtr model, const std::vector<CompressionConfig>& configs);

}  // namespace quench::distill
