// distill: configs, DistillationComponent and CompressionManager (combined loss formulas, projections,
// teacher without graph, per-step features, pluggable components, a few steps of distillation).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "distill/compression.hpp"
#include "distill/distillation.hpp"
#include "distill/qat_component.hpp"
#include "distill/vit_recipe.hpp"
#include "engine/ops.hpp"
#include "tests/golden.hpp"
#include "tests/tiny_vit.hpp"
#include "nn/layers/linear.hpp"
#include "nn/layers/vit.hpp"
#include "nn/optim/adamw.hpp"

using namespace quench;
using namespace quench::distill;

namespace {

using testing::tiny_vit;

std::shared_ptr<nn::ViT> copy_of(const std::shared_ptr<nn::ViT>& m) {
  auto c = std::make_shared<nn::ViT>(m->cfg);
  c->load_state_dict(m->state_dict());
  return c;
}

double item(const Tensor& t) { return t.item<float>(); }

// A teacher feature computed independently of the manager (eval, no grad).
Tensor teacher_feature(const nn::ModulePtr& teacher, const std::string& tap, const Tensor& x) {
  Tap t(*teacher, tap, false);
  NoGradGuard ng;
  teacher->eval();
  (*teacher)(x);
  return t.feature().clone();
}

// A stand-in for QAT: swaps the student's head for a copy at on_train_begin, counts hooks.
struct SwapHeadComponent : CompressionComponent {
  int train_begin = 0, train_end = 0, epochs = 0, model_changed = 0;
  bool replace_root = false;
  std::string name() const override { return "swap-head"; }
  void on_train_begin(CompressionContext& ctx) override {
    ++train_begin;
    auto old = std::dynamic_pointer_cast<nn::Linear>(ctx.model->get_submodule("head"));
    auto fresh = std::make_shared<nn::Linear>(old->in_features, old->out_features);
    fresh->weight.detach().copy_(old->weight.detach());
    fresh->bias.detach().copy_(old->bias.detach());
    ctx.model->replace_module("head", fresh);
  }
  void on_epoch_begin(CompressionContext&) override { ++epochs; }
  void on_train_end(CompressionContext& ctx) override {
    ++train_end;
    if (replace_root) ctx.model = copy_of(std::dynamic_pointer_cast<nn::ViT>(ctx.model));
  }
  void on_model_changed(CompressionContext&) override { ++model_changed; }
};

}  // namespace

TEST_CASE("distill configs: defaults and validation mirror INC") {
  KnowledgeDistillationLossConfig kd;
  CHECK(kd.temperature == 1.0);
  CHECK(kd.loss_types == std::vector<std::string>{"CE", "CE"});
  CHECK(kd.loss_weights == std::vector<double>{0.5, 0.5});
  CHECK_NOTHROW(kd.validate());
  CHECK_THROWS_WITH_AS(KnowledgeDistillationLossConfig(2.0, {"CE", "CE"}, {0.7, 0.7}).validate(),
                       doctest::Contains("sum to 1"), Error);
  CHECK_THROWS_WITH_AS(KnowledgeDistillationLossConfig(2.0, {"CE", "L1"}).validate(),
                       doctest::Contains("CE, KL or MSE"), Error);
  CHECK_THROWS_AS(KnowledgeDistillationLossConfig(0.0).validate(), Error);
  CHECK_THROWS_AS(KnowledgeDistillationLossConfig(1.0, {"CE"}).validate(), Error);

  IntermediateLayersKnowledgeDistillationLossConfig il({{"blocks.0"}, {"blocks.1.attn:probs", "", "KL"}});
  auto r = il.resolve();
  REQUIRE(r.size() == 2);
  CHECK(r[0].type == LossType::MSE);
  CHECK(r[0].weight == 0.5);
  CHECK(r[1].teacher == "blocks.1.attn:probs");
  CHECK(r[1].type == LossType::KL);
  CHECK(r[1].kind == FeatureKind::probabilities);
  CHECK_THROWS_WITH_AS(IntermediateLayersKnowledgeDistillationLossConfig({{"a"}, {"b"}}, {"MSE"}).resolve(),
                       doctest::Contains("1 loss_types for 2"), Error);
  CHECK_THROWS_WITH_AS(
      IntermediateLayersKnowledgeDistillationLossConfig({{"a", "", "L1"}}, {"MSE"}).resolve(),
      doctest::Contains("use one of them"), Error);
  CHECK_THROWS_WITH_AS(IntermediateLayersKnowledgeDistillationLossConfig({{"a", "", "CE"}}).resolve(),
                       doctest::Contains("logit loss"), Error);
  CHECK_THROWS_AS(IntermediateLayersKnowledgeDistillationLossConfig(std::vector<LayerMapping>{}).resolve(),
                  Error);
}

