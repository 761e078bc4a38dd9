// Layers whose forward needs layer_norm / gelu / softmax / masked_fill / dropout / embedding / cat /
// cross_entropy: the ViT's names against the reference, its forward and every gradient against
// PyTorch (tests/golden/make_vit_golden.py), attention probabilities through hooks, the key-padding
// mask, and the small layers.
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "engine/ops.hpp"
#include "nn/nn.hpp"
#include "tests/golden.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::scaled_err;

namespace {

const SafeTensorsFile& vit_golden() {
  static const SafeTensorsFile g = testing::load_golden("vit_golden.safetensors");
  return g;
}

// The config of make_vit_golden.py.
ViTConfig golden_config() {
  ViTConfig c;
  c.img = 8;
  c.patch = 4;
  c.chans = 3;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.hidden = 32;
  c.classes = 3;
  return c;
}

std::shared_ptr<ViT> golden_vit() {
  Generator gen(0);
  auto m = std::make_shared<ViT>(golden_config(), gen);
  StateDict sd;
  for (const auto& [k, v] : vit_golden().tensors)
    if (k.rfind("sd.", 0) == 0) sd.insert(k.substr(3), v);
  m->load_state_dict(sd);
  return m;
}

// Relative to each tensor's largest element (see scaled_err).
constexpr double kTol = 1e-4;

}  // namespace

TEST_CASE("ViT: parameter names, order and shapes equal the PyTorch reference's") {
  // Two texts, one "<name> <dims...>" / "<name> <Class>" per line, in PyTorch's order.
  const SafeTensorsFile keys = testing::load_golden("vit_reference_keys.safetensors");
  std::vector<std::pair<std::string, Shape>> params;
  std::vector<std::string> modules;
  std::istringstream params_in(testing::golden_text(keys.at("params")));
  std::istringstream modules_in(testing::golden_text(keys.at("modules")));
  std::string line;
  while (std::getline(params_in, line)) {
    std::istringstream ls(line);
    std::string name;
    ls >> name;
    Shape s;
    int64_t d;
    while (ls >> d) s.push_back(d);
    params.emplace_back(name, s);
  }
  while (std::getline(modules_in, line)) {
    std::istringstream ls(line);
    std::string name, type;
    ls >> name >> type;
    modules.push_back(name + ":" + type);
  }
  REQUIRE(params.size() == 4 + 6 * 12 + 4);
  auto m = std::make_shared<ViT>(ViTConfig{});
  StateDict sd = m->state_dict();
  REQUIRE(sd.size() == params.size());
  size_t i = 0;
  for (const auto& kv : sd) {
    CHECK(kv.first == params[i].first);
    CHECK_MESSAGE(kv.second.sizes() == params[i].second, kv.first);
    ++i;
  }
  auto named = m->named_parameters();
  REQUIRE(named.size() == params.size());
  for (size_t j = 0; j < named.size(); ++j) CHECK(named[j].first == params[j].first);
  // Modules: the same list once our explicit GELU children ("mlp.act") are left out.
  std::vector<std::string> ours;
  for (const auto& [n, c] : m->named_modules())
    if (!n.empty() && c->type_name() != "GELU") ours.push_back(n + ":" + c->type_name());
  CHECK(ours == modules);
  CHECK(m->get_submodule("blocks.5.mlp.act")->type_name() == "GELU");
  // Distillation taps name modules like this.
  CHECK_THROWS_WITH_AS(m->get_submodule("blocks.3.atn"), doctest::Contains("blocks.3.attn"), Error);
}

TEST_CASE("ViT: forward, cross-entropy and every parameter gradient match PyTorch") {
  auto m = golden_vit();
  const SafeTensorsFile& g = vit_golden();
  Tensor logits = (*m)(g.at("images"));
  REQUIRE(logits.sizes() == Shape{2, 3});
  CHECK(scaled_err(logits, g.at("logits")) < kTol);
  Tensor loss = cross_entropy(logits, g.at("labels"));
  CHECK(loss.item<float>() == doctest::Approx(g.at("loss").item<float>()).epsilon(kTol));
  loss.backward();
  int checked = 0;
  for (const auto& np : m->named_parameters()) {
    REQUIRE_MESSAGE(np.second.grad().defined(), np.first);
    CHECK_MESSAGE(scaled_err(np.second.grad(), g.at("grad." + np.first)) < kTol, np.first);
    ++checked;
  }
  CHECK(checked == 4 + 2 * 12 + 4);
}

