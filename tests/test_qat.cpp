// QAT preparation: configs, the FakeQuantize module, prepare_qat swaps, the fused QAT Linear op
// (forward and STE backward against the composed fake_quantize + linear), training, observer schedule.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.hpp"
#include "nn/nn.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/observer.hpp"
#include "quant/prepare.hpp"
#include "quant/qparams.hpp"
#include "quant/qat_attention.hpp"
#include "quant/qat_linear.hpp"
#include "quant/qat_linear_op.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using namespace quench::quant;

namespace {

nn::ViTConfig tiny_vit() {
  nn::ViTConfig c;
  c.img = 8;
  c.patch = 4;
  c.dim = 16;
  c.depth = 2;
  c.heads = 2;
  c.hidden = 32;
  c.classes = 5;
  return c;
}


std::string type_at(nn::Module& m, const std::string& path) { return m.get_submodule(path)->type_name(); }

}  // namespace

TEST_CASE("qat: glob patterns match whole dotted names") {
  CHECK(glob_match("blocks.*.mlp.fc2", "blocks.3.mlp.fc2"));
  CHECK(glob_match("*.qkv", "blocks.0.attn.qkv"));
  CHECK(glob_match("head", "head"));
  CHECK_FALSE(glob_match("head", "heads"));
  CHECK_FALSE(glob_match("blocks.*.mlp.fc2", "blocks.3.mlp.fc1"));
  CHECK(glob_match("blocks.?.attn.*", "blocks.1.attn.proj"));
  CHECK_FALSE(glob_match("blocks.?.attn.*", "blocks.12.attn.proj"));
  CHECK(glob_match("*", ""));
}

TEST_CASE("qat: qconfig_for applies fallback, name patterns, type overrides, default in that order") {
  QuantizationAwareTrainingConfig cfg;
  QConfig per_tensor;
  per_tensor.weight = QuantSpec::int8_symmetric_per_tensor();
  cfg.fp32_fallback = {"head"};
  cfg.name_overrides = {{"blocks.1.*", std::nullopt}, {"head", per_tensor}, {"*.fc2", per_tensor}};
  cfg.type_overrides["Linear"] = QConfig::default_ptq();
  CHECK_FALSE(qconfig_for(cfg, "head", "Linear").has_value());          // fallback beats the pattern
  CHECK_FALSE(qconfig_for(cfg, "blocks.1.mlp.fc2", "Linear").has_value());  // first pattern wins
  CHECK_FALSE(qconfig_for(cfg, "blocks.0.mlp.fc2", "Linear")->weight.per_channel);
  CHECK(qconfig_for(cfg, "blocks.0.mlp.fc1", "Linear")->activation_observer == ObserverKind::histogram);
  CHECK(qconfig_for(cfg, "blocks.0.attn", "Attention")->activation_observer ==
        ObserverKind::moving_average_min_max);
  cfg.default_qconfig.reset();
  CHECK_FALSE(qconfig_for(cfg, "blocks.0.attn", "Attention").has_value());
}

TEST_CASE("qat: FakeQuantize observes only when enabled and training, and its switches work") {
  FakeQuantize fq(QuantSpec::uint8_affine_per_tensor(), ObserverKind::min_max);
  auto keys = fq.state_dict().keys();
  CHECK(keys == std::vector<std::string>{"fake_quant_enabled", "observer_enabled", "scale", "zero_point",
                                         "activation_post_process.min_val", "activation_post_process.max_val"});
  CHECK_FALSE(fq.calibrated());
  Tensor x = tensor({-1.f, 0.3f, 2.f, 0.77f});
  fq.eval();
  fq(x);
  CHECK_FALSE(fq.calibrated());  // eval never observes
  fq.train();
  Tensor y = fq(x);
  REQUIRE(fq.calibrated());
  const float s = 3.f / 255.f;
  CHECK(fq.scale.item<float>() == doctest::Approx(s).epsilon(1e-6));
  CHECK(fq.zero_point.item<int32_t>() == 85);  // 0 - round(-1 / s)
  CHECK(y.to_vector<float>() == fake_quantize(x, fq.scale, fq.zero_point, fq.spec()).to_vector<float>());
  CHECK(y.to_vector<float>() != x.to_vector<float>());

  fq.disable_fake_quant();
  CHECK(fq(x).to_vector<float>() == x.to_vector<float>());
  fq.enable_fake_quant();
  fq.freeze();
  CHECK_FALSE(fq.observer_enabled());
  fq(tensor({-10.f, 10.f}));  // frozen: the range stays
  CHECK(fq.scale.item<float>() == doctest::Approx(s).epsilon(1e-6));
  fq.enable_observer();
  fq(tensor({-10.f, 10.f}));
  CHECK(fq.scale.item<float>() == doctest::Approx(20.f / 255.f).epsilon(1e-6));

  // The switches are state: they travel with the state dict.
  FakeQuantize other(QuantSpec::uint8_affine_per_tensor(), ObserverKind::min_max);
  fq.disable_observer();
  other.load_state_dict(fq.state_dict());
  CHECK_FALSE(other.observer_enabled());
  CHECK(other.calibrated());
  CHECK(other.scale.item<float>() == fq.scale.item<float>());
}

