// Module machinery: names and order as PyTorch, hooks, lookup, state dicts, modes; Linear, PatchEmbed.
#include <doctest/doctest.h>

#include <cmath>

#include "engine/ops.hpp"
#include "nn/init.hpp"
#include "nn/layers/linear.hpp"
#include "nn/layers/patch_embed.hpp"
#include "nn/layers/sequential.hpp"
#include "nn/layers/vit.hpp"
#include "nn/module.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::nn;

namespace {

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& v) {
  std::vector<std::string> out;
  for (const auto& e : v) out.push_back(e.first);
  return out;
}

// A two-level model shaped like a transformer block, only from ops this branch links.
struct Inner : Module {
  explicit Inner(Generator& gen) : Module("Inner") {
    register_module("fc1", std::make_shared<Linear>(4, 8, true, gen));
    register_buffer("running", zeros({8}));
    register_module("fc2", std::make_shared<Linear>(8, 4, true, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = (*child("fc1"))(x);
    emit("hidden", h);
    return (*child("fc2"))(h);
  }
};

struct Outer : Module {
  explicit Outer(Generator& gen) : Module("Outer") {
    register_module("embed", std::make_shared<Linear>(3, 4, true, gen));
    scale = register_parameter("scale", ones({4}));
    auto blocks = register_module("blocks", std::make_shared<Sequential>());
    blocks->push_back(std::make_shared<Inner>(gen));
    blocks->push_back(std::make_shared<Inner>(gen));
    register_module("head", std::make_shared<Linear>(4, 2, false, gen));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = (*child("embed"))(x) * scale;
    return (*child("head"))((*child("blocks"))(h));
  }
  Tensor scale;
};

std::shared_ptr<Outer> make_outer(uint64_t seed = 1) {
  Generator gen(seed);
  return std::make_shared<Outer>(gen);
}

}  // namespace

TEST_CASE("module: parameter, buffer and module names follow PyTorch's order") {
  auto m = make_outer();
  // Own parameters first, then children in registration order (PyTorch named_parameters).
  std::vector<std::string> expected = {
      "scale",           "embed.weight",    "embed.bias",      "blocks.0.fc1.weight", "blocks.0.fc1.bias",
      "blocks.0.fc2.weight", "blocks.0.fc2.bias", "blocks.1.fc1.weight", "blocks.1.fc1.bias",
      "blocks.1.fc2.weight", "blocks.1.fc2.bias", "head.weight"};
  CHECK(names_of(m->named_parameters()) == expected);
  CHECK(m->parameters().size() == expected.size());
  CHECK(names_of(m->named_parameters(false)) == std::vector<std::string>{"scale"});
  CHECK(names_of(m->named_buffers()) == std::vector<std::string>{"blocks.0.running", "blocks.1.running"});
  // state_dict: per module its parameters, then its buffers, then the children (checked against
  // PyTorch 1.13 on the same structure).
  std::vector<std::string> sd = {
      "scale",           "embed.weight",    "embed.bias",      "blocks.0.running", "blocks.0.fc1.weight",
      "blocks.0.fc1.bias", "blocks.0.fc2.weight", "blocks.0.fc2.bias", "blocks.1.running",
      "blocks.1.fc1.weight", "blocks.1.fc1.bias", "blocks.1.fc2.weight", "blocks.1.fc2.bias", "head.weight"};
  CHECK(m->state_dict().keys() == sd);
  std::vector<std::string> mods;
  for (auto& [n, c] : m->named_modules()) mods.push_back(n + ":" + c->type_name());
  CHECK(mods == std::vector<std::string>{":Outer", "embed:Linear", "blocks:Sequential", "blocks.0:Inner",
                                         "blocks.0.fc1:Linear", "blocks.0.fc2:Linear", "blocks.1:Inner",
                                         "blocks.1.fc1:Linear", "blocks.1.fc2:Linear", "head:Linear"});
  std::vector<std::string> kids;
  for (auto& [n, c] : m->named_children()) kids.push_back(n);
  CHECK(kids == std::vector<std::string>{"embed", "blocks", "head"});
  CHECK(m->get_submodule("blocks.1.fc2")->type_name() == "Linear");
  CHECK(m->get_submodule("") == m);
  CHECK(m->scale.requires_grad());
  CHECK_FALSE(m->named_buffers()[0].second.requires_grad());
}

TEST_CASE("module: a shared child or parameter is listed once") {
  Generator gen(2);
  auto shared = std::make_shared<Linear>(2, 2, true, gen);
  auto seq = std::make_shared<Sequential>(std::vector<ModulePtr>{shared, shared});
  CHECK(names_of(seq->named_parameters()) == std::vector<std::string>{"0.weight", "0.bias"});
  CHECK(seq->named_modules().size() == 2);
}

TEST_CASE("module: registration errors name the problem") {
  Module m("M");
  m.register_parameter("w", zeros({2}));
  CHECK_THROWS_WITH_AS(m.register_buffer("w", zeros({2})), doctest::Contains("already taken"), Error);
  CHECK_THROWS_WITH_AS(m.register_parameter("a.b", zeros({2})), doctest::Contains("contain no '.'"), Error);
  CHECK_THROWS_WITH_AS(m.register_module("c", ModulePtr()), doctest::Contains("null module"), Error);
  CHECK_THROWS_WITH_AS(m(zeros({2})), doctest::Contains("not implemented"), Error);
  CHECK_THROWS_WITH_AS(m.named_modules(), doctest::Contains("shared_ptr"), Error);
}

TEST_CASE("module: get_submodule lists the nearest valid names when a name is unknown") {
  auto m = make_outer();
  try {
    m->get_submodule("blocks.1.fc3");
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("'blocks.1.fc3'") != std::string::npos);
    CHECK(msg.find("blocks.1.fc1") != std::string::npos);
    CHECK(msg.find("blocks.1.fc2") != std::string::npos);
  }
  CHECK_THROWS_WITH_AS(m->get_submodule("blocks.7"), doctest::Contains("nearest valid names"), Error);
  CHECK_THROWS_AS(m->get_submodule("embed.weight"), Error);  // a parameter is not a module
}