TEST_CASE("Attention: probabilities are visible to a hook on blocks.i.attn and match PyTorch") {
  auto m = golden_vit();
  Tensor probs;
  {
    ScopedHook h(m->get_submodule("blocks.1.attn")->register_forward_hook(
        [&](const ForwardCall& c) { probs = c.extra("probs"); }));
    (*m)(vit_golden().at("images"));
  }
  REQUIRE(probs.defined());
  CHECK(probs.sizes() == Shape{2, 2, 5, 5});
  CHECK(scaled_err(probs, vit_golden().at("probs.1")) < kTol);
  // Rows sum to one.
  for (float s : probs.sum({-1}).to_vector<float>()) CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("Attention: masked keys get no probability and the output matches PyTorch") {
  auto m = golden_vit();
  auto attn = m->get_submodule("blocks.0.attn");
  const SafeTensorsFile& g = vit_golden();
  Tensor mask = g.at("mask.mask").to(kUInt8);
  Tensor probs;
  auto h = attn->register_forward_hook([&](const ForwardCall& c) { probs = c.extra("probs"); });
  Tensor out = (*attn)({g.at("mask.x"), mask});
  h.remove();
  CHECK(scaled_err(out, g.at("mask.out")) < kTol);
  for (int64_t hh = 0; hh < 2; ++hh)
    for (int64_t q = 0; q < 5; ++q) {
      CHECK(probs.at({0, hh, q, 3}) == 0.0);
      CHECK(probs.at({0, hh, q, 4}) == 0.0);
      CHECK(probs.at({1, hh, q, 4}) > 0.0);
    }
  CHECK_THROWS_WITH_AS((*attn)({g.at("mask.x"), mask.to(kFloat32)}), doctest::Contains("u8 key-padding mask"),
                       Error);
  // Gradients through the masked softmax.
  CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return (*attn)({in[0], mask}); },
                           {g.at("mask.x")}));
}

TEST_CASE("Block and ViT: gradcheck of the input gradient on a tiny model") {
  Generator gen(5);
  auto block = std::make_shared<Block>(8, 2, 12, 1e-6, gen);
  CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return (*block)(in[0]); }, {randn({2, 3, 8}, gen)}));
  ViTConfig c;
  c.img = 4;
  c.patch = 2;
  c.chans = 1;
  c.dim = 8;
  c.depth = 1;
  c.heads = 2;
  c.hidden = 8;
  c.classes = 2;
  auto vit = std::make_shared<ViT>(c, gen);
  CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return (*vit)(in[0]); }, {randn({1, 1, 4, 4}, gen)}));
}

TEST_CASE("ViT: every size is configurable and init follows timm") {
  ViTConfig c;
  c.img = 12;
  c.patch = 3;
  c.chans = 2;
  c.dim = 24;
  c.depth = 3;
  c.heads = 3;
  c.hidden = 40;
  c.classes = 5;
  Generator gen(8);
  auto m = std::make_shared<ViT>(c, gen);
  CHECK((*m)(randn({2, 2, 12, 12}, gen)).sizes() == Shape{2, 5});
  CHECK(m->pos_embed.sizes() == Shape{1, 17, 24});
  int64_t n = 0;
  for (auto& p : m->parameters()) n += p.numel();
  const int64_t D = 24, M = 40;
  const int64_t per_block = 2 * 2 * D + (3 * D * D + 3 * D) + (D * D + D) + (M * D + M) + (D * M + D);
  CHECK(n == D * 2 * 9 + D + D + 17 * D + 3 * per_block + 2 * D + 5 * D + 5);
  for (float v : m->cls_token.to_vector<float>()) CHECK(v == 0.f);
  double s2 = 0;
  for (float v : m->pos_embed.to_vector<float>()) s2 += v * v;
  CHECK(std::sqrt(s2 / m->pos_embed.numel()) == doctest::Approx(0.02).epsilon(0.2));
  for (auto& nm : m->named_modules()) {
    const std::string& name = nm.first;
    if (auto* lin = dynamic_cast<Linear*>(nm.second.get())) {
      for (float v : lin->bias.to_vector<float>()) CHECK_MESSAGE(v == 0.f, name);
      double w2 = 0;
      for (float v : lin->weight.to_vector<float>()) w2 += v * v;
      CHECK_MESSAGE(std::sqrt(w2 / lin->weight.numel()) == doctest::Approx(0.02).epsilon(0.2), name);
    }
    if (auto* ln = dynamic_cast<LayerNorm*>(nm.second.get())) {
      CHECK(ln->eps == 1e-6);
      for (float v : ln->weight.to_vector<float>()) CHECK(v == 1.f);
    }
  }
  CHECK_THROWS_WITH_AS(ViT(ViTConfig{10, 4}), doctest::Contains("multiple of patch"), Error);
  CHECK_THROWS_WITH_AS((*m)(randn({1, 1, 12, 12}, gen)), doctest::Contains("expected images [B, 2, 12, 12]"),
                       Error);
}