TEST_CASE("qat: a per-channel FakeQuantize needs its channel count and keeps one scale per channel") {
  CHECK_THROWS_WITH_AS(FakeQuantize(QuantSpec::int8_symmetric_per_channel(), ObserverKind::min_max),
                       doctest::Contains("needs the channel count"), Error);
  FakeQuantize fq(QuantSpec::int8_symmetric_per_channel(), ObserverKind::min_max, 2);
  fq(tensor({1.f, -2.f, 0.5f, 0.25f}, {2, 2}));
  CHECK(fq.scale.to_vector<float>()[0] == doctest::Approx(2.f / 127.f));
  CHECK(fq.scale.to_vector<float>()[1] == doctest::Approx(0.5f / 127.f));
}

TEST_CASE("qat: prepare_qat swaps exactly the selected modules of a ViT") {
  auto vit = std::make_shared<nn::ViT>(tiny_vit());
  QuantizationAwareTrainingConfig cfg;
  cfg.fp32_fallback = {"head"};
  cfg.name_overrides = {{"blocks.1.mlp.*", std::nullopt}};
  PrepareSummary s = prepare_qat(*vit, cfg);
  CHECK(s.swapped.size() == 6);  // blocks.0: qkv, proj, fc1, fc2; blocks.1: qkv, proj
  CHECK(s.kept_fp32 == std::vector<std::string>{"blocks.1.mlp.fc1", "blocks.1.mlp.fc2", "head"});
  for (const char* n : {"blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2",
                        "blocks.1.attn.qkv", "blocks.1.attn.proj"})
    CHECK(type_at(*vit, n) == "QATLinear");
  CHECK(type_at(*vit, "head") == "Linear");
  CHECK(type_at(*vit, "blocks.1.mlp.fc1") == "Linear");
  CHECK(type_at(*vit, "blocks.0.attn") == "Attention");
  CHECK(type_at(*vit, "blocks.0.norm1") == "LayerNorm");
  CHECK(s.str().find("blocks.0.attn.qkv: Linear -> QATLinear") != std::string::npos);
  // Idempotent: nothing left to swap but the kept ones.
  CHECK(prepare_qat(*vit, cfg).swapped.empty());

  auto vit2 = std::make_shared<nn::ViT>(tiny_vit());
  QuantizationAwareTrainingConfig all;
  all.quantize_attention_matmuls = true;
  all.type_overrides["Linear"] = std::nullopt;  // attention matmuls only
  PrepareSummary s2 = prepare_qat(*vit2, all);
  CHECK(s2.swapped.size() == 2);
  CHECK(type_at(*vit2, "blocks.1.attn") == "QATAttention");
  CHECK(type_at(*vit2, "blocks.1.attn.qkv") == "Linear");
  CHECK(type_at(*vit2, "blocks.1.attn.probs_fake_quant") == "FakeQuantize");

  auto vit3 = std::make_shared<nn::ViT>(tiny_vit());
  all.type_overrides.clear();
  CHECK(prepare_qat(*vit3, all).swapped.size() == 2 + 9);
  CHECK(type_at(*vit3, "blocks.1.attn.qkv") == "QATLinear");
}

