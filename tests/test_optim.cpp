// Optimizers against PyTorch 1.13 golden values (tests/golden/make_optim_golden.py), optimizer state,
// parameter groups, gradient clipping and LR schedules.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "engine/ops.hpp"
#include "kernels/adamw.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"
#include "nn/layers/linear.hpp"
#include "nn/optim/adamw.hpp"
#include "nn/optim/clip_grad.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "nn/optim/sgd.hpp"
#include "tests/golden.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::optim;
using quench::testing::max_rel_err;

namespace {

const nn::SafeTensorsFile& golden() {
  static const nn::SafeTensorsFile g = testing::load_golden("optim_golden.safetensors");
  return g;
}

constexpr int kSteps = 4;
constexpr double kTol = 1e-6;

std::vector<Tensor> fresh_params() {
  return {golden().at("init.0").clone().requires_grad_(), golden().at("init.1").clone().requires_grad_()};
}

void set_grads(std::vector<Tensor>& ps, int step) {
  for (size_t i = 0; i < ps.size(); ++i)
    ps[i].set_grad(golden().at("grad." + std::to_string(step) + "." + std::to_string(i)).clone());
}

// Runs `steps` steps from `first`, checking every parameter after each against PyTorch.
void run_and_check(const std::string& name, Optimizer& opt, std::vector<Tensor>& ps, int first = 0,
                   int steps = kSteps) {
  for (int s = first; s < first + steps; ++s) {
    set_grads(ps, s);
    opt.step();
    for (size_t i = 0; i < ps.size(); ++i) {
      const std::string key = name + ".step" + std::to_string(s) + "." + std::to_string(i);
      CHECK_MESSAGE(max_rel_err(ps[i], golden().at(key)) < kTol, key);
    }
  }
}

}  // namespace

TEST_CASE("optim: SGD matches PyTorch (plain, momentum + dampening + weight decay, nesterov)") {
  {
    auto ps = fresh_params();
    SGD opt(ps, SGDOptions(0.1));
    run_and_check("sgd_plain", opt, ps);
  }
  {
    auto ps = fresh_params();
    SGD opt(ps, SGDOptions(0.1).momentum(0.9).dampening(0.1).weight_decay(0.01));
    run_and_check("sgd_momentum", opt, ps);
    StateDict sd = opt.state_dict();
    for (int i = 0; i < 2; ++i) {
      const std::string k = "state." + std::to_string(i) + ".momentum_buffer";
      CHECK(max_rel_err(sd.at(k), golden().at("sgd_momentum." + k)) < kTol);
      CHECK(sd.at("state." + std::to_string(i) + ".step").item<int32_t>() == kSteps);
    }
  }
  {
    auto ps = fresh_params();
    SGD opt(ps, SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(0.05));
    run_and_check("sgd_nesterov", opt, ps);
  }
  CHECK_THROWS_WITH_AS(SGD(fresh_params(), SGDOptions(0.1).nesterov(true)), doctest::Contains("nesterov"),
                       Error);
}

TEST_CASE("optim: AdamW matches PyTorch (defaults, custom hyperparameters, two groups)") {
  {
    auto ps = fresh_params();
    AdamW opt(ps);  // lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2
    run_and_check("adamw_default", opt, ps);
  }
  {
    auto ps = fresh_params();
    AdamW opt(ps, AdamWOptions(0.01).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1));
    run_and_check("adamw_custom", opt, ps);
    StateDict sd = opt.state_dict();
    for (int i = 0; i < 2; ++i)
      for (const char* b : {"exp_avg", "exp_avg_sq"}) {
        const std::string k = "state." + std::to_string(i) + "." + b;
        CHECK_MESSAGE(max_rel_err(sd.at(k), golden().at("adamw_custom." + k)) < kTol, k);
      }
  }
  {
    auto ps = fresh_params();
    ParamGroup g0({ps[0]}), g1({ps[1]});
    g0.weight_decay = 0.1;
    g1.weight_decay = 0.0;
    g1.lr = 0.02;
    AdamW opt({g0, g1}, AdamWOptions(0.01));
    CHECK(opt.param_groups()[0].lr.value() == 0.01);
    run_and_check("adamw_groups", opt, ps);
  }
}