TEST_CASE("module: forward hooks see module, input, output and extras, and are removable") {
  auto m = make_outer();
  Generator gen(5);
  Tensor x = randn({2, 3}, gen);
  auto inner = m->get_submodule("blocks.0");
  int calls = 0;
  Tensor seen_in, seen_out, seen_hidden;
  HookHandle h = inner->register_forward_hook([&](const ForwardCall& c) {
    ++calls;
    CHECK(&c.module == inner.get());
    REQUIRE(c.inputs.size() == 1);
    seen_in = c.inputs[0];
    seen_out = c.output;
    seen_hidden = c.extra("hidden");
    CHECK_THROWS_WITH_AS(c.extra("probs"), doctest::Contains("available: hidden"), Error);
  });
  Tensor y = (*m)(x);
  CHECK(calls == 1);
  CHECK(seen_in.sizes() == Shape{2, 4});
  CHECK(seen_out.sizes() == Shape{2, 4});
  CHECK(seen_hidden.sizes() == Shape{2, 8});
  // The hook's output is what blocks.1 consumed: recomputing blocks.1 on it gives the same logits.
  Tensor again = (*m->get_submodule("head"))((*m->get_submodule("blocks.1"))(seen_out));
  CHECK(testing::max_abs_diff(again, y) == 0.0);
  // Hooks run in registration order; removing one stops it.
  std::vector<int> order;
  HookHandle a = inner->register_forward_hook([&](const ForwardCall&) { order.push_back(1); });
  HookHandle b = inner->register_forward_hook([&](const ForwardCall&) { order.push_back(2); });
  (*m)(x);
  CHECK(order == std::vector<int>{1, 2});
  CHECK(calls == 2);
  h.remove();
  a.remove();
  CHECK_FALSE(h.active());
  CHECK(b.active());
  (*m)(x);
  CHECK(calls == 2);
  CHECK(order == std::vector<int>{1, 2, 2});
  b.remove();
  b.remove();  // idempotent
  CHECK(inner->num_forward_hooks() == 0);
  {
    ScopedHook scoped(inner->register_forward_hook([&](const ForwardCall&) { ++calls; }));
    (*m)(x);
    CHECK(calls == 3);
  }
  CHECK(inner->num_forward_hooks() == 0);
  // A handle outliving its module is harmless.
  HookHandle orphan;
  {
    auto tmp = make_outer();
    orphan = tmp->register_forward_hook([](const ForwardCall&) {});
  }
  CHECK_FALSE(orphan.active());
  orphan.remove();
}

