// distill/losses against PyTorch (tests/golden/make_distill_golden.py): values and student gradients
// for every loss type, temperature, KL reduction and mask; the teacher side never gets a gradient.
#include <doctest/doctest.h>

#include <string>

#include "distill/losses.hpp"
#include "engine/ops.hpp"
#include "tests/golden.hpp"
#include "gradcheck.hpp"
#include "nn/io/safetensors.hpp"

using namespace quench;
using namespace quench::distill;

namespace {

const nn::SafeTensorsFile& golden() {
  static nn::SafeTensorsFile g = nn::load_safetensors(testing::golden_path("distill_golden.safetensors"));
  return g;
}

// Runs `fn` on the golden case and compares loss and d loss / d student; the teacher stays gradless.
template <class F>
void check_case(const std::string& name, F fn, double tol = 2e-5) {
  CAPTURE(name);
  const auto& g = golden();
  Tensor s = g.at(name + ".s").clone();
  s.requires_grad_(true);
  Tensor t = g.at(name + ".t").clone();
  t.requires_grad_(true);  // must be detached inside the loss
  Tensor mask = g.contains(name + ".mask") ? g.at(name + ".mask") : Tensor();
  Tensor loss = fn(s, t, mask);
  REQUIRE(loss.numel() == 1);
  const double want = g.at(name + ".loss").item<float>();
  CHECK(loss.item<float>() == doctest::Approx(want).epsilon(tol));
  loss.backward();
  REQUIRE(s.grad().defined());
  CHECK(testing::scaled_err(s.grad(), g.at(name + ".ds")) < 1e-5);
  CHECK_FALSE(t.grad().defined());
}

}  // namespace

TEST_CASE("distill losses: logit KD matches PyTorch for CE, KL (batchmean and mean), MSE and T") {
  for (const char* T : {"1", "2", "4"}) {
    const double temp = std::stod(T);
    auto kd = [&](LossType type, Reduction red) {
      return [=](const Tensor& s, const Tensor& t, const Tensor&) {
        KDLossOptions o;
        o.temperature = temp;
        o.type = type;
        o.kl_reduction = red;
        return kd_loss(s, t, o);
      };
    };
    check_case(std::string("kd_ce_T") + T, kd(LossType::CE, Reduction::batchmean));
    check_case(std::string("kd_kl_batchmean_T") + T, kd(LossType::KL, Reduction::batchmean));
    check_case(std::string("kd_kl_mean_T") + T, kd(LossType::KL, Reduction::mean));
    check_case(std::string("kd_mse_T") + T, kd(LossType::MSE, Reduction::batchmean));
  }
}

TEST_CASE("distill losses: INC's element-mean KL is batchmean divided by the class count") {
  const auto& g = golden();
  Tensor s = g.at("kd_kl_mean_T2.s"), t = g.at("kd_kl_mean_T2.t");
  KDLossOptions bm{2.0, LossType::KL, Reduction::batchmean}, em{2.0, LossType::KL, Reduction::mean};
  CHECK(kd_loss(s, t, em).item<float>() ==
        doctest::Approx(kd_loss(s, t, bm).item<float>() / s.size(1)).epsilon(1e-6));
}

TEST_CASE("distill losses: feature losses match PyTorch (MSE, L1, KL of logits / probabilities, cosine)") {
  auto feat = [](LossType type, FeatureKind kind) {
    return [=](const Tensor& s, const Tensor& t, const Tensor& mask) {
      FeatureLossOptions o;
      o.type = type;
      o.kind = kind;
      o.mask = mask;
      return feature_loss(s, t, o);
    };
  };
  check_case("feat_mse", feat(LossType::MSE, FeatureKind::values));
  check_case("feat_l1", feat(LossType::L1, FeatureKind::values));
  check_case("feat_kl_logits", feat(LossType::KL, FeatureKind::logits));
  check_case("feat_cosine", feat(LossType::Cosine, FeatureKind::values));
  check_case("feat_kl_probs", feat(LossType::KL, FeatureKind::probabilities));
  check_case("feat_mse_probs", feat(LossType::MSE, FeatureKind::values));
  check_case("mask_mse", feat(LossType::MSE, FeatureKind::values));
  check_case("mask_l1", feat(LossType::L1, FeatureKind::values));
  check_case("mask_kl_logits", feat(LossType::KL, FeatureKind::logits));
  check_case("mask_cosine", feat(LossType::Cosine, FeatureKind::values));
}

TEST_CASE("distill losses: student gradients pass a finite-difference check") {
  // Fixed inputs; h = 1e-2 because the float32 loss (a T^2-scaled mean) rounds at ~1e-6 relative.
  Generator g(21);
  testing::GradcheckOptions opt;
  opt.h = 1e-2;
  Tensor t = randn({3, 4, 6}, g);
  for (LossType type : {LossType::MSE, LossType::Cosine, LossType::KL}) {
    CAPTURE(loss_type_name(type));
    FeatureLossOptions o;
    o.type = type;
    o.kind = FeatureKind::logits;
    CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return feature_loss(in[0], t, o); },
                             {randn({3, 4, 6}, g)}, opt));
  }
  Tensor zt = randn({4, 7}, g);
  for (LossType type : {LossType::CE, LossType::KL, LossType::MSE}) {
    CAPTURE(loss_type_name(type));
    KDLossOptions k{3.0, type, Reduction::batchmean};
    CHECK(testing::gradcheck([&](const std::vector<Tensor>& in) { return kd_loss(in[0], zt, k); },
                             {randn({4, 7}, g)}, opt));
  }
}

TEST_CASE("distill losses: bad inputs are errors that name the problem") {
  CHECK_THROWS_WITH_AS(kd_loss(randn({2, 3}), randn({2, 4})), doctest::Contains("kd_loss"), Error);
  CHECK_THROWS_WITH_AS(kd_loss(randn({2, 3}), randn({2, 3}), {0.0}), doctest::Contains("temperature"), Error);
  KDLossOptions l1;
  l1.type = LossType::L1;
  CHECK_THROWS_AS(kd_loss(randn({2, 3}), randn({2, 3}), l1), Error);
  CHECK_THROWS_WITH_AS(feature_loss(randn({2, 3}), randn({2, 4})), doctest::Contains("projection"), Error);
  FeatureLossOptions kl;
  kl.type = LossType::KL;
  CHECK_THROWS_WITH_AS(feature_loss(randn({2, 3}), randn({2, 3}), kl), doctest::Contains("logits"), Error);
  FeatureLossOptions m;
  m.mask = ones({3});
  CHECK_THROWS_WITH_AS(feature_loss(randn({2, 3}), randn({2, 3}), m), doctest::Contains("mask"), Error);
  CHECK(parse_loss_type("mse") == LossType::MSE);
  CHECK(parse_loss_type("cosine") == LossType::Cosine);
  CHECK_THROWS_WITH_AS(parse_loss_type("huber"), doctest::Contains("CE, KL, MSE, L1, Cosine"), Error);
}
