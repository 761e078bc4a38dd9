// PatchDropout: the kept tokens are a uniform subset of each image's patches, in order, behind the
// CLS token; gradients reach the kept tokens only; the ViT drops tokens in training only.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <memory>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "nn/layers/patch_dropout.hpp"
#include "nn/nn.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;

TEST_CASE("patch dropout: kept count as timm, CLS first, a sorted subset of the image's own patches") {
  CHECK(nn::patches_kept(49, 0.0) == 49);
  CHECK(nn::patches_kept(49, 0.5) == 24);
  CHECK(nn::patches_kept(49, 0.25) == 36);
  CHECK(nn::patches_kept(49, 0.99) == 1);
  CHECK_THROWS_WITH_AS(nn::patches_kept(49, 1.0), doctest::Contains("must be in [0, 1), got 1"), Error);

  // Token t of image b holds the value 1000 b + t in each of its D = 3 features.
  const int64_t B = 3, L = 10, keep = 4, D = 3;
  std::vector<float> v;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t <= L; ++t)
      for (int64_t d = 0; d < D; ++d) v.push_back(static_cast<float>(1000 * b + t));
  Tensor x = tensor(v, {B, L + 1, D});
  std::map<int64_t, int64_t> times_kept;
  Generator gen(7);
  for (int draw = 0; draw < 400; ++draw) {
    Generator replay = gen;
    Tensor y = nn::drop_patches(x, 1, keep, gen);
    REQUIRE(y.sizes() == Shape({B, keep + 1, D}));
    CHECK(nn::drop_patches(x, 1, keep, replay).to_vector<float>() == y.to_vector<float>());
    std::vector<float> out = y.to_vector<float>();
    for (int64_t b = 0; b < B; ++b) {
      std::vector<int64_t> tokens;
      for (int64_t t = 0; t <= keep; ++t) {
        const float* row = &out[static_cast<size_t>((b * (keep + 1) + t) * D)];
        CHECK(row[0] == row[D - 1]);
        tokens.push_back(static_cast<int64_t>(row[0]) - 1000 * b);
      }
      CHECK(tokens[0] == 0);  // the CLS token
      for (int64_t t = 1; t <= keep; ++t) {
        CHECK(tokens[t] >= 1);
        CHECK(tokens[t] <= L);
        ++times_kept[tokens[t]];
      }
      CHECK(std::is_sorted(tokens.begin(), tokens.end()));
      CHECK(std::adjacent_find(tokens.begin(), tokens.end()) == tokens.end());
    }
  }
  // Uniform: each patch kept in keep / L = 40% of 1200 image draws (binomial sd ~17).
  REQUIRE(times_kept.size() == static_cast<size_t>(L));
  for (const auto& tn : times_kept) {
    const int64_t t = tn.first, n = tn.second;
    CHECK_MESSAGE(std::abs(n - 480) < 90, "patch ", t, " kept ", n, " times");
  }

  CHECK_THROWS_WITH_AS(nn::drop_patches(x, 1, 11, gen), doctest::Contains("can keep 1 to 10"), Error);
  CHECK_THROWS_WITH_AS(nn::drop_patches(x.select(0, 0), 1, 2, gen), doctest::Contains("expected tokens [B, prefix + L, D]"),
                       Error);
}

TEST_CASE("patch dropout: gradients reach the kept tokens only (gradcheck)") {
  Generator data(3);
  Tensor x = randn({2, 7, 5}, data);
  Generator a(11), b(11);
  CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) {
    Generator g = a;  // the same draw on every evaluation
    return nn::drop_patches(in[0], 1, 3, g);
  }, {x}));
  // Dropped tokens: exactly zero gradient; kept ones: the output gradient.
  Tensor xg = x.detach().clone();
  xg.requires_grad_(true);
  Tensor y = nn::drop_patches(xg, 1, 3, b);
  y.sum().backward();
  std::vector<float> g = xg.grad().to_vector<float>();
  int64_t ones = 0;
  for (float v : g) {
    CHECK((v == 0.f || v == 1.f));
    ones += v == 1.f;
  }
  CHECK(ones == 2 * 4 * 5);
}

TEST_CASE("patch dropout: the ViT drops patch tokens in training only") {
  nn::ViTConfig cfg;
  cfg.img = 12, cfg.patch = 3, cfg.dim = 16, cfg.depth = 2, cfg.heads = 2, cfg.hidden = 32, cfg.classes = 5;
  Generator gen(5);
  auto owner = std::make_shared<nn::ViT>(cfg, gen);
  nn::ViT& vit = *owner;
  Tensor images = randn({3, 1, 12, 12}, gen);
  vit.eval();
  const std::vector<float> all_tokens = vit(images).to_vector<float>();
  vit.patch_dropout = 0.5;
  CHECK(vit(images).to_vector<float>() == all_tokens);  // eval: every token

  // Training: the blocks see CLS + 8 of the 16 patches; same seed, same logits; another seed differs.
  vit.train();
  vit.patch_generator.manual_seed(42);
  Tensor y = vit(images);
  vit.patch_generator.manual_seed(42);
  CHECK(vit(images).to_vector<float>() == y.to_vector<float>());
  vit.patch_generator.manual_seed(43);
  CHECK(vit(images).to_vector<float>() != y.to_vector<float>());

  // The same function written out: the ViT's own layers on the kept tokens.
  vit.patch_generator.manual_seed(42);
  Generator replay(42);
  Tensor x = (*vit.child("patch_embed"))(images);
  x = cat({vit.cls_token.expand({3, 1, cfg.dim}), x}, 1) + vit.pos_embed;
  x = nn::drop_patches(x, 1, 8, replay);
  x = (*vit.child("norm"))((*vit.child("blocks"))(x));
  const std::vector<float> expect = (*vit.child("head"))(x.select(1, 0)).to_vector<float>();
  const std::vector<float> got = y.to_vector<float>();
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-5));

  // One image: pos_embed rows of the 8 dropped patches get no gradient.
  vit.zero_grad();
  vit.patch_generator.manual_seed(9);
  vit(images.narrow(0, 0, 1)).sum().backward();
  std::vector<float> pg = vit.pos_embed.grad().to_vector<float>();
  int64_t zero_rows = 0;
  for (int64_t t = 0; t <= 16; ++t) {
    bool zero = true;
    for (int64_t d = 0; d < cfg.dim; ++d) zero = zero && pg[static_cast<size_t>(t * cfg.dim + d)] == 0.f;
    zero_rows += zero;
    if (t == 0) CHECK_FALSE(zero);  // CLS always kept
  }
  CHECK(zero_rows == 8);
}