TEST_CASE("module: a hook may remove itself while running") {
  auto m = make_outer();
  int calls = 0;
  HookHandle h;
  h = m->register_forward_hook([&](const ForwardCall&) {
    ++calls;
    h.remove();
  });
  (*m)(ones({1, 3}));
  (*m)(ones({1, 3}));
  CHECK(calls == 1);
}

TEST_CASE("module: train and eval propagate; apply visits children first") {
  auto m = make_outer();
  CHECK(m->is_training());
  m->eval();
  for (auto& nc : m->named_modules()) CHECK_MESSAGE(!nc.second->is_training(), nc.first);
  m->get_submodule("blocks")->train();
  CHECK_FALSE(m->is_training());
  CHECK(m->get_submodule("blocks.1.fc1")->is_training());
  CHECK_FALSE(m->get_submodule("head")->is_training());
  m->train();
  for (auto& nc : m->named_modules()) CHECK_MESSAGE(nc.second->is_training(), nc.first);
  std::vector<std::string> visited;
  m->get_submodule("blocks")->apply([&](Module& x) { visited.push_back(x.type_name()); });
  CHECK(visited == std::vector<std::string>{"Linear", "Linear", "Inner", "Linear", "Linear", "Inner",
                                            "Sequential"});
}

TEST_CASE("module: zero_grad drops or zeroes gradients") {
  auto m = make_outer();
  (*m)(ones({2, 3})).sum().backward();
  for (auto& np : m->named_parameters()) CHECK_MESSAGE(np.second.grad().defined(), np.first);
  m->zero_grad(/*set_to_none=*/false);
  for (auto& [n, p] : m->named_parameters()) {
    REQUIRE(p.grad().defined());
    for (float v : p.grad().to_vector<float>()) CHECK(v == 0.f);
  }
  m->zero_grad();
  for (auto& np : m->named_parameters()) CHECK_MESSAGE(!np.second.grad().defined(), np.first);
}