TEST_CASE("distill manager: logit KD loss is w0 * task + w1 * T^2 * D") {
  auto teacher = tiny_vit(1), student = tiny_vit(2);
  for (const char* type : {"CE", "KL", "MSE"}) {
    CAPTURE(type);
    auto cm = prepare_compression(
        student,
        {DistillationConfig(teacher, KnowledgeDistillationLossConfig(2.0, {"CE", type}, {0.3, 0.7}))});
    cm.on_train_begin();
    cm.on_epoch_begin(0);
    cm.on_step_begin(0);
    Tensor x = randn({4, 1, 8, 8});
    Tensor y = tensor(std::vector<int32_t>{0, 1, 2, 3}, {4});
    Tensor out = (*cm.model())(x);
    Tensor task = cross_entropy(out, y);
    Tensor loss = cm.on_after_compute_loss(x, out, task);

    Tensor zt = teacher_feature(teacher, "head", x);
    KDLossOptions o{2.0, parse_loss_type(type), Reduction::batchmean};
    const double want = 0.3 * item(task) + 0.7 * item(kd_loss(out.detach(), zt, o));
    CHECK(item(loss) == doctest::Approx(want).epsilon(1e-6));
    auto dc = cm.component<DistillationComponent>();
    REQUIRE(dc != nullptr);
    REQUIRE(dc->last_terms().size() == 2);
    CHECK(dc->last_terms()[0].first == "task");
    CHECK(dc->last_terms()[1].first == "kd");
    cm.on_train_end();
  }
}

TEST_CASE("distill manager: intermediate-layer loss is sum_i w_i D_i (+ task with add_origin_loss)") {
  auto teacher = tiny_vit(1), student = tiny_vit(2);
  for (bool origin : {false, true}) {
    CAPTURE(origin);
    IntermediateLayersKnowledgeDistillationLossConfig il(
        {{"blocks.0"}, {"blocks.1.attn:probs"}, {"norm", "norm"}}, {"MSE", "KL", "Cosine"}, {0.25, 0.5, 2.0},
        origin);
    auto cm = prepare_compression(student, {DistillationConfig(teacher, il)});
    cm.on_train_begin();
    cm.on_step_begin(0);
    Tensor x = randn({3, 1, 8, 8});
    Tap s0(*student, "blocks.0", true), s1(*student, "blocks.1.attn:probs", true), s2(*student, "norm", true);
    Tensor out = (*cm.model())(x);
    Tensor task = cross_entropy(out, tensor(std::vector<int32_t>{4, 0, 2}, {3}));
    Tensor loss = cm.on_after_compute_loss(x, out, task);

    FeatureLossOptions mse, kl, cosine;
    kl.type = LossType::KL;
    kl.kind = FeatureKind::probabilities;
    cosine.type = LossType::Cosine;
    double want =
        0.25 * item(feature_loss(s0.feature(), teacher_feature(teacher, "blocks.0", x), mse)) +
        0.5 * item(feature_loss(s1.feature(), teacher_feature(teacher, "blocks.1.attn:probs", x), kl)) +
        2.0 * item(feature_loss(s2.feature(), teacher_feature(teacher, "norm", x), cosine));
    if (origin) want += item(task);
    CHECK(item(loss) == doctest::Approx(want).epsilon(1e-5));
    CHECK(cm.component<DistillationComponent>()->last_terms().size() == (origin ? 4u : 3u));
  }
}