TEST_CASE("qat: QATLinear shares Linear's parameters, and an FP32 state dict loads into it") {
  auto fp = std::make_shared<nn::ViT>(tiny_vit());
  auto vit = std::make_shared<nn::ViT>(tiny_vit());
  Tensor w = vit->get_submodule("blocks.0.mlp.fc1")->named_parameters()[0].second;
  prepare_qat(*vit);
  auto q = std::dynamic_pointer_cast<QATLinear>(vit->get_submodule("blocks.0.mlp.fc1"));
  REQUIRE(q);
  CHECK(q->weight.impl_ptr() == w.impl_ptr());
  auto res = vit->load_state_dict(fp->state_dict(), false);
  CHECK(res.unexpected_keys.empty());
  CHECK(res.missing_keys.size() == 9 * 2 * 6);  // 9 QATLinear x 2 quantizers x 6 entries
  for (const auto& k : res.missing_keys) CHECK(k.find("fake_quant") != std::string::npos);
  CHECK(vit->state_dict().at("blocks.0.mlp.fc1.weight").to_vector<float>() ==
        fp->state_dict().at("blocks.0.mlp.fc1.weight").to_vector<float>());
  CHECK(vit->state_dict().contains("blocks.0.attn.qkv.weight_fake_quant.activation_post_process.min_val"));
  CHECK(vit->state_dict().at("blocks.0.attn.qkv.weight_fake_quant.scale").sizes() == Shape{48});
}

TEST_CASE("qat: the fused QAT Linear equals fake_quantize + linear, forward and STE backward") {
  Generator gen(7);
  const int64_t M = 9, K = 37, N = 11;
  Tensor x = randn({3, 3, K}, gen) * 2.0, w = randn({N, K}, gen) * 0.2, b = randn({N}, gen);
  QuantSpec as = QuantSpec::uint8_affine_per_tensor(), ws = QuantSpec::int8_symmetric_per_channel();
  // Narrow ranges so some values clamp and the masks matter.
  QParams aq = qparams_from_range({-2.5f}, {3.f}, as);
  std::vector<float> lo(N, -0.25f), hi(N, 0.3f);
  QParams wq = qparams_from_range(lo, hi, ws);
  Tensor xs = aq.scale.reshape({1}), xz = aq.zero_point.reshape({1});

  auto fused = [&](const testing::TL& in) { return qat_linear(in[0], in[1], in[2], xs, xz, as, wq.scale, wq.zero_point, ws); };
  auto composed = [&](const testing::TL& in) {
    return linear(fake_quantize(in[0], xs, xz, as), fake_quantize(in[1], wq.scale, wq.zero_point, ws), in[2]);
  };
  Tensor g = randn({3, 3, N}, gen);
  testing::TL a = testing::forward_backward(fused, {x, w, b}, g);
  testing::TL c = testing::forward_backward(composed, {x, w, b}, g);
  REQUIRE(a.size() == 4);
  CHECK(a[0].sizes() == Shape{3, 3, N});
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    REQUIRE(a[i].sizes() == c[i].sizes());
    const double scale = std::max(1.0, quench::testing::max_abs(c[i]));
    CHECK(testing::max_abs_diff(a[i], c[i]) <= 1e-5 * scale);
  }
  // Some inputs and weights were clamped: their gradient is exactly zero.
  int zeros_x = 0;
  for (float v : a[1].to_vector<float>()) zeros_x += v == 0.f;
  CHECK(zeros_x > 0);
  (void)M;
  // Integer accumulators and fixed-order epilogues: bit-identical for 1 and 2 threads.
  testing::check_thread_invariant([&] { return testing::forward_backward(fused, {x, w, b}, g); });
}

