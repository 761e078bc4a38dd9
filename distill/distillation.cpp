#include "distill/distillation.hpp"

#include "engine/ops.hpp"
#include "nn/layers/bert.hpp"
#include "nn/layers/linear.hpp"
#include "nn/layers/vit.hpp"

namespace quench::distill {

namespace {

// Per-module training flags, restored after the probe (pre-order, so children override parents).
std::vector<std::pair<nn::ModulePtr, bool>> save_modes(const nn::ModulePtr& m) {
  std::vector<std::pair<nn::ModulePtr, bool>> out;
  for (auto& [name, sub] : m->named_modules()) out.emplace_back(sub, sub->is_training());
  return out;
}

}  // namespace

DistillationComponent::DistillationComponent(nn::ModulePtr student, DistillationConfig config)
    : config_(std::move(config)), projections_(std::make_shared<nn::Module>("DistillProjections")) {
  QUENCH_CHECK(student != nullptr, "DistillationConfig: student model is null");
  QUENCH_CHECK(config_.teacher != nullptr, "DistillationConfig: teacher is null");
  QUENCH_CHECK(config_.teacher != student,
               "DistillationConfig: the teacher is the student itself; "
               "distill from a separate (e.g. copied) model");
  QUENCH_CHECK(!config_.criteria.empty(), "DistillationConfig: no criterion given");
  for (const auto& c : config_.criteria) {
    const size_t begin = mappings_.size();
    if (const auto* kd = std::get_if<KnowledgeDistillationLossConfig>(&c)) {
      kd->validate();
    } else {
      for (auto& r : std::get<IntermediateLayersKnowledgeDistillationLossConfig>(c).resolve())
        mappings_.push_back(r);
    }
    ranges_.emplace_back(begin, mappings_.size());
  }
  for (const auto& m : mappings_) {
    student_taps_.push_back(std::make_unique<Tap>(*student, m.student, /*record_only_in_training=*/true));
    teacher_taps_.push_back(std::make_unique<Tap>(*config_.teacher, m.teacher, false));
  }
  if (!mappings_.empty()) probe_shapes(student);
}

void DistillationComponent::probe_shapes(const nn::ModulePtr& student) {
  tensor_list input = config_.example_input;
  if (input.empty()) {
    auto* vit = dynamic_cast<nn::ViT*>(student.get());
    auto* bert = dynamic_cast<nn::BertForSequenceClassification*>(student.get());
    QUENCH_CHECK(vit != nullptr || bert != nullptr,
                 "DistillationConfig: set example_input (an input the student and teacher "
                 "accept) so the layer mappings' feature shapes can be checked");
    if (vit) input = {zeros({2, vit->cfg.chans, vit->cfg.img, vit->cfg.img})};
    // Two sequences of [PAD]-free tokens (id pad + 1 exists in every vocabulary of two or more).
    if (bert) {
      const int64_t n = std::min<int64_t>(8, bert->cfg.max_position_embeddings);
      const int64_t id = (bert->cfg.pad_token_id + 1) % bert->cfg.vocab_size;
      input = {full({2, n}, static_cast<double>(id), kInt32)};
    }
  }
  std::vector<Tap> s_probe, t_probe;
  for (const auto& m : mappings_) {
    s_probe.emplace_back(*student, m.student, false);
    t_probe.emplace_back(*config_.teacher, m.teacher, false);
  }
  auto s_modes = save_modes(student), t_modes = save_modes(config_.teacher);
  {
    NoGradGuard no_grad;
    student->eval();
    config_.teacher->eval();
    (*student)(input);
    (*config_.teacher)(input);
  }
  for (auto& [m, on] : s_modes) m->train(on);
  for (auto& [m, on] : t_modes) m->train(on);

  Generator gen(config_.seed);
  for (size_t i = 0; i < mappings_.size(); ++i) {
    const Shape& ss = s_probe[i].feature().sizes();
    const Shape& ts = t_probe[i].feature().sizes();
    if (ss == ts) continue;
    const bool lead_same =
        ss.size() == ts.size() && !ss.empty() && std::equal(ss.begin(), ss.end() - 1, ts.begin());
    QUENCH_CHECK(lead_same, "distill: layer mapping ", i, " (student '", mappings_[i].student, "' ",
                 shape_str(ss), ", teacher '", mappings_[i].teacher, "' ", shape_str(ts),
                 "): shapes may differ only in the last dim (which a projection maps)");
    projections_->register_module(std::to_string(i),
                                  std::make_shared<nn::Linear>(ss.back(), ts.back(), true, gen));
  }
}

void DistillationComponent::attach_taps(nn::Module& student) {
  for (auto& t : student_taps_) t->refresh(student);
  for (auto& t : teacher_taps_) t->refresh(*config_.teacher);
}

void DistillationComponent::clear_features() {
  for (auto& t : student_taps_) t->clear();
  for (auto& t : teacher_taps_) t->clear();
  teacher_output_ = Tensor();
}

void DistillationComponent::on_train_begin(CompressionContext& ctx) {
  config_.teacher->eval();
  attach_taps(*ctx.model);
  clear_features();
}

// The old model's hooks must not record; the new model is hooked at the next on_step_begin (not here:
// after convert at on_train_end its names need not resolve, and nothing is recorded any more).
void DistillationComponent::on_model_changed(CompressionContext&) {
  for (auto& t : student_taps_) t->detach();
}

void DistillationComponent::on_step_begin(CompressionContext& ctx) {
  clear_features();
  attach_taps(*ctx.model);  // cheap when nothing moved; re-hooks modules swapped since the last step
}

void DistillationComponent::on_step_end(CompressionContext&) {
  // Student features and terms hold this step's graph; drop them now rather than at the next step.
  clear_features();
  last_terms_.clear();
}

void DistillationComponent::on_train_end(CompressionContext&) {
  clear_features();
  for (auto& t : student_taps_) t->detach();
  for (auto& t : teacher_taps_) t->detach();
}

Tensor DistillationComponent::on_after_compute_loss(CompressionContext&, const tensor_list& input,
                                                    const Tensor& student_output, const Tensor& loss) {
  for (auto& t : teacher_taps_) t->clear();
  config_.teacher->eval();
  {
    NoGradGuard no_grad;
    teacher_output_ = (*config_.teacher)(input);
  }
  last_terms_.clear();
  Tensor total;
  auto add = [&](const std::string& name, const Tensor& term) {
    total = total.defined() ? total + term : term;
    last_terms_.emplace_back(name, term.detach());
  };
  auto task = [&](double w) {
    if (w == 0) return;
    QUENCH_CHECK(loss.defined() && loss.numel() == 1,
                 "distill: on_after_compute_loss needs the student's "
                 "scalar task loss (weight ",
                 w, ")");
    add("task", w == 1 ? loss : loss * w);
  };
  for (size_t c = 0; c < config_.criteria.size(); ++c) {
    if (const auto* kd = std::get_if<KnowledgeDistillationLossConfig>(&config_.criteria[c])) {
      QUENCH_CHECK(student_output.defined(), "distill: on_after_compute_loss needs the student's output");
      KDLossOptions o;
      o.temperature = kd->temperature;
      o.type = kd->kd_type();
      o.kl_reduction = kd->kl_reduction;
      task(kd->loss_weights[0]);
      add("kd", kd_loss(student_output, teacher_output_, o) * kd->loss_weights[1]);
      continue;
    }
    for (size_t i = ranges_[c].first; i < ranges_[c].second; ++i) {
      const ResolvedMapping& m = mappings_[i];
      Tensor fs = student_taps_[i]->feature();
      if (nn::ModulePtr proj = projections_->child(std::to_string(i))) fs = (*proj)(fs);
      FeatureLossOptions o;
      o.type = m.type;
      o.kind = m.kind;
      Tensor d = feature_loss(fs, teacher_taps_[i]->feature(), o);
      add(m.student == m.teacher ? m.student : m.student + "->" + m.teacher,
          m.weight == 1 ? d : d * m.weight);
    }
    if (std::get<IntermediateLayersKnowledgeDistillationLossConfig>(config_.criteria[c]).add_origin_loss)
      task(1.0);
  }
  QUENCH_CHECK(total.defined(), "distill: every loss weight is zero");
  return total;
}

std::vector<std::pair<std::string, Tensor>> DistillationComponent::extra_state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : projections_->state_dict())
    out.emplace_back(std::string(kProjectionPrefix) + "." + name, t);
  return out;
}

std::vector<std::string> DistillationComponent::load_extra_state(const nn::StateDict& sd) {
  const std::string prefix = std::string(kProjectionPrefix) + ".";
  std::vector<nn::StateDict::Item> mine;
  std::vector<std::string> taken;
  for (const auto& [name, t] : sd)
    if (name.compare(0, prefix.size(), prefix) == 0) {
      mine.emplace_back(name.substr(prefix.size()), t);
      taken.push_back(name);
    }
  if (!mine.empty()) projections_->load_state_dict(nn::StateDict(mine), /*strict=*/true);
  return taken;
}

}  // namespace quench::distill