TEST_CASE("distill manager: the teacher runs in eval mode, gets no gradients and builds no graph") {
  auto teacher = tiny_vit(1), student = tiny_vit(2);
  teacher->train();  // the manager must put it in eval mode
  IntermediateLayersKnowledgeDistillationLossConfig il({{"blocks.1"}, {"blocks.0.attn:probs"}});
  auto cm =
      prepare_compression(student, {DistillationConfig(teacher, {KnowledgeDistillationLossConfig(), il})});
  cm.on_train_begin();
  cm.on_step_begin(0);
  Tensor x = randn({2, 1, 8, 8});
  Tensor out = (*cm.model())(x);
  Tensor loss = cm.on_after_compute_loss(x, out, cross_entropy(out, tensor(std::vector<int32_t>{1, 2}, {2})));
  loss.backward();
  CHECK_FALSE(teacher->is_training());
  auto dc = cm.component<DistillationComponent>();
  CHECK(dc->teacher_output().grad_fn() == nullptr);
  CHECK_FALSE(dc->teacher_output().requires_grad());
  for (size_t i = 0; i < 2; ++i) {
    CHECK(dc->teacher_tap(i).feature().grad_fn() == nullptr);
    CHECK(dc->student_tap(i).feature().grad_fn() != nullptr);
  }
  for (const auto& np : teacher->named_parameters()) CHECK_MESSAGE(!np.second.grad().defined(), np.first);
  int with_grad = 0;
  for (const auto& p : student->parameters()) with_grad += p.grad().defined();
  CHECK(with_grad == static_cast<int>(student->parameters().size()));
}

TEST_CASE("distill manager: features live for one step and are not recorded in eval") {
  auto teacher = tiny_vit(1), student = tiny_vit(2);
  auto cm = prepare_compression(
      student,
      {DistillationConfig(teacher, IntermediateLayersKnowledgeDistillationLossConfig({{"blocks.1"}}))});
  auto dc = cm.component<DistillationComponent>();
  cm.on_train_begin();
  cm.on_step_begin(0);
  Tensor x = randn({2, 1, 8, 8});
  Tensor out = (*cm.model())(x);
  CHECK(dc->student_tap(0).has_feature());
  cm.on_after_compute_loss(x, out, Tensor());
  CHECK(dc->teacher_tap(0).has_feature());
  cm.on_step_begin(1);
  CHECK_FALSE(dc->student_tap(0).has_feature());
  CHECK_FALSE(dc->teacher_tap(0).has_feature());
  // An evaluation pass in eval mode records nothing for the student.
  student->eval();
  (*cm.model())(x);
  CHECK_FALSE(dc->student_tap(0).has_feature());
  CHECK_THROWS_WITH_AS(cm.on_after_compute_loss(x, out, Tensor()), doctest::Contains("training mode"), Error);
  student->train();
  (*cm.model())(x);
  cm.on_step_end();
  CHECK_FALSE(dc->student_tap(0).has_feature());
  cm.on_train_end();
  CHECK(student->get_submodule("blocks.1")->num_forward_hooks() == 0);
  CHECK(teacher->get_submodule("blocks.1")->num_forward_hooks() == 0);
}