TEST_CASE("qat: the QAT Linear's forward is the exact integer accumulator and the int8 epilogue") {
  // y = float(sum_k (q_x - z_x)(q_w - z_w)) * (s_x * s_w[n]) + b[n], from the rounding rule and int64 sums.
  auto expected = [](const Tensor& x, const Tensor& w, const Tensor& b, const QParams& aq, const QuantSpec& as,
                     const QParams& wq, const QuantSpec& ws, int64_t* past_2_24) {
    const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
    const float sx = aq.scale.data_ptr<float>()[0];
    const int32_t zx = aq.zero_point.data_ptr<int32_t>()[0];
    const float *px = x.data_ptr<float>(), *pw = w.data_ptr<float>(), *pb = b.data_ptr<float>();
    std::vector<float> y(M * N);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t c = wq.scale.numel() == 1 ? 0 : n;
        const float sw = wq.scale.data_ptr<float>()[c];
        const int32_t zw = wq.zero_point.data_ptr<int32_t>()[c];
        int64_t acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          const int32_t qx = quantize_value(px[m * K + k], 1.0f / sx, zx, static_cast<int32_t>(as.quant_min),
                                            static_cast<int32_t>(as.quant_max));
          const int32_t qw = quantize_value(pw[n * K + k], 1.0f / sw, zw, static_cast<int32_t>(ws.quant_min),
                                            static_cast<int32_t>(ws.quant_max));
          acc += int64_t{qx - zx} * (qw - zw);
        }
        *past_2_24 += acc > (int64_t{1} << 24) || acc < -(int64_t{1} << 24);
        y[m * N + n] = static_cast<float>(acc) * (sx * sw) + pb[n];
      }
    return y;
  };
  Generator gen(8);
  const int64_t M = 40, N = 7;
  struct Case {
    const char* name;
    QuantSpec as, ws;
    int64_t K;
  };
  const Case cases[] = {
      // The int8 GEMM's operands, with K so large that most sums pass 2^24 through partial sums of
      // every parity: an fp32 GEMM rounds them (in any summation order), the exact accumulator not.
      {"u8 x s8 per channel", QuantSpec::uint8_affine_per_tensor(), QuantSpec::int8_symmetric_per_channel(), 3000},
      {"s8 x s8 per channel", QuantSpec::make(8, true, false, false), QuantSpec::int8_symmetric_per_channel(), 3000},
      {"u8 x s8 per tensor", QuantSpec::uint8_affine_per_tensor(), QuantSpec::int8_symmetric_per_tensor(), 3000},
      // Weights with zero points: the fp32 GEMM of exact integers (K small enough to stay exact).
      {"u8 x affine s8", QuantSpec::uint8_affine_per_tensor(), QuantSpec::make(8, true, false, true), 250},
  };
  for (const Case& c : cases) {
    const std::string name = c.name;
    CAPTURE(name);
    // x mostly positive and each channel's weights of one sign, so the sums grow with K; both ends of
    // the codes saturate somewhere.
    Tensor x = (randn({M, c.K}, gen) + 1.0) * 2.0, w = randn({N, c.K}, gen).abs() * 0.2, b = randn({N}, gen);
    float* pw = w.data_ptr<float>();
    for (int64_t n = 1; n < N; n += 2)
      for (int64_t k = 0; k < c.K; ++k) pw[n * c.K + k] = -pw[n * c.K + k];
    const int64_t nw = c.ws.per_channel ? N : 1;
    QParams aq = qparams_from_range({0.f}, {3.f}, c.as);
    QParams wq = qparams_from_range(std::vector<float>(nw, -0.25f), std::vector<float>(nw, 0.3f), c.ws);
    Tensor xs = aq.scale.reshape({1}), xz = aq.zero_point.reshape({1});
    Tensor y = qat_linear(x, w, b, xs, xz, c.as, wq.scale, wq.zero_point, c.ws);
    int64_t past = 0;
    CHECK(y.to_vector<float>() == expected(x, w, b, aq, c.as, wq, c.ws, &past));
    if (c.K > 258) CHECK(past > M * N / 2);  // the sums these cases are about
  }
}

TEST_CASE("qat: a QAT Linear whose weight or input needs no gradient gives the same output and other gradient") {
  Generator gen(9);
  const int64_t M = 33, K = 40, N = 9;
  QuantSpec as = QuantSpec::uint8_affine_per_tensor(), ws = QuantSpec::int8_symmetric_per_channel();
  QParams aq = qparams_from_range({-2.f}, {2.f}, as);
  QParams wq = qparams_from_range(std::vector<float>(N, -0.3f), std::vector<float>(N, 0.3f), ws);
  Tensor xs = aq.scale.reshape({1}), xz = aq.zero_point.reshape({1});
  Tensor x0 = randn({M, K}, gen) * 1.5, w0 = randn({N, K}, gen) * 0.2, b = randn({N}, gen), g = randn({M, N}, gen);
  struct Out {
    std::vector<float> y, dx, dw;
  };
  auto run = [&](bool input_grad, bool weight_grad) {
    Tensor x = x0.clone(), w = w0.clone();
    if (input_grad) x.requires_grad_();
    if (weight_grad) w.requires_grad_();
    Tensor y = qat_linear(x, w, b, xs, xz, as, wq.scale, wq.zero_point, ws);
    (y * g).sum().backward();
    CHECK(x.grad().defined() == input_grad);
    CHECK(w.grad().defined() == weight_grad);
    Out o{y.detach().to_vector<float>(), {}, {}};
    if (input_grad) o.dx = x.grad().to_vector<float>();
    if (weight_grad) o.dw = w.grad().to_vector<float>();
    return o;
  };
  const Out both = run(true, true), x_only = run(true, false), w_only = run(false, true);
  CHECK(x_only.y == both.y);
  CHECK(x_only.dx == both.dx);
  CHECK(w_only.y == both.y);
  CHECK(w_only.dw == both.dw);
}

