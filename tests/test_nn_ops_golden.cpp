// The nn ops against PyTorch 1.13: tests/golden/nn_ops.safetensors holds inputs, outputs and input
// gradients written by tests/golden/make_nn_ops_golden.py. Tolerance: |ours - torch| <= 1e-5 * |torch| +
// 1e-5 * max|torch over that tensor| (relative 1e-5, with an absolute floor at 1e-5 of the tensor's
// scale for elements near zero).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "engine/ops.hpp"
#include "tests/golden.hpp"

using namespace quench;
using TL = std::vector<Tensor>;

namespace {

const nn::SafeTensorsFile& golden() {
  static const nn::SafeTensorsFile g = testing::load_golden("nn_ops.safetensors");
  return g;
}

Tensor G(const std::string& name) {
  REQUIRE_MESSAGE(golden().contains(name), "golden tensor " << name << " missing");
  return golden().at(name);
}

void check_close(const std::string& what, const Tensor& ours, const Tensor& ref) {
  CAPTURE(what);
  REQUIRE(ours.defined());
  REQUIRE(ours.sizes() == ref.sizes());
  std::vector<double> a = ours.to_vector<double>(), b = ref.to_vector<double>();
  double scale = 0;
  for (double v : b) scale = std::max(scale, std::abs(v));
  int bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(a[i] - b[i]) > 1e-5 * std::abs(b[i]) + 1e-5 * scale) {
      if (bad++ < 3) FAIL_CHECK(what << "[" << i << "]: ours " << a[i] << " vs torch " << b[i]);
    }
  }
  CHECK(bad == 0);
}

Tensor leaf(const std::string& name) { return G(name).clone().requires_grad_(); }

}  // namespace

TEST_CASE("golden: softmax and log_softmax match PyTorch") {
  for (std::string c : {"softmax", "softmax_mid", "log_softmax", "log_softmax_first"}) {
    Tensor x = leaf(c + ".x");
    const int64_t dim = G(c + ".dim").item<int64_t>();
    Tensor y = c.rfind("log", 0) == 0 ? log_softmax(x, dim) : softmax(x, dim);
    y.backward(G(c + ".g"));
    check_close(c + ".y", y, G(c + ".y"));
    check_close(c + ".dx", x.grad(), G(c + ".dx"));
  }
}

TEST_CASE("golden: layer_norm matches PyTorch") {
  Tensor x = leaf("layer_norm.x"), w = leaf("layer_norm.w"), b = leaf("layer_norm.b");
  Tensor y = layer_norm(x, {16}, w, b, 1e-5);
  y.backward(G("layer_norm.g"));
  check_close("layer_norm.y", y, G("layer_norm.y"));
  check_close("layer_norm.dx", x.grad(), G("layer_norm.dx"));
  check_close("layer_norm.dw", w.grad(), G("layer_norm.dw"));
  check_close("layer_norm.db", b.grad(), G("layer_norm.db"));
  Tensor x2 = leaf("layer_norm_noaffine.x");
  Tensor y2 = layer_norm(x2, {4, 5}, Tensor(), Tensor(), 1e-3);
  y2.backward(G("layer_norm_noaffine.g"));
  check_close("layer_norm_noaffine.y", y2, G("layer_norm_noaffine.y"));
  check_close("layer_norm_noaffine.dx", x2.grad(), G("layer_norm_noaffine.dx"));
}

TEST_CASE("golden: cross_entropy with ignore_index and label smoothing matches PyTorch") {
  const std::map<std::string, Reduction> cases = {
      {"ce_mean", Reduction::mean}, {"ce_none", Reduction::none}, {"ce_sum", Reduction::sum}};
  for (const auto& [c, red] : cases) {
    Tensor x = leaf(c + ".x");
    Tensor params = G(c + ".params");
    const int64_t ignore = static_cast<int64_t>(params.at({0}));
    const double ls = params.at({1}) / 100.0;
    Tensor loss = cross_entropy(x, G(c + ".target"), ignore, ls, red);
    loss.backward(G(c + ".g"));
    check_close(c + ".loss", loss, G(c + ".loss"));
    check_close(c + ".dx", x.grad(), G(c + ".dx"));
  }
}

TEST_CASE("golden: kl_div, mse_loss, l1_loss match PyTorch") {
  struct Case {
    std::string name;
    std::function<Tensor(const Tensor&, const Tensor&)> f;
  };
  const std::vector<Case> cases = {
      {"kl_batchmean", [](const Tensor& a, const Tensor& b) { return kl_div(a, b, Reduction::batchmean); }},
      {"kl_log_sum", [](const Tensor& a, const Tensor& b) { return kl_div(a, b, Reduction::sum, true); }},
      {"kl_mean", [](const Tensor& a, const Tensor& b) { return kl_div(a, b, Reduction::mean); }},
      {"mse", [](const Tensor& a, const Tensor& b) { return mse_loss(a, b, Reduction::mean); }},
      {"l1", [](const Tensor& a, const Tensor& b) { return l1_loss(a, b, Reduction::sum); }},
  };
  for (const Case& c : cases) {
    Tensor a = leaf(c.name + ".input"), b = leaf(c.name + ".target");
    Tensor loss = c.f(a, b);
    loss.backward(G(c.name + ".g"));
    check_close(c.name + ".loss", loss, G(c.name + ".loss"));
    check_close(c.name + ".dinput", a.grad(), G(c.name + ".dinput"));
    // PyTorch's target gradient is NaN where the target probability is 0 (xlogy's 0 * log 0
    // differentiated); quench gives 0 there. Elsewhere they must agree.
    Tensor ref = G(c.name + ".dtarget");
    std::vector<float> r = ref.to_vector<float>(), ours = b.grad().to_vector<float>();
    int nans = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      if (std::isnan(r[i])) {
        ++nans;
        CHECK(ours[i] == 0.f);
        r[i] = 0.f;
      }
    }
    if (c.name == "kl_batchmean" || c.name == "kl_mean") CHECK(nans == 2);
    check_close(c.name + ".dtarget", b.grad(), tensor(r, ref.sizes()));
  }
}

TEST_CASE("golden: embedding matches PyTorch") {
  Tensor w = leaf("embedding.weight");
  Tensor y = embedding(w, G("embedding.indices"));
  y.backward(G("embedding.g"));
  check_close("embedding.y", y, G("embedding.y"));
  check_close("embedding.dweight", w.grad(), G("embedding.dweight"));
}