TEST_CASE("distill manager: projections only where widths differ; trained, saved and loaded") {
  auto teacher = tiny_vit(1, 16), student = tiny_vit(2, 8);
  IntermediateLayersKnowledgeDistillationLossConfig il(
      {{"blocks.0"}, {"blocks.1.attn:probs"}, {"head"}, {"norm"}});
  auto cm = prepare_compression(student, {DistillationConfig(teacher, il)});
  auto dc = cm.component<DistillationComponent>();
  auto proj = dc->projections();
  CHECK(proj->child("0") != nullptr);
  CHECK(proj->child("1") == nullptr);  // [B, heads, N, N] on both sides
  CHECK(proj->child("2") == nullptr);  // logits: same class count
  CHECK(proj->child("3") != nullptr);
  auto p0 = std::dynamic_pointer_cast<nn::Linear>(proj->child("0"));
  REQUIRE(p0 != nullptr);
  CHECK(p0->in_features == 8);
  CHECK(p0->out_features == 16);

  auto params = cm.trainable_parameters();
  CHECK(params.size() == student->parameters().size() + 4);
  auto sd = cm.state_dict();
  CHECK(sd.contains("distill_projections.0.weight"));
  CHECK(sd.contains("distill_projections.0.bias"));
  CHECK(sd.contains("distill_projections.3.weight"));
  CHECK(sd.contains("blocks.0.attn.qkv.weight"));
  CHECK(sd.size() == student->state_dict().size() + 4);

  cm.on_train_begin();
  cm.on_step_begin(0);
  Tensor x = randn({2, 1, 8, 8});
  Tensor out = (*cm.model())(x);
  cm.on_after_compute_loss(x, out, Tensor()).backward();
  CHECK(p0->weight.grad().defined());
  CHECK(item(sum(abs(p0->weight.grad()))) > 0);

  // Load into a fresh manager: projections and student come back.
  auto student2 = tiny_vit(9, 8);
  auto cm2 = prepare_compression(student2, {DistillationConfig(teacher, il)});
  cm2.load_state_dict(sd);
  auto q0 = std::dynamic_pointer_cast<nn::Linear>(
      cm2.component<DistillationComponent>()->projections()->child("0"));
  CHECK(q0->weight.to_vector<float>() == p0->weight.to_vector<float>());
  CHECK(student2->pos_embed.to_vector<float>() == student->pos_embed.to_vector<float>());
  nn::StateDict student_only = student->state_dict();
  CHECK_THROWS_WITH_AS(cm2.load_state_dict(student_only), doctest::Contains("distill_projections"), Error);
}

TEST_CASE("distill manager: mappings whose shapes differ beyond the last dim are refused at prepare") {
  auto teacher = tiny_vit(1, 16, 2), student = tiny_vit(2, 16, 4);
  IntermediateLayersKnowledgeDistillationLossConfig il({{"blocks.0.attn:probs"}});
  CHECK_THROWS_WITH_AS(prepare_compression(student, {DistillationConfig(teacher, il)}),
                       doctest::Contains("only in the last dim"), Error);
  IntermediateLayersKnowledgeDistillationLossConfig bad({{"blocks.0.atn:probs"}});
  CHECK_THROWS_WITH_AS(prepare_compression(student, {DistillationConfig(teacher, bad)}),
                       doctest::Contains("blocks.0.attn:probs"), Error);
  CHECK_THROWS_WITH_AS(
      prepare_compression(student, {DistillationConfig(student, KnowledgeDistillationLossConfig())}),
      doctest::Contains("teacher is the student"), Error);
}