TEST_CASE("qat: training through QATLinear (STE) lowers the loss on a toy regression") {
  Generator gen(3);
  auto net = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
      std::make_shared<nn::Linear>(4, 32, true, gen), std::make_shared<nn::GELU>(),
      std::make_shared<nn::Linear>(32, 1, true, gen)});
  prepare_qat(*net);
  Tensor x = randn({64, 4}, gen);
  Tensor y = (x.select(1, 0) * 1.5 - x.select(1, 1) * x.select(1, 2) + 0.5).reshape({64, 1});
  optim::AdamW opt(net->parameters(), optim::AdamWOptions(1e-2));
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    opt.zero_grad();
    Tensor loss = mse_loss((*net)(x), y);
    loss.backward();
    opt.step();
    if (step == 0) first = loss.item<float>();
    last = loss.item<float>();
  }
  MESSAGE("toy QAT regression loss: first ", first, ", last ", last);
  CHECK(last < 0.2 * first);
  auto q = std::dynamic_pointer_cast<QATLinear>(net->get_submodule("0"));
  REQUIRE(q);
  CHECK(q->input_fake_quant().calibrated());
  CHECK(q->weight_fake_quant().calibrated());
}

TEST_CASE("qat: LSQ scales are parameters that learn once the observers freeze") {
  Generator gen(5);
  auto net = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{std::make_shared<nn::Linear>(6, 3, true, gen)});
  QuantizationAwareTrainingConfig cfg;
  cfg.default_qconfig->learnable_scale = true;
  prepare_qat(*net, cfg);
  auto q = std::dynamic_pointer_cast<QATLinear>(net->get_submodule("0"));
  REQUIRE(q);
  CHECK(net->named_parameters().size() == 4);  // weight, bias, 2 scales
  Tensor x = randn({8, 6}, gen);
  (*net)(x).sum().backward();  // observer on: initializes the scales
  const float s0 = q->input_fake_quant().scale.item<float>();
  freeze_observers(*net);
  net->zero_grad();
  (*net)(x).pow(2.0).sum().backward();
  REQUIRE(q->input_fake_quant().scale.grad().defined());
  CHECK(q->weight_fake_quant().scale.grad().sizes() == Shape{3});
  CHECK(q->input_fake_quant().scale.item<float>() == s0);
}

TEST_CASE("qat: the observer schedule freezes at the configured epoch") {
  auto net = std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{std::make_shared<nn::Linear>(3, 2)});
  QuantizationAwareTrainingConfig cfg;
  cfg.freeze_observer_epoch = 2;
  prepare_qat(*net, cfg);
  auto q = std::dynamic_pointer_cast<QATLinear>(net->get_submodule("0"));
  CHECK_FALSE(freeze_observers_on_epoch(*net, cfg, 0));
  CHECK_FALSE(freeze_observers_on_epoch(*net, cfg, 1));
  CHECK(q->input_fake_quant().observer_enabled());
  (*net)(tensor({1.f, -1.f, 0.5f}, {1, 3}));
  const float s = q->input_fake_quant().scale.item<float>();
  CHECK(freeze_observers_on_epoch(*net, cfg, 2));
  CHECK_FALSE(q->input_fake_quant().observer_enabled());
  CHECK_FALSE(q->weight_fake_quant().observer_enabled());
  (*net)(tensor({10.f, -10.f, 5.f}, {1, 3}));
  CHECK(q->input_fake_quant().scale.item<float>() == s);
  cfg.freeze_observer_epoch = -1;
  CHECK_FALSE(freeze_observers_on_epoch(*net, cfg, 100));
}
