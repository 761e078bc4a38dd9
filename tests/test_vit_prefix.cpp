// The ViT's last block computes only the CLS row when nothing watches the other rows
// (nn::PrefixForward): the same logits and gradients as the full computation, and the full
// computation whenever a hook or a still-observing fake quantization needs every row.
#include <doctest/doctest.h>

#include <memory>

#include "engine/ops.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/prepare.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using testing::TL;

namespace {

// nn::GELU that remembers the shape of its last input: which rows the last block's MLP saw.
struct RecordingGELU : nn::Module {
  Shape seen;
  RecordingGELU() : Module("RecordingGELU") {}
  bool row_independent() const override { return true; }
  Tensor forward(const Tensor& x) override {
    seen = x.sizes();
    return gelu(x);
  }
};

struct Fixture {
  nn::ViTConfig cfg;  // the reference ViT: 50 tokens, D 128, 6 blocks
  std::shared_ptr<nn::ViT> vit;
  std::shared_ptr<RecordingGELU> act = std::make_shared<RecordingGELU>();
  Tensor images, labels;
  // More than 32 images: the CLS-only rows then take the GEMM's blocked path, as the full rows do
  // (at most 32 rows go through its dot-product tiles, whose sums run in another order).
  explicit Fixture(int64_t batch = 40) {
    Generator gen(21);
    vit = std::make_shared<nn::ViT>(cfg, gen);
    vit->init_weights_torch(gen);
    vit->set_submodule("blocks.5.mlp.act", act);
    images = randn({batch, 1, 28, 28}, gen);
    labels = randint(0, cfg.classes, {batch}, gen);
  }
  // Logits, then every parameter's gradient of the cross-entropy loss.
  TL step() {
    vit->zero_grad();
    Tensor logits = (*vit)(images);
    cross_entropy(logits, labels).backward();
    TL out{logits.detach()};
    for (auto& [name, p] : vit->named_parameters()) out.push_back(p.grad());
    return out;
  }
  // step() with a hook on the final norm, which must see every row: the full computation.
  TL step_full() {
    nn::ScopedHook h(vit->child("norm")->register_forward_hook([](const nn::ForwardCall&) {}));
    return step();
  }
};

}  // namespace

TEST_CASE("vit: the last block computes the CLS row alone, with the logits and gradients of the full block") {
  Fixture f;
  f.vit->train();
  TL part = f.step();
  CHECK(f.act->seen == Shape{40, 1, 512});
  TL full = f.step_full();
  CHECK(f.act->seen == Shape{40, 50, 512});
  REQUIRE(part.size() == full.size());
  CHECK(testing::bit_equal(part[0], full[0]));
  auto names = f.vit->named_parameters();
  for (size_t i = 1; i < part.size(); ++i) {
    CAPTURE(names[i - 1].first);
    REQUIRE(part[i].defined());
    // The dead rows add exact zeros; a weight gradient of the last block sums its 40 rows in
    // another k blocking than the full 2000, which may move its last bits.
    CHECK(testing::max_abs_diff(part[i], full[i]) <= 1e-6 * (1.0 + testing::max_abs(full[i])));
  }
  testing::check_thread_invariant([&] { return f.step(); });
  // A small batch: the logits agree to rounding.
  Fixture s(5);
  Tensor a = s.step()[0], b = s.step_full()[0];
  CHECK(testing::max_abs_diff(a, b) <= 1e-5 * (1.0 + testing::max_abs(b)));
}

TEST_CASE("vit: hooks on the blocks or the final norm keep every row of the last block") {
  Fixture f;
  NoGradGuard ng;
  Tensor expect = (*f.vit)(f.images);
  CHECK(f.act->seen == Shape{40, 1, 512});
  for (std::string where : {"blocks", "blocks.5", "blocks.5.attn", "blocks.5.mlp.fc2", "norm"}) {
    CAPTURE(where);
    Shape hooked;
    nn::ScopedHook h(f.vit->get_submodule(where)->register_forward_hook(
        [&](const nn::ForwardCall& c) { hooked = c.output.sizes(); }));
    CHECK(testing::bit_equal((*f.vit)(f.images), expect));
    CHECK(f.act->seen == Shape{40, 50, 512});
    CHECK(hooked.size() == 3);
    CHECK(hooked[1] == 50);
  }
  // A hook on an earlier block leaves the shortcut alone.
  nn::ScopedHook h(f.vit->get_submodule("blocks.4")->register_forward_hook([](const nn::ForwardCall&) {}));
  CHECK(testing::bit_equal((*f.vit)(f.images), expect));
  CHECK(f.act->seen == Shape{40, 1, 512});
}

TEST_CASE("vit: a QAT model uses the CLS-only block only once its activation observers stop") {
  Fixture f;
  quant::prepare_qat(*f.vit);
  f.vit->train();
  // Observing: the input fake quantizations of proj / fc1 / fc2 must see every row's range.
  auto fc1_range = [&] {
    auto& fq = dynamic_cast<quant::FakeQuantize&>(*f.vit->get_submodule("blocks.5.mlp.fc1.input_fake_quant"));
    return TL{fq.scale.clone(), fq.zero_point.clone()};
  };
  f.step();
  CHECK(f.act->seen == Shape{40, 50, 512});
  // The scales those steps reach are the full computation's (a second model, forced full).
  Fixture g;
  quant::prepare_qat(*g.vit);
  g.vit->train();
  g.step_full();
  auto& gfq = dynamic_cast<quant::FakeQuantize&>(*g.vit->get_submodule("blocks.5.mlp.fc1.input_fake_quant"));
  CHECK(testing::bit_equal(fc1_range()[0], gfq.scale));
  // Frozen observers: the fake quantization is row-wise, and the shortcut gives the same bits.
  quant::freeze_observers(*f.vit);
  TL part = f.step();
  CHECK(f.act->seen == Shape{40, 1, 512});
  TL full = f.step_full();
  CHECK(testing::bit_equal(part[0], full[0]));
  // Eval mode never observes either.
  f.vit->eval();
  {
    NoGradGuard ng;
    Tensor y = (*f.vit)(f.images);
    CHECK(f.act->seen == Shape{40, 1, 512});
    CHECK(testing::bit_equal(y, part[0]));
  }
}
