// distill/taps: features captured by dotted module name, compared with the modules' direct outputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "distill/taps.hpp"
#include "engine/ops.hpp"
#include "tests/golden.hpp"
#include "tests/tiny_vit.hpp"
#include "nn/layers/linear.hpp"
#include "nn/layers/vit.hpp"

using namespace quench;
using namespace quench::distill;

namespace {

using testing::tiny_vit;

void check_close(const Tensor& a, const Tensor& b, double tol = 1e-6) {
  REQUIRE(a.sizes() == b.sizes());
  CHECK(testing::scaled_err(a, b) < tol);
}

}  // namespace

TEST_CASE("distill taps: parse and print tap names") {
  TapSpec a = TapSpec::parse("blocks.3.attn:probs");
  CHECK(a.path == "blocks.3.attn");
  CHECK(a.selector == "probs");
  CHECK(a.str() == "blocks.3.attn:probs");
  TapSpec b = TapSpec::parse("head");
  CHECK(b.path == "head");
  CHECK(b.selector == "output");
  CHECK(b.str() == "head");
  CHECK_THROWS_AS(TapSpec::parse("head:"), Error);
  CHECK_THROWS_AS(TapSpec::parse("a:b:c"), Error);
}

TEST_CASE("distill taps: captured features equal the modules' direct outputs") {
  auto vit = tiny_vit(1);
  vit->eval();
  Generator g(7);
  Tensor x = randn({3, 1, 8, 8}, g);
  std::vector<std::string> names = {"patch_embed",    "blocks.0:input", "blocks.0",
                                    "blocks.1",       "norm",           "head",
                                    "blocks.0.norm1", "blocks.0.attn",  "blocks.0.attn:probs"};
  std::vector<Tap> taps;
  taps.reserve(names.size());
  for (const auto& n : names) taps.emplace_back(*vit, n, /*record_only_in_training=*/false);
  Tensor out = (*vit)(x);
  for (auto& t : taps) {
    CAPTURE(t.name());
    CHECK(t.has_feature());
    CHECK(t.calls() == 1);
  }
  auto f = [&](size_t i) { return taps[i].feature(); };
  auto sub = [&](const std::string& p) { return vit->get_submodule(p); };

  check_close(f(0), (*sub("patch_embed"))(x));
  Tensor x0 = cat({vit->cls_token.expand({3, 1, 16}), f(0)}, 1) + vit->pos_embed;
  check_close(f(1), x0);
  check_close(f(2), (*sub("blocks.0"))(x0));
  check_close(f(3), (*sub("blocks.1"))(f(2)));
  check_close(f(4), (*sub("norm"))(f(3)));
  check_close(f(5), out);
  CHECK(f(5).sizes() == Shape{3, 5});

  // Attention probabilities: rows sum to 1, and probs @ v through proj reproduces the attention output.
  Tensor probs = f(8);
  REQUIRE(probs.sizes() == Shape{3, 2, 5, 5});
  check_close(sum(probs, {-1}), ones({3, 2, 5}), 1e-6);
  Tensor qkv = (*sub("blocks.0.attn.qkv"))(f(6)).reshape({3, 5, 3, 2, 8}).permute({2, 0, 3, 1, 4});
  Tensor v = qkv.select(0, 2);
  Tensor attn = (*sub("blocks.0.attn.proj"))(matmul(probs, v).transpose(1, 2).reshape({3, 5, 16}));
  check_close(f(7), attn, 1e-5);
}

TEST_CASE("distill taps: student taps record only in training mode; clear() forgets") {
  auto vit = tiny_vit(2);
  Tap student(*vit, "blocks.1", /*record_only_in_training=*/true);
  Tap always(*vit, "blocks.1", false);
  Tensor x = randn({2, 1, 8, 8});
  vit->eval();
  (*vit)(x);
  CHECK_FALSE(student.has_feature());
  CHECK(always.has_feature());
  CHECK_THROWS_WITH_AS(student.feature(), doctest::Contains("training mode"), Error);
  vit->train();
  (*vit)(x);
  (*vit)(x);
  CHECK(student.has_feature());
  CHECK(student.calls() == 2);
  student.clear();
  CHECK_FALSE(student.has_feature());
  CHECK(student.calls() == 0);
}

TEST_CASE("distill taps: unknown names and selectors list the nearest valid taps") {
  auto vit = tiny_vit(3);
  CHECK_THROWS_WITH_AS(Tap(*vit, "blocks.3", false), doctest::Contains("blocks.1"), Error);
  CHECK_THROWS_WITH_AS(Tap(*vit, "blocks.0.atn:probs", false), doctest::Contains("blocks.0.attn:probs"),
                       Error);
  CHECK_THROWS_WITH_AS(Tap(*vit, "blocks.0.attn:prob", false), doctest::Contains("blocks.0.attn:probs"),
                       Error);
  CHECK_THROWS_WITH_AS(Tap(*vit, "head:probs", false), doctest::Contains("no output 'probs'"), Error);
  CHECK_THROWS_WITH_AS(Tap(*vit, "nrom", false), doctest::Contains("norm"), Error);
}

TEST_CASE("distill taps: list_taps names every module and the attention probabilities") {
  auto vit = tiny_vit(4);
  auto taps = list_taps(*vit);
  auto has = [&](const std::string& n) { return std::find(taps.begin(), taps.end(), n) != taps.end(); };
  for (const char* n : {"patch_embed", "patch_embed.proj", "blocks", "blocks.0", "blocks.1.attn",
                        "blocks.1.attn:probs", "blocks.0.mlp.fc2", "norm", "head"})
    CHECK_MESSAGE(has(n), n);
  CHECK_FALSE(has(""));
  CHECK_FALSE(has("head:probs"));
  // Every listed name resolves.
  for (const auto& n : taps) CHECK_NOTHROW(resolve_tap(*vit, TapSpec::parse(n)));
}

TEST_CASE("distill taps: a tap follows its module through replace_module after refresh") {
  auto vit = tiny_vit(5);
  Tap t(*vit, "head", false);
  auto fresh = std::make_shared<nn::Linear>(16, 5);
  vit->replace_module("head", fresh);
  Tensor x = randn({2, 1, 8, 8});
  (*vit)(x);
  CHECK_FALSE(t.has_feature());  // hooked on the old head
  CHECK(t.refresh(*vit));
  CHECK_FALSE(t.refresh(*vit));
  Tensor out = (*vit)(x);
  REQUIRE(t.has_feature());
  CHECK(t.feature().is_same(out));
  t.detach();
  CHECK(fresh->num_forward_hooks() == 0);
}