TEST_CASE(
    "distill manager: a plugged-in component (QAT stand-in) leaves the loss alone; taps survive swaps") {
  auto student = tiny_vit(2);
  auto swap = std::make_shared<SwapHeadComponent>();
  {
    auto cm = prepare_compression(student, {swap});
    cm.on_train_begin();
    cm.on_epoch_begin(0);
    cm.on_step_begin(0);
    Tensor x = randn({2, 1, 8, 8});
    Tensor out = (*cm.model())(x);
    Tensor task = cross_entropy(out, tensor(std::vector<int32_t>{1, 2}, {2}));
    CHECK(cm.on_after_compute_loss(x, out, task).is_same(task));
    CHECK(swap->train_begin == 1);
    CHECK(swap->epochs == 1);
  }
  // QAT first, then distillation with a tap on the swapped head.
  auto teacher = tiny_vit(1);
  auto swap2 = std::make_shared<SwapHeadComponent>();
  swap2->replace_root = true;
  auto cm = prepare_compression(
      student,
      {swap2, DistillationConfig(teacher, IntermediateLayersKnowledgeDistillationLossConfig({{"head"}}))});
  cm.on_train_begin();
  cm.on_step_begin(0);
  Tensor x = randn({2, 1, 8, 8});
  Tensor out = (*cm.model())(x);
  auto dc = cm.component<DistillationComponent>();
  REQUIRE(dc->student_tap(0).has_feature());
  CHECK(dc->student_tap(0).feature().is_same(out));
  cm.on_after_compute_loss(x, out, Tensor());
  cm.on_step_end();
  auto before = cm.model();
  cm.on_train_end();
  CHECK(cm.model() != before);  // the stand-in's "convert" returned a new model
  CHECK(swap2->model_changed == 1);
  CHECK(swap2->train_end == 1);
}

TEST_CASE("distill manager: a few steps of distillation reduce the distillation loss") {
  auto teacher = tiny_vit(1), student = tiny_vit(2);
  IntermediateLayersKnowledgeDistillationLossConfig il({{"blocks.0"}, {"blocks.1"}, {"blocks.1.attn:probs"}});
  auto cm = prepare_compression(
      student,
      {DistillationConfig(teacher, {KnowledgeDistillationLossConfig(2.0, {"CE", "KL"}, {0.0, 1.0}), il})});
  cm.on_train_begin();
  optim::AdamW opt(cm.trainable_parameters(), optim::AdamWOptions(3e-3).weight_decay(0.0));
  Generator g(11);
  Tensor x = randn({8, 1, 8, 8}, g);
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    cm.on_step_begin(step);
    Tensor out = (*cm.model())(x);
    Tensor loss = cm.on_after_compute_loss(x, out, Tensor());
    if (step == 0) first = item(loss);
    last = item(loss);
    opt.zero_grad();
    loss.backward();
    cm.on_before_optimizer_step();
    opt.step();
    cm.on_step_end();
  }
  cm.on_train_end();
  MESSAGE("distillation loss " << first << " -> " << last);
  CHECK(std::isfinite(last));
  CHECK(last < 0.5 * first);
}

TEST_CASE("distill manager: QatComponent runs prepare, the epoch schedule and convert; loss unchanged") {
  auto student = tiny_vit(2), teacher = tiny_vit(1);
  std::vector<int64_t> epochs;
  nn::ModulePtr prepared_model, int8_model;
  auto qat = std::make_shared<QatComponent>(
      QatCallbacks{[&](const nn::ModulePtr& m) {  // "prepare": a new root, as a rewriting pass may return
                     prepared_model = copy_of(std::dynamic_pointer_cast<nn::ViT>(m));
                     return prepared_model;
                   },
                   [&](const nn::ModulePtr&, int64_t epoch) { epochs.push_back(epoch); },
                   [&](const nn::ModulePtr& m) {
                     int8_model = copy_of(std::dynamic_pointer_cast<nn::ViT>(m));
                     return int8_model;
                   }});
  SUBCASE("alone: the loss passes through") {
    auto cm = prepare_compression(student, {qat});
    cm.on_train_begin();
    CHECK(cm.model() == prepared_model);
    cm.on_epoch_begin(0);
    cm.on_step_begin(0);
    Tensor x = randn({2, 1, 8, 8});
    Tensor out = (*cm.model())(x);
    Tensor task = cross_entropy(out, tensor(std::vector<int32_t>{1, 2}, {2}));
    CHECK(cm.on_after_compute_loss(x, out, task).is_same(task));
    cm.on_epoch_begin(1);
    cm.on_train_end();
    CHECK(epochs == std::vector<int64_t>{0, 1});
    CHECK(cm.model() == int8_model);
    CHECK(qat->converted() == int8_model);
  }
  SUBCASE("with distillation listed first: taps follow the prepared model") {
    auto cm = prepare_compression(
        student,
        {DistillationConfig(teacher, IntermediateLayersKnowledgeDistillationLossConfig({{"blocks.1"}})),
         qat});
    cm.on_train_begin();
    REQUIRE(cm.model() == prepared_model);
    CHECK(student->get_submodule("blocks.1")->num_forward_hooks() == 0);  // old model unhooked
    cm.on_step_begin(0);
    Tap direct(*prepared_model, "blocks.1", true);
    Tensor x = randn({2, 1, 8, 8});
    Tensor out = (*cm.model())(x);
    auto dc = cm.component<DistillationComponent>();
    REQUIRE(dc->student_tap(0).has_feature());
    CHECK(dc->student_tap(0).feature().is_same(direct.feature()));
    Tensor loss = cm.on_after_compute_loss(x, out, Tensor());
    CHECK(item(loss) > 0);
    cm.on_step_end();
    CHECK_NOTHROW(cm.on_train_end());
    CHECK(cm.model() == int8_model);
  }
  CHECK_THROWS_AS(QatComponent(QatCallbacks{}), Error);
}