TEST_CASE("optim: the AdamW kernel's AVX2 path gives its reference's bits") {
  // 203 elements: 25 vectors of 8 and a tail of 3; gradients across magnitudes, some zero.
  Generator gen(61);
  const int64_t n = 203;
  std::vector<float> w0 = randn({n}, gen).to_vector<float>(), g = (randn({n}, gen) * 3.0).to_vector<float>();
  std::vector<float> m0 = (randn({n}, gen) * 0.1).to_vector<float>(), v0 = rand({n}, gen).to_vector<float>();
  for (int64_t i = 0; i < n; i += 7) g[i] = 0.f;
  for (int64_t i = 1; i < n; i += 11) v0[i] = 0.f;
  g[3] = NAN, g[12] = INFINITY, g[21] = -INFINITY, g[30] = 1e-40f, m0[39] = -1e-41f, v0[44] = 1e-42f;
  kernels::AdamWScalars s{0.9995f, 0.9f, 0.1f, 0.999f, 0.001f, 0.0447f, 1e-8f, -0.0123f};
  std::vector<float> w1 = w0, m1 = m0, v1 = v0, w2 = w0, m2 = m0, v2 = v0;
  kernels::adamw_step_ref(n, w1.data(), g.data(), m1.data(), v1.data(), s);
  const kernels::Isa prev = kernels::active_isa();
  kernels::set_isa(kernels::cpu_isa());
  kernels::adamw_step(n, w2.data(), g.data(), m2.data(), v2.data(), s);
  kernels::set_isa(prev);
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  CHECK(same_bits(w1, w2));  // bits, so that NaNs compare too
  CHECK(same_bits(m1, m2));
  CHECK(same_bits(v1, v2));
  CHECK(std::isnan(w1[3]));
  CHECK(!same_bits(w1, w0));
}

TEST_CASE("optim: parameters without a gradient are skipped") {
  auto ps = fresh_params();
  AdamW opt(ps);
  ps[0].set_grad(golden().at("grad.0.0").clone());
  Tensor before = ps[1].clone();
  opt.step();
  CHECK(testing::max_abs_diff(ps[1], before) == 0.0);
  CHECK(opt.state(1).step == 0);
  CHECK(opt.state(0).step == 1);
  CHECK(opt.state_dict().keys() == std::vector<std::string>{"state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq"});
  opt.zero_grad();
  CHECK_FALSE(ps[0].grad().defined());
}

TEST_CASE("optim: state_dict round trip resumes exactly, and bad state is rejected") {
  auto ps = fresh_params();
  AdamW opt(ps, AdamWOptions(0.01).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1));
  for (int s = 0; s < 2; ++s) {
    set_grads(ps, s);
    opt.step();
  }
  StateDict sd = opt.state_dict();
  // A new optimizer on copies of the parameters, loaded from the state, continues like the original.
  std::vector<Tensor> ps2 = {ps[0].detach().clone().requires_grad_(), ps[1].detach().clone().requires_grad_()};
  AdamW opt2(ps2, AdamWOptions(0.01).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1));
  opt2.load_state_dict(sd);
  run_and_check("adamw_custom", opt2, ps2, 2, 2);
  // Without the state the continuation differs (bias correction restarts).
  std::vector<Tensor> ps3 = {ps[0].detach().clone().requires_grad_(), ps[1].detach().clone().requires_grad_()};
  AdamW opt3(ps3, AdamWOptions(0.01).betas({0.8, 0.95}).eps(1e-6).weight_decay(0.1));
  set_grads(ps3, 2);
  opt3.step();
  CHECK(max_rel_err(ps3[0], golden().at("adamw_custom.step2.0")) > 1e-4);

  StateDict bad;
  for (const auto& [k, v] : sd)
    if (k != "state.1.exp_avg_sq") bad.insert(k, v);
  bad.insert("state.0.exp_avg", zeros({4, 3}));
  bad.insert("state.7.exp_avg", zeros({5}));
  bad.insert("state.1.momentum_buffer", zeros({5}));
  try {
    opt2.load_state_dict(bad);
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("state.0.exp_avg has shape [4, 3], parameter has [3, 4]") != std::string::npos);
    CHECK(msg.find("unexpected key state.7.exp_avg") != std::string::npos);
    CHECK(msg.find("keeps no 'momentum_buffer'") != std::string::npos);
    CHECK(msg.find("state.1 lacks some of its buffers") != std::string::npos);
  }
}

