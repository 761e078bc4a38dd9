// prepare_compression with INC's two configs: QuantizationAwareTrainingConfig wires quant/ into the
// manager (prepare on train begin, observer freezing per epoch, convert on train end).
#include <doctest/doctest.h>

#include "distill/compression.hpp"
#include "distill/qat_component.hpp"
#include "engine/ops.hpp"
#include "nn/layers/vit.hpp"
#include "nn/optim/adamw.hpp"
#include "quant/int8_linear.hpp"
#include "quant/qat_linear.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::distill;

namespace {
std::shared_ptr<nn::ViT> small_vit(uint64_t seed) {
  nn::ViTConfig c;
  c.img = 8;
  c.patch = 4;
  c.chans = 1;
  c.dim = 16;
  c.depth = 1;
  c.heads = 2;
  c.hidden = 32;
  c.classes = 5;
  Generator g(seed);
  return std::make_shared<nn::ViT>(c, g);
}

int count_type(nn::Module& m, const std::string& type) {
  int n = 0;
  for (auto& [name, sub] : m.named_modules()) n += sub->type_name() == type;
  return n;
}
}  // namespace

TEST_CASE("distill + QAT: prepare on train begin, loss unchanged, freeze schedule, convert on train end") {
  auto student = small_vit(3);
  const int linears = count_type(*student, "Linear");
  REQUIRE(linears == 5);  // qkv, proj, fc1, fc2, head
  quant::QuantizationAwareTrainingConfig qcfg;
  qcfg.freeze_observer_epoch = 1;
  auto cm = prepare_compression(student, {qcfg});
  cm.on_train_begin();
  CHECK(count_type(*cm.model(), "Linear") == 0);
  CHECK(count_type(*cm.model(), "QATLinear") == linears);
  optim::AdamW opt(cm.trainable_parameters(), optim::AdamWOptions(1e-3));
  Generator gen(5);
  Tensor x = randn({4, 1, 8, 8}, gen);
  Tensor y = tensor(std::vector<int32_t>{0, 1, 2, 3}, {4});
  for (int epoch = 0; epoch < 2; ++epoch) {
    cm.on_epoch_begin(epoch);
    cm.on_step_begin(epoch);
    Tensor out = (*cm.model())(x);
    Tensor task = cross_entropy(out, y);
    Tensor loss = cm.on_after_compute_loss(x, out, task);
    CHECK(loss.is_same(task));  // QAT alone returns the loss unchanged
    opt.zero_grad();
    loss.backward();
    cm.on_before_optimizer_step();
    opt.step();
    cm.on_step_end();
    cm.on_epoch_end();
  }
  cm.model()->eval();
  Tensor fq_logits;
  {
    NoGradGuard ng;
    fq_logits = (*cm.model())(x);
  }
  cm.on_train_end();
  CHECK(count_type(*cm.model(), "Int8Linear") == linears);
  NoGradGuard ng;
  Tensor int8_logits = (*cm.model())(x);
  // The converted model computes on the fake-quant grid (observers frozen since epoch 1).
  CHECK(quench::testing::max_abs_diff(int8_logits, fq_logits) == 0.0);
}
