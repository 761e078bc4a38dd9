#include <doctest/doctest.h>

#include <cmath>

#include "engine/ops.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/observer.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::quant;

TEST_CASE("quant: specs have the project's defaults") {
  QuantSpec a = QuantSpec::uint8_affine_per_tensor();
  CHECK(a.quant_min == 0);
  CHECK(a.quant_max == 255);
  CHECK_FALSE(a.symmetric);
  QuantSpec w = QuantSpec::int8_symmetric_per_channel();
  CHECK(w.quant_min == -127);
  CHECK(w.quant_max == 127);
  CHECK(w.per_channel);
  CHECK(w.str() == "int8 symmetric per-channel(axis 0) [-127, 127]");
  QuantSpec bad = a;
  bad.quant_max = 300;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("does not fit unsigned 8 bits"), Error);
}

TEST_CASE("quant: the rounding rule is half to even with the zero point added after rounding") {
  // scale 0.5 (inverse exactly 2): x*inv lands exactly on .5 ties.
  CHECK(quantize_value(0.25f, 2.f, 0, 0, 255) == 0);     // 0.5 -> 0
  CHECK(quantize_value(0.75f, 2.f, 0, 0, 255) == 2);     // 1.5 -> 2
  CHECK(quantize_value(1.25f, 2.f, 10, 0, 255) == 12);   // 2.5 -> 2, + 10
  CHECK(quantize_value(-0.25f, 2.f, 10, 0, 255) == 10);  // -0.5 -> -0, + 10
  CHECK(quantize_value(1e9f, 2.f, 10, 0, 255) == 255);
  CHECK(quantize_value(-1e9f, 2.f, 10, 0, 255) == 0);
  CHECK(quantize_value(std::nanf(""), 2.f, 10, 0, 255) == 0);
  CHECK(quantize_value(INFINITY, 2.f, 0, -127, 127) == 127);
}

TEST_CASE("quant: fake_quantize forward values and the STE mask") {
  Tensor x = tensor({0.25f, 0.75f, -0.25f, 3.0f, 200.f, -200.f}).requires_grad_();
  Tensor y = fake_quantize(x, scalar_tensor(0.5), scalar_tensor(10, kInt32), QuantSpec::uint8_affine_per_tensor());
  CHECK(y.to_vector<float>() == std::vector<float>{0.f, 1.f, -0.f, 3.f, 122.5f, -5.f});
  y.backward(ones({6}));
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1, 1, 1, 1, 0, 0});
}