TEST_CASE("layers: LayerNorm, GELU, Dropout and Embedding modules") {
  Generator gen(12);
  Tensor x = randn({3, 4, 6}, gen);
  auto ln = std::make_shared<LayerNorm>(6, 1e-5);
  CHECK(ln->state_dict().keys() == std::vector<std::string>{"weight", "bias"});
  ln->weight.detach().copy_(randn({6}, gen));
  ln->bias.detach().copy_(randn({6}, gen));
  CHECK(testing::max_abs_diff((*ln)(x), layer_norm(x, {6}, ln->weight, ln->bias, 1e-5)) == 0.0);
  // Rows normalized: with unit weight and zero bias, mean 0 and variance 1.
  auto ln2 = std::make_shared<LayerNorm>(6);
  Tensor y = (*ln2)(x);
  for (float v : y.mean({-1}).to_vector<float>()) CHECK(std::abs(v) < 1e-5);

  auto g = std::make_shared<GELU>();
  CHECK(testing::max_abs_diff((*g)(x), gelu(x)) == 0.0);
  CHECK((*g)(tensor({1.f})).item<float>() == doctest::Approx(0.8413447).epsilon(1e-5));
  auto gt = std::make_shared<GELU>("tanh");
  CHECK(testing::max_abs_diff((*gt)(x), gelu(x, "tanh")) == 0.0);
  CHECK_THROWS_AS(GELU("fast"), Error);

  Generator dgen(3);
  auto drop = std::make_shared<Dropout>(0.25, &dgen);
  Tensor big = ones({4000});
  Tensor d = (*drop)(big);
  int zeros_n = 0;
  for (float v : d.to_vector<float>()) {
    if (v == 0.f) ++zeros_n;
    else CHECK(v == doctest::Approx(1.0 / 0.75));
  }
  CHECK(zeros_n > 800);
  CHECK(zeros_n < 1200);
  drop->eval();
  CHECK(testing::max_abs_diff((*drop)(big), big) == 0.0);

  auto emb = std::make_shared<Embedding>(10, 4, gen);
  CHECK(emb->weight.sizes() == Shape{10, 4});
  Tensor ids = tensor({3, 0, 3}, {3});
  Tensor e = (*emb)(ids);
  REQUIRE(e.sizes() == Shape{3, 4});
  CHECK(testing::max_abs_diff(e.select(0, 0), emb->weight.select(0, 3)) == 0.0);
  e.sum().backward();
  CHECK(emb->weight.grad().at({3, 1}) == 2.0);
  CHECK(emb->weight.grad().at({0, 1}) == 1.0);
  CHECK(emb->weight.grad().at({5, 1}) == 0.0);
}

TEST_CASE("ViT: a few AdamW steps reduce the loss on a fixed batch") {
  Generator gen(31);
  auto m = std::make_shared<ViT>(golden_config(), gen);
  Tensor images = randn({8, 3, 8, 8}, gen);
  Tensor labels = randint(0, 3, {8}, gen);
  optim::AdamW opt(optim::param_groups_weight_decay(m->named_parameters(), 0.05, {"pos_embed", "cls_token"}),
                   optim::AdamWOptions(3e-3));
  float first = 0, last = 0;
  for (int s = 0; s < 30; ++s) {
    opt.zero_grad();
    Tensor loss = cross_entropy((*m)(images), labels);
    if (s == 0) first = loss.item<float>();
    last = loss.item<float>();
    loss.backward();
    optim::clip_grad_norm_(m->parameters(), 1.0);
    opt.step();
  }
  CHECK(last < 0.5f * first);
}