TEST_CASE("module: state_dict round trip and strict loading errors") {
  auto a = make_outer(1), b = make_outer(2);
  Tensor x = ones({2, 3});
  CHECK(testing::max_abs_diff((*a)(x), (*b)(x)) > 0.0);
  Tensor w_handle = b->get_submodule("embed")->named_parameters()[0].second;
  b->load_state_dict(a->state_dict());
  CHECK(testing::max_abs_diff((*a)(x), (*b)(x)) == 0.0);
  // Values are copied into the existing tensors: handles held elsewhere (optimizers) see them.
  CHECK(w_handle.is_same(b->get_submodule("embed")->named_parameters()[0].second));
  CHECK(testing::max_abs_diff(w_handle, a->get_submodule("embed")->named_parameters()[0].second) == 0.0);
  // The state dict shares storage but not history.
  StateDict sd = a->state_dict();
  CHECK_FALSE(sd.at("scale").requires_grad());

  // Missing, unexpected and wrong-shape keys are all reported in one error.
  StateDict bad;
  for (const auto& [k, v] : sd)
    if (k != "head.weight" && k != "blocks.1.running") bad.insert(k, v);
  bad.insert("blocks.0.fc1.weight", zeros({3, 3}));
  bad.insert("extra.thing", zeros({1}));
  try {
    b->load_state_dict(bad);
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("blocks.0.fc1.weight (checkpoint [3, 3], model [8, 4])") != std::string::npos);
    CHECK(msg.find("missing keys (2): blocks.1.running; head.weight;") != std::string::npos);
    CHECK(msg.find("unexpected keys (1): extra.thing;") != std::string::npos);
  }
  // A failed load changes nothing.
  CHECK(testing::max_abs_diff((*a)(x), (*b)(x)) == 0.0);
  // Non-strict: reports missing / unexpected, still refuses wrong shapes.
  StateDict partial;
  partial.insert("scale", full({4}, 2.0));
  partial.insert("nope", zeros({1}));
  LoadResult r = b->load_state_dict(partial, /*strict=*/false);
  CHECK(r.unexpected_keys == std::vector<std::string>{"nope"});
  CHECK(r.missing_keys.size() == sd.size() - 1);
  CHECK(b->state_dict().at("scale").to_vector<float>() == std::vector<float>(4, 2.f));
  partial.insert("scale", zeros({5}));
  CHECK_THROWS_WITH_AS(b->load_state_dict(partial, false), doctest::Contains("wrong shape"), Error);
  CHECK_THROWS_WITH_AS(sd.at("scal"), doctest::Contains("nearest: scale"), Error);
}

TEST_CASE("module: replace_module swaps what the parent's forward runs") {
  Generator gen(3);
  auto seq = std::make_shared<Sequential>(
      std::vector<ModulePtr>{std::make_shared<Linear>(2, 3, true, gen), std::make_shared<Linear>(3, 1, true, gen)});
  Tensor x = ones({1, 2});
  Tensor before = (*seq)(x);
  auto repl = std::make_shared<Linear>(2, 3, true, gen);
  seq->replace_module("0", repl);
  CHECK((*seq)[0] == repl);
  CHECK(testing::max_abs_diff((*seq)(x), (*(*seq)[1])((*repl)(x))) == 0.0);
  CHECK(testing::max_abs_diff((*seq)(x), before) > 0.0);
  CHECK_THROWS_WITH_AS(seq->replace_module("2", repl), doctest::Contains("children: 0, 1"), Error);
  CHECK(seq->str().find("(1): Linear(in_features=3, out_features=1, bias=True)") != std::string::npos);
}

TEST_CASE("module: set_submodule replaces a descendant by its dotted path") {
  Generator gen(4);
  auto inner = std::make_shared<Sequential>(
      std::vector<ModulePtr>{std::make_shared<Linear>(2, 3, true, gen), std::make_shared<Linear>(3, 1, true, gen)});
  auto outer = std::make_shared<Sequential>(std::vector<ModulePtr>{inner});
  auto repl = std::make_shared<Linear>(3, 1, false, gen);
  outer->set_submodule("0.1", repl);
  CHECK(outer->get_submodule("0.1") == repl);
  CHECK((*inner)[1] == repl);
  auto top = std::make_shared<Linear>(2, 1, true, gen);
  outer->set_submodule("0", top);  // a direct child: no dot
  CHECK((*outer)[0] == top);
  CHECK_THROWS_WITH_AS(outer->set_submodule("", top), doctest::Contains("root cannot replace itself"), Error);
  CHECK_THROWS_WITH_AS(outer->set_submodule("1", top), doctest::Contains("children: 0"), Error);
  CHECK_THROWS_WITH_AS(outer->set_submodule("0.bias.x", top), doctest::Contains("has no module"), Error);
}