TEST_CASE("optim: param_groups_weight_decay puts biases, norms and listed names in the no-decay group") {
  Generator gen(1);
  std::vector<std::pair<std::string, Tensor>> named = {
      {"cls_token", zeros({1, 1, 4}).requires_grad_()},  {"fc.weight", zeros({3, 4}).requires_grad_()},
      {"fc.bias", zeros({3}).requires_grad_()},          {"norm.weight", ones({4}).requires_grad_()},
      {"conv.bias", zeros({2, 2}).requires_grad_()},     {"frozen", zeros({3, 3})}};
  auto groups = param_groups_weight_decay(named, 0.05, {"cls_token"});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"fc.weight"});
  CHECK(groups[0].weight_decay.value() == 0.05);
  CHECK(groups[1].names == std::vector<std::string>{"cls_token", "fc.bias", "norm.weight", "conv.bias"});
  CHECK(groups[1].weight_decay.value() == 0.0);
  // The no-decay group really does not decay: with zero gradients AdamW leaves it unchanged.
  AdamW opt(groups, AdamWOptions(0.1));
  for (auto& g : opt.param_groups())
    for (auto& p : g.params) {
      p.detach().fill_(1.0);
      p.set_grad(zeros(p.sizes()));
    }
  opt.step();
  CHECK(named[1].second.at({0, 0}) == doctest::Approx(1.0 - 0.1 * 0.05));
  CHECK(named[2].second.at({0}) == 1.0);
}

