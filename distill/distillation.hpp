// DistillationComponent: the CompressionComponent that adds knowledge-distillation terms to the loss.
//
// Per step: on_step_begin clears the recorded features; the user's student forward (training mode)
// fills the student taps; on_after_compute_loss runs the teacher once on the same input, in eval mode
// under NoGradGuard (no graph, no teacher gradients), fills the teacher taps and returns
//   loss' = sum over criteria of their formula (config.hpp), e.g. w0 * loss + w1 * T^2 * KD(...).
// on_step_end drops the features (they hold the step's graph).
//
// Projections: when a mapping's student feature [..., d_s] and teacher feature [..., d_t] differ only
// in the last dim, a learnable nn::Linear(d_s, d_t) maps the student's feature. Feature shapes are
// learned at construction by one probe forward (eval, no grad) of both models on
// DistillationConfig::example_input (made from the config of an nn::ViT student when absent).
// The projections live in projections(), a module whose children are named by the mapping's index
// over all intermediate mappings of this config; the manager returns their parameters in
// trainable_parameters() and saves them beside the student as "distill_projections.<index>.weight"
// and "distill_projections.<index>.bias" (CompressionManager::state_dict). They are not children of
// the student, so quantization never touches them.
//
// Taps are re-attached by name when the module at their path was swapped (checked every on_train_begin
// and on_step_begin; on_model_changed unhooks the old model), so QAT's module replacement and a new
// model root do not lose them (INC's "hooks lost after graph rewriting").
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "distill/compression.hpp"
#include "distill/taps.hpp"

namespace quench::distill {

inline constexpr const char* kProjectionPrefix = "distill_projections";

class DistillationComponent : public CompressionComponent {
 public:
  DistillationComponent(nn::ModulePtr student, DistillationConfig config);
  std::string name() const override { return "distillation"; }

  void on_train_begin(CompressionContext& ctx) override;
  void on_step_begin(CompressionContext& ctx) override;
  Tensor on_after_compute_loss(CompressionContext& ctx, const tensor_list& input,
                               const Tensor& student_output, const Tensor& loss) override;
  void on_step_end(CompressionContext& ctx) override;
  void on_train_end(CompressionContext& ctx) override;
  void on_model_changed(CompressionContext& ctx) override;

  std::vector<Tensor> extra_parameters() const override { return projections_->parameters(); }
  std::vector<std::pair<std::string, Tensor>> extra_state() const override;
  std::vector<std::string> load_extra_state(const nn::StateDict& sd) override;

  const nn::ModulePtr& teacher() const { return config_.teacher; }
  // Children "<mapping index>" -> nn::Linear(d_s, d_t), only for mappings whose widths differ.
  const nn::ModulePtr& projections() const { return projections_; }
  const std::vector<ResolvedMapping>& mappings() const { return mappings_; }
  const Tap& student_tap(size_t mapping) const { return *student_taps_.at(mapping); }
  const Tap& teacher_tap(size_t mapping) const { return *teacher_taps_.at(mapping); }
  // The teacher's output of the latest step (undefined before the first).
  const Tensor& teacher_output() const { return teacher_output_; }
  // The terms of the latest combined loss, detached: ("task", w * loss), ("kd", w * T^2 * D),
  // ("<student>-><teacher>" or just "<student>" when the names agree, w_i * D_i) in criteria order.
  const std::vector<std::pair<std::string, Tensor>>& last_terms() const { return last_terms_; }

 private:
  void attach_taps(nn::Module& student);
  void clear_features();
  void probe_shapes(const nn::ModulePtr& student);

  DistillationConfig config_;
  std::vector<ResolvedMapping> mappings_;          // over every intermediate criterion, in order
  std::vector<std::pair<size_t, size_t>> ranges_;  // per criterion: [begin, end) into mappings_
  std::vector<std::unique_ptr<Tap>> student_taps_, teacher_taps_;
  nn::ModulePtr projections_;
  Tensor teacher_output_;
  std::vector<std::pair<std::string, Tensor>> last_terms_;
};

}  // namespace quench::distill