TEST_CASE("Linear: layout, PyTorch init bounds, forward and gradients") {
  Generator gen(11);
  auto lin = std::make_shared<Linear>(50, 7, true, gen);
  CHECK(lin->weight.sizes() == Shape{7, 50});
  CHECK(lin->bias.sizes() == Shape{7});
  // kaiming_uniform(a = sqrt(5)) and the bias both give U(-1/sqrt(in), 1/sqrt(in)).
  const double bound = 1.0 / std::sqrt(50.0);
  auto w = lin->weight.to_vector<float>();
  double mx = 0, sum2 = 0;
  for (float v : w) {
    mx = std::max(mx, std::abs(static_cast<double>(v)));
    sum2 += v * v;
  }
  CHECK(mx <= bound);
  CHECK(mx > 0.9 * bound);
  // Variance of U(-b, b) is b^2 / 3.
  CHECK(sum2 / w.size() == doctest::Approx(bound * bound / 3).epsilon(0.15));
  for (float v : lin->bias.to_vector<float>()) CHECK(std::abs(v) <= bound);
  Tensor x = randn({4, 3, 50}, gen);
  CHECK(testing::max_abs_diff((*lin)(x), linear(x, lin->weight, lin->bias)) == 0.0);
  CHECK((*lin)(x).sizes() == Shape{4, 3, 7});
  auto nob = std::make_shared<Linear>(3, 2, false, gen);
  CHECK(names_of(nob->named_parameters()) == std::vector<std::string>{"weight"});
  // Input gradient through the module.
  CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return (*nob)(in[0]); }, {randn({2, 3}, gen)}));
  // Gradients reach the module's own parameters.
  // Gradients reach the module's own parameters: with L = sum(y), dW[o, i] = sum_rows x[:, i].
  (*lin)(x).sum().backward();
  REQUIRE(lin->weight.grad().defined());
  CHECK(lin->bias.grad().to_vector<float>() == std::vector<float>(7, 12.f));
  Tensor colsum = x.reshape({12, 50}).sum({0});
  for (int64_t o = 0; o < 7; ++o)
    CHECK(testing::max_abs_diff(lin->weight.grad().select(0, o), colsum) < 1e-5);
}

TEST_CASE("PatchEmbed: Conv2d layout and a patch unfold equal to a direct convolution") {
  Generator gen(4);
  const int64_t B = 2, C = 3, H = 9, W = 8, P = 4, D = 5;  // H not a multiple of P: last row dropped
  auto pe = std::make_shared<PatchEmbed>(P, C, D, gen);
  auto names = names_of(pe->named_parameters());
  CHECK(names == std::vector<std::string>{"proj.weight", "proj.bias"});
  CHECK(pe->get_submodule("proj")->type_name() == "Conv2d");
  auto conv = std::dynamic_pointer_cast<PatchConv2d>(pe->get_submodule("proj"));
  CHECK(conv->weight.sizes() == Shape{D, C, P, P});
  Tensor x = randn({B, C, H, W}, gen);
  Tensor y = (*pe)(x);
  const int64_t Ho = H / P, Wo = W / P;
  REQUIRE(y.sizes() == Shape{B, Ho * Wo, D});
  // Direct convolution with plain loops.
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j)
        for (int64_t d = 0; d < D; ++d) {
          double acc = conv->bias.at({d});
          for (int64_t c = 0; c < C; ++c)
            for (int64_t u = 0; u < P; ++u)
              for (int64_t v = 0; v < P; ++v)
                acc += conv->weight.at({d, c, u, v}) * x.at({b, c, i * P + u, j * P + v});
          worst = std::max(worst, std::abs(acc - y.at({b, i * Wo + j, d})));
        }
  CHECK(worst < 1e-5);
  // The PyTorch layout of the convolution itself: [B, D, Ho, Wo].
  CHECK((*conv)(x).sizes() == Shape{B, D, Ho, Wo});
  // Input gradient through the unfold, the GEMM and the views.
  CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return (*pe)(in[0]); },
                           {randn({1, C, P + 1, 2 * P}, gen)}));
  pe->zero_grad();
  Tensor xg = randn({1, C, P, 2 * P}, gen).requires_grad_();
  (*pe)(xg).sum().backward();
  // With L = sum(y): dW[d, c, u, v] = sum over patches of x[c, u, jP + v].
  REQUIRE(conv->weight.grad().sizes() == Shape{D, C, P, P});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t u = 0; u < P; ++u)
      for (int64_t v = 0; v < P; ++v)
        CHECK(conv->weight.grad().at({D - 1, c, u, v}) ==
              doctest::Approx(xg.at({0, c, u, v}) + xg.at({0, c, u, P + v})).epsilon(1e-5));
  CHECK(xg.grad().sizes() == xg.sizes());
  CHECK(conv->bias.grad().to_vector<float>() == std::vector<float>(D, 2.f));
  CHECK_THROWS_WITH_AS((*pe)(randn({1, C + 1, 8, 8}, gen)), doctest::Contains("expected input [B, 3, H, W]"), Error);
}