TEST_CASE("quant: per-channel fake quantization uses each channel's scale") {
  QuantSpec spec = QuantSpec::int8_symmetric_per_channel(1);
  Tensor x = tensor({1.f, 1.f, 1.f, 1.f}, {2, 2});
  Tensor y = fake_quantize(x, tensor({0.3f, 0.01f}), zeros({2}, kInt32), spec);
  // column 0: round(1/0.3) = 3 -> 0.9 (in float); column 1: 100 * 0.01
  CHECK(y.at({0, 0}) == doctest::Approx(0.9).epsilon(1e-6));
  CHECK(y.at({1, 1}) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(fake_quantize(x, tensor({0.3f}), zeros({1}, kInt32), spec),
                       doctest::Contains("needs 2 scale(s)"), Error);
}

TEST_CASE("quant: LSQ scale gradient matches finite differences away from rounding jumps") {
  // With x exactly on grid points the rounding is locally constant, so d/ds of
  // sum(g * fq(x; s)) = sum(g * q') with q' = round(x/s) - x/s + ... : compare with the formula.
  QuantSpec spec = QuantSpec::uint8_affine_per_tensor();
  Tensor x = tensor({0.1f, -0.3f, 2.0f, 50.f});
  Tensor s = tensor({0.1f}).reshape({}).requires_grad_();
  Tensor xr = x.requires_grad_();
  Tensor y = fake_quantize_learnable(xr, s, scalar_tensor(20, kInt32), spec, 1.0);
  y.backward(ones({4}));
  // elements 0..2 in range: round(x/s) - x/s (tiny); element 3: 50/0.1 + 20 > 255 -> qmax - z = 235
  const float inv = 1.0f / 0.1f;
  double expect = 0.0;
  for (float v : {0.1f, -0.3f, 2.0f}) expect += std::nearbyint(v * inv) - v * inv;
  expect += 235.0;
  CHECK(s.grad().item<float>() == doctest::Approx(expect).epsilon(1e-5));
  CHECK(xr.grad().to_vector<float>() == std::vector<float>{1, 1, 1, 0});
}

TEST_CASE("quant: observers follow the PyTorch formulas") {
  MinMaxObserver mm(QuantSpec::uint8_affine_per_tensor());
  mm.observe(tensor({-1.f, 0.5f, 3.f}));
  mm.observe(tensor({2.f, -0.5f}));
  QParams p = mm.calculate_qparams();
  CHECK(p.scale.item<float>() == doctest::Approx(4.0 / 255.0));
  CHECK(p.zero_point.item<int32_t>() == 64);  // 0 - round(-1 / (4/255)) = round(63.75)
  // The range always includes zero.
  MinMaxObserver pos(QuantSpec::uint8_affine_per_tensor());
  pos.observe(tensor({2.f, 3.f}));
  CHECK(pos.calculate_qparams().zero_point.item<int32_t>() == 0);
  CHECK(pos.calculate_qparams().scale.item<float>() == doctest::Approx(3.0 / 255.0));

  MovingAverageMinMaxObserver ma(QuantSpec::uint8_affine_per_tensor());
  ma.observe(tensor({-1.f, 1.f}));
  ma.observe(tensor({-3.f, 5.f}));
  CHECK(ma.min_val().item<float>() == doctest::Approx(-1.02));
  CHECK(ma.max_val().item<float>() == doctest::Approx(1.04));

  MinMaxObserver pc(QuantSpec::int8_symmetric_per_channel(0));
  pc.observe(tensor({-2.f, 1.f, 0.5f, 0.25f}, {2, 2}));
  QParams q = pc.calculate_qparams();
  CHECK(q.scale.sizes() == Shape{2});
  CHECK(q.scale.at({0}) == doctest::Approx(2.0 / 127.0));
  CHECK(q.scale.at({1}) == doctest::Approx(0.5 / 127.0));
  CHECK(q.zero_point.to_vector<int32_t>() == std::vector<int32_t>{0, 0});

  MinMaxObserver empty(QuantSpec::uint8_affine_per_tensor());
  CHECK_THROWS_WITH_AS(empty.calculate_qparams(), doctest::Contains("before any data was observed"), Error);
}

TEST_CASE("quant: histogram observer clips an outlier when that lowers the L2 error") {
  // Rounding error grows with the sample count (N * s^2 / 12) while clipping one outlier costs its
  // excess squared, so clipping pays once N is large: 2M values in [-1, 1] plus one at 100.
  Generator gen(11);
  Tensor x = rand({2000000}, gen) * 2.0 - 1.0;
  x.data_ptr<float>()[123] = 100.f;
  HistogramObserver h(QuantSpec::uint8_affine_per_tensor());
  MinMaxObserver mm(QuantSpec::uint8_affine_per_tensor());
  h.observe(x.narrow(0, 0, 1000000));
  h.observe(x.narrow(0, 1000000, 1000000));
  mm.observe(x);
  auto [lo, hi] = h.optimal_range();
  CHECK(hi < 2.f);
  CHECK(lo < -0.9f);
  auto sq_err = [&](const QParams& p) {
    Tensor e = fake_quantize(x, p.scale, p.zero_point, QuantSpec::uint8_affine_per_tensor()) - x;
    return (e * e).sum().item<double>();
  };
  CHECK(sq_err(h.calculate_qparams()) < 0.5 * sq_err(mm.calculate_qparams()));
  // With few samples the outlier is kept: clipping it would cost more than rounding everything.
  HistogramObserver small(QuantSpec::uint8_affine_per_tensor());
  small.observe(x.narrow(0, 0, 1000));
  CHECK(small.optimal_range().second > 99.f);
}

#include "nn/io/safetensors.hpp"

namespace {
quench::nn::SafeTensorsFile quant_golden() {
  return quench::nn::load_safetensors(std::string(QUENCH_SOURCE_DIR) + "/tests/golden/quant_golden.safetensors");
}
}  // namespace

TEST_CASE("quant: fake quantization matches PyTorch bit for bit (golden)") {
  auto g = quant_golden();
  using quench::testing::max_abs_diff;
  for (const char* p : {"pt", "pc"}) {
    std::string k = p;
    QuantSpec spec = k == "pt" ? QuantSpec::uint8_affine_per_tensor() : QuantSpec::int8_symmetric_per_channel(0);
    Tensor x = g.at(k + ".x").clone().requires_grad_();
    Tensor y = fake_quantize(x, g.at(k + ".scale"), g.at(k + ".zero_point"), spec);
    CHECK(max_abs_diff(y, g.at(k + ".y")) == 0.0);
    y.backward(g.at(k + ".g"));
    CHECK(max_abs_diff(x.grad(), g.at(k + ".dx")) == 0.0);
  }
}

TEST_CASE("quant: LSQ forward and gradients match PyTorch's learnable fake quantize (golden)") {
  auto g = quant_golden();
  using quench::testing::max_abs_diff;
  Tensor x = g.at("lsq.x").clone().requires_grad_();
  Tensor s = g.at("lsq.scale").reshape({}).clone().requires_grad_();
  Tensor y = fake_quantize_learnable(x, s, g.at("lsq.zero_point").reshape({}), QuantSpec::uint8_affine_per_tensor(),
                                     g.at("lsq.grad_factor").item<double>());
  CHECK(max_abs_diff(y, g.at("lsq.y")) == 0.0);
  y.backward(g.at("lsq.g"));
  CHECK(max_abs_diff(x.grad(), g.at("lsq.dx")) == 0.0);
  CHECK(s.grad().item<double>() == doctest::Approx(g.at("lsq.dscale").item<double>()).epsilon(1e-5));
}

TEST_CASE("quant: observers match PyTorch's qparams (golden)") {
  auto g = quant_golden();
  MinMaxObserver mm(QuantSpec::uint8_affine_per_tensor());
  MovingAverageMinMaxObserver ma(QuantSpec::uint8_affine_per_tensor());
  MinMaxObserver pc(QuantSpec::int8_symmetric_per_channel(0));
  for (int i = 0; i < 3; ++i) {
    Tensor b = g.at("obs.batch" + std::to_string(i));
    mm.observe(b);
    ma.observe(b);
    pc.observe(b);
  }
  std::pair<const char*, Observer*> obs[] = {{"minmax", &mm}, {"movavg", &ma}, {"perchannel", &pc}};
  for (auto& entry : obs) {
    Observer* o = entry.second;
    std::string k = std::string("obs.") + entry.first;
    INFO(k);
    CHECK(quench::testing::max_abs_diff(o->min_val(), g.at(k + ".min_val").reshape(o->min_val().sizes())) == 0.0);
    CHECK(quench::testing::max_abs_diff(o->max_val(), g.at(k + ".max_val").reshape(o->max_val().sizes())) == 0.0);
    QParams p = o->calculate_qparams();
    CHECK(quench::testing::max_abs_diff(p.scale, g.at(k + ".scale").reshape(p.scale.sizes())) == 0.0);
    CHECK(p.zero_point.to_vector<int32_t>() == g.at(k + ".zero_point").to_vector<int32_t>());
  }
}