TEST_CASE("optim: clip_grad_norm_ matches PyTorch and returns the total norm") {
  for (const char* tag : {"clip", "noclip"}) {
    auto ps = fresh_params();
    set_grads(ps, 0);
    const double max_norm = std::string(tag) == "clip" ? 1.0 : 100.0;
    double total = clip_grad_norm_(ps, max_norm);
    CHECK(total == doctest::Approx(golden().at(std::string(tag) + ".total").item<float>()).epsilon(1e-6));
    for (int i = 0; i < 2; ++i)
      CHECK(max_rel_err(ps[i].grad(), golden().at(std::string(tag) + ".grad." + std::to_string(i))) < kTol);
  }
  auto ps = fresh_params();
  ps[0].set_grad(tensor({3.f, -4.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, {3, 4}));
  CHECK(clip_grad_norm_(ps, 1.0, INFINITY) == 4.0);  // ps[1] has no grad: skipped
  CHECK(ps[0].grad().at({0, 1}) == doctest::Approx(-1.0).epsilon(1e-5));
  CHECK_THROWS_WITH_AS(clip_grad_norm_(ps, 1.0, 1.0), doctest::Contains("norm_type"), Error);
}

TEST_CASE("optim: updates are bit-identical for 1 and 2 threads") {
  const int prev = get_num_threads();
  auto run = [&](int threads, bool adam) {
    set_num_threads(threads);
    Generator gen(3);
    Tensor p = randn({70000}, gen).requires_grad_();
    std::unique_ptr<Optimizer> opt;
    if (adam)
      opt = std::make_unique<AdamW>(std::vector<Tensor>{p});
    else
      opt = std::make_unique<SGD>(std::vector<Tensor>{p}, SGDOptions(0.1).momentum(0.9).weight_decay(0.1));
    for (int s = 0; s < 3; ++s) {
      p.set_grad(randn({70000}, gen));
      if (s == 1) clip_grad_norm_({p}, 10.0);
      opt->step();
    }
    return p.to_vector<float>();
  };
  CHECK(run(1, true) == run(2, true));
  CHECK(run(1, false) == run(2, false));
  set_num_threads(prev);
}

TEST_CASE("optim: warmup then cosine or linear decay to a floor") {
  LRScheduleOptions o;
  o.base_lr = 1.0;
  o.min_lr = 0.1;
  o.warmup_steps = 10;
  o.total_steps = 110;
  LRSchedule cos(nullptr, o);
  CHECK(cos.lr_at(0) == doctest::Approx(0.1));
  CHECK(cos.lr_at(4) == doctest::Approx(0.5));
  CHECK(cos.lr_at(9) == doctest::Approx(1.0));
  CHECK(cos.lr_at(10) == doctest::Approx(1.0));
  CHECK(cos.lr_at(35) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI / 4))));
  CHECK(cos.lr_at(60) == doctest::Approx(0.55));
  CHECK(cos.lr_at(110) == doctest::Approx(0.1));
  CHECK(cos.lr_at(500) == doctest::Approx(0.1));
  for (int64_t s = 11; s < 120; ++s) CHECK(cos.lr_at(s) <= cos.lr_at(s - 1));
  o.decay = Decay::linear;
  LRSchedule lin(nullptr, o);
  CHECK(lin.lr_at(35) == doctest::Approx(0.1 + 0.9 * 0.75));
  CHECK(lin.lr_at(60) == doctest::Approx(0.55));
  o.decay = Decay::constant;
  CHECK(LRSchedule(nullptr, o).lr_at(1000) == 1.0);

  // Driving an optimizer: groups keep their ratio to base_lr.
  auto ps = fresh_params();
  ParamGroup g0({ps[0]}), g1({ps[1]});
  g1.lr = 2e-3;
  AdamW opt({g0, g1}, AdamWOptions(1e-3));
  LRScheduleOptions so;
  so.base_lr = 1e-3;
  so.warmup_steps = 4;
  so.total_steps = 20;
  LRSchedule sched(&opt, so);
  CHECK(opt.param_groups()[0].lr.value() == doctest::Approx(0.25e-3));
  CHECK(opt.param_groups()[1].lr.value() == doctest::Approx(0.5e-3));
  for (int i = 0; i < 3; ++i) sched.step();
  CHECK(sched.current_step() == 3);
  CHECK(opt.param_groups()[0].lr.value() == doctest::Approx(1e-3));
  CHECK(opt.param_groups()[1].lr.value() == doctest::Approx(2e-3));
  sched.set_step(20);
  CHECK(opt.param_groups()[0].lr.value() == 0.0);
  CHECK_THROWS_WITH_AS(LRSchedule(nullptr, LRScheduleOptions{1.0, 2.0, 0, 1, Decay::cosine}),
                       doctest::Contains("min_lr"), Error);
}

TEST_CASE("optim: a small model trains with AdamW, a schedule and clipping") {
  Generator gen(21);
  auto model = std::make_shared<nn::Linear>(4, 1, true, gen);
  Tensor x = randn({64, 4}, gen);
  Tensor w_true = tensor({0.5f, -1.f, 2.f, 0.25f}, {4, 1});
  Tensor y = matmul(x, w_true) + 0.3;
  AdamW opt(param_groups_weight_decay(model->named_parameters(), 0.0), AdamWOptions(0.05));
  LRScheduleOptions so;
  so.base_lr = 0.05;
  so.min_lr = 0.001;
  so.warmup_steps = 10;
  so.total_steps = 300;
  LRSchedule sched(&opt, so);
  float first = 0, last = 0;
  for (int s = 0; s < 300; ++s) {
    opt.zero_grad();
    Tensor err = (*model)(x) - y;
    Tensor loss = (err * err).mean();
    if (s == 0) first = loss.item<float>();
    last = loss.item<float>();
    loss.backward();
    clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
    sched.step();
  }
  CHECK(last < 1e-4f * first);
  CHECK(model->bias.item<float>() == doctest::Approx(0.3).epsilon(0.01));
}