TEST_CASE("init: trunc_normal_ stays in bounds and has the requested spread") {
  Generator gen(9);
  Tensor t = empty({20000});
  init::trunc_normal_(t, 0.0, 1.0, -0.5, 0.5, gen);
  auto v = t.to_vector<float>();
  double s = 0;
  for (float x : v) {
    CHECK(std::abs(x) <= 0.5f);
    s += x;
  }
  CHECK(std::abs(s / v.size()) < 0.02);
  init::trunc_normal_(t, 0.0, 0.02, -2.0, 2.0, gen);
  double s2 = 0;
  for (float x : t.to_vector<float>()) s2 += x * x;
  CHECK(std::sqrt(s2 / t.numel()) == doctest::Approx(0.02).epsilon(0.05));
  CHECK(init::fan_in_and_fan_out(empty({8, 3, 4, 4})) == std::pair<int64_t, int64_t>{48, 128});
  CHECK_THROWS_WITH_AS(init::trunc_normal_(t, 0.0, 1.0, 50.0, 60.0, gen), doctest::Contains("too far"), Error);
}

TEST_CASE("init: ViT's timm init and vit_reference.py's PyTorch-default init have their spreads") {
  auto rms = [](const Tensor& t) {
    double s = 0;
    for (float x : t.to_vector<float>()) s += double(x) * x;
    return std::sqrt(s / double(t.numel()));
  };
  auto max_abs = [](const Tensor& t) {
    float m = 0;
    for (float x : t.to_vector<float>()) m = std::max(m, std::abs(x));
    return m;
  };
  Generator gen(4);
  nn::ViT vit(nn::ViTConfig{}, gen);  // timm: Linear weights trunc_normal(.02), zero biases
  auto param = [&](const std::string& name) {
    for (auto& [n, t] : vit.named_parameters())
      if (n == name) return t;
    FAIL("no parameter " << name);
    return Tensor();
  };
  CHECK(rms(param("blocks.0.mlp.fc2.weight")) == doctest::Approx(0.02).epsilon(0.05));
  CHECK(max_abs(param("blocks.0.attn.qkv.bias")) == 0.f);
  vit.init_weights_torch(gen);  // Linear: kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(fan_in)), bias likewise
  for (const char* name : {"blocks.0.attn.qkv", "blocks.5.mlp.fc2", "head"}) {
    CAPTURE(name);
    const Tensor w = param(std::string(name) + ".weight"), b = param(std::string(name) + ".bias");
    const double bound = 1.0 / std::sqrt(double(w.size(1)));
    CHECK(max_abs(w) <= bound);
    CHECK(rms(w) == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.1));
    CHECK(max_abs(b) <= bound);
    CHECK(max_abs(b) > 0.5 * bound);
  }
  CHECK(rms(param("pos_embed")) == doctest::Approx(0.02).epsilon(0.1));
  CHECK(max_abs(param("cls_token")) == 0.f);
}