TEST_CASE("distill ViT recipe: uniform block mapping, attention maps only with equal heads, weights") {
  nn::ViTConfig t, s;  // the reference ViT: depth 6, 4 heads
  s.depth = 4;
  s.dim = 96;
  std::string note;
  std::vector<LayerMapping> m = vit_layer_mappings(s, t, ViTDistillRecipe{}, &note);
  REQUIRE(m.size() == 8);
  // Student block i follows teacher block (i + 1) * 6 / 4 - 1: 0, 2, 3, 5.
  const char* expect[] = {"blocks.0", "blocks.2", "blocks.3", "blocks.5"};
  for (int i = 0; i < 4; ++i) {
    CHECK(m[2 * i].student == "blocks." + std::to_string(i));
    CHECK(m[2 * i].teacher == expect[i]);
    CHECK(m[2 * i + 1].student == "blocks." + std::to_string(i) + ".attn:probs");
    CHECK(m[2 * i + 1].teacher == std::string(expect[i]) + ".attn:probs");
  }
  CHECK(note.empty());

  ViTDistillRecipe r;
  r.block_weight = 0.5;
  r.attn_weight = 0;  // no attention maps
  m = vit_layer_mappings(s, t, r);
  REQUIRE(m.size() == 4);
  for (const auto& x : m) CHECK(*x.weight == 0.5);

  s.heads = 2;  // attention maps of different head counts cannot be compared
  m = vit_layer_mappings(s, t, ViTDistillRecipe{}, &note);
  CHECK(m.size() == 4);
  CHECK(note.find("head counts differ") != std::string::npos);

  r = ViTDistillRecipe{};
  r.layers = {"norm", "blocks.1"};
  r.block_weight = 2;
  m = vit_layer_mappings(s, t, r);
  REQUIRE(m.size() == 2);
  CHECK(m[1].teacher_name() == "blocks.1");
  CHECK(*m[1].weight == 2);

  // The config: logit KD with (1 - kd_weight, kd_weight), then the layer criterion.
  auto teacher = tiny_vit(1);
  r = ViTDistillRecipe{};
  r.kd_weight = 0.7;
  r.temperature = 4;
  DistillationConfig c = vit_distillation_config(teacher, teacher->cfg, teacher->cfg, r);
  REQUIRE(c.criteria.size() == 2);
  const auto& kd = std::get<KnowledgeDistillationLossConfig>(c.criteria[0]);
  CHECK(kd.temperature == 4);
  CHECK(kd.loss_weights[0] == doctest::Approx(0.3));
  CHECK(std::get<IntermediateLayersKnowledgeDistillationLossConfig>(c.criteria[1]).layer_mappings.size() == 4);
}
