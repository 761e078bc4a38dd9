// cross_entropy, mse_loss, l1_loss, kl_div.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string_view>

#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using quench::testing::check_thread_invariant;
using quench::testing::forward_backward;
using quench::testing::gradcheck;
using quench::testing::max_abs_diff;
using TL = std::vector<Tensor>;

// ---------------------------------------------------------------------------------------------
// cross_entropy

namespace {
// Reference: per-sample smoothed NLL in double for logits [N, C], 0 for ignored samples.
std::vector<double> ce_reference(const Tensor& x, const std::vector<int>& t, int ignore, double ls) {
  const int64_t N = x.size(0), C = x.size(1);
  std::vector<double> out(N, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    if (t[n] == ignore) continue;
    double m = -1e300, s = 0.0, sum_lp = 0.0;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, x.at({n, c}));
    for (int64_t c = 0; c < C; ++c) s += std::exp(x.at({n, c}) - m);
    const double lse = m + std::log(s);
    for (int64_t c = 0; c < C; ++c) sum_lp += x.at({n, c}) - lse;
    out[n] = (1 - ls) * (lse - x.at({n, t[n]})) - ls / C * sum_lp;
  }
  return out;
}
}  // namespace

TEST_CASE("cross_entropy: reductions, ignore_index and label smoothing against a reference") {
  Generator gen(10);
  Tensor x = randn({6, 5}, gen) * 2.0;
  std::vector<int> t = {1, 4, -100, 0, 2, -100};
  Tensor tt = tensor(std::vector<int32_t>(t.begin(), t.end()));
  for (double ls : {0.0, 0.25}) {
    CAPTURE(ls);
    std::vector<double> ref = ce_reference(x, t, -100, ls);
    double total = 0;
    for (double v : ref) total += v;
    Tensor none = cross_entropy(x, tt, -100, ls, Reduction::none);
    for (int n = 0; n < 6; ++n) CHECK(none.at({n}) == doctest::Approx(ref[n]).epsilon(1e-5));
    CHECK(none.at({2}) == 0.0);
    CHECK(cross_entropy(x, tt, -100, ls, Reduction::sum).item<double>() == doctest::Approx(total).epsilon(1e-5));
    // The mean divides by the 4 samples not ignored (both terms, as PyTorch 1.13).
    CHECK(cross_entropy(x, tt, -100, ls).item<double>() == doctest::Approx(total / 4).epsilon(1e-5));
  }
  // A different ignore_index: -100 is then an invalid class.
  Tensor t2 = tensor({1, 4, 3, 0, 2, 3});
  std::vector<double> ref = ce_reference(x, {1, 4, 3, 0, 2, 3}, 3, 0.0);
  CHECK(cross_entropy(x, t2, 3).item<double>() == doctest::Approx((ref[0] + ref[1] + ref[3] + ref[4]) / 4).epsilon(1e-5));
  // Everything ignored: the mean is 0/0 = NaN (as PyTorch), sum is 0, gradient is 0.
  Tensor all_ignored = tensor({-100, -100});
  CHECK(std::isnan(cross_entropy(randn({2, 3}, gen), all_ignored).item<float>()));
  Tensor xl = randn({2, 3}, gen).requires_grad_();
  Tensor s = cross_entropy(xl, all_ignored, -100, 0.1, Reduction::sum);
  CHECK(s.item<float>() == 0.f);
  s.backward();
  CHECK(max_abs_diff(xl.grad(), zeros({2, 3})) == 0.0);
}

TEST_CASE("cross_entropy: [N, C, d...] logits equal the [N*d, C] layout") {
  Generator gen(11);
  Tensor x = randn({2, 4, 3}, gen);
  Tensor t = tensor({0, 3, 1, 2, 2, -100}, {2, 3});
  Tensor flat_x = x.permute({0, 2, 1}).reshape({6, 4});
  Tensor flat_t = t.reshape({6});
  Tensor a = cross_entropy(x, t, -100, 0.1, Reduction::none);
  CHECK(a.sizes() == Shape{2, 3});
  CHECK(max_abs_diff(a.reshape({6}), cross_entropy(flat_x, flat_t, -100, 0.1, Reduction::none)) < 1e-6);
  CHECK(std::abs(cross_entropy(x, t).item<double>() - cross_entropy(flat_x, flat_t).item<double>()) < 1e-6);
  // Unbatched: logits [C], target 0-dim.
  Tensor one = cross_entropy(tensor({1.f, 2.f, 3.f}), scalar_tensor(2, kInt32));
  CHECK(one.item<double>() == doctest::Approx(std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0));
}

TEST_CASE("cross_entropy: gradcheck for every reduction, ignore_index and smoothing") {
  Generator gen(12);
  Tensor t = tensor({1, -100, 3, 0, 2});
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    for (double ls : {0.0, 0.3}) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(ls);
      CHECK(gradcheck([&](const TL& in) { return cross_entropy(in[0], t, -100, ls, r); }, {randn({5, 4}, gen)}));
    }
  }
  Tensor t3 = tensor({0, 2, 5, 1, 5, 0}, {2, 3});
  CHECK(gradcheck([&](const TL& in) { return cross_entropy(in[0], t3, 5, 0.2, Reduction::none); },
                  {randn({2, 3, 3}, gen)}));
  CHECK(gradcheck([&](const TL& in) { return cross_entropy(in[0], t3, 5, 0.2); }, {randn({2, 3, 3}, gen)}));
}

TEST_CASE("cross_entropy: errors name the op and the shapes") {
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({4, 3}), tensor({0, 1, 2})),
                       "cross_entropy: target of shape [3] does not match logits of shape [4, 3]; expected "
                       "target shape [4]",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}), tensor({0, 3})),
                       "cross_entropy: target 3 at position 1 is out of range for 3 classes (logits of shape "
                       "[2, 3]); expected 0 <= target < 3 or ignore_index -100",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}), tensor({-1, 0})), doctest::Contains("target -1 at position 0"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}), zeros({2})),
                       doctest::Contains("cross_entropy: expected int32 for target, got float32"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}), tensor({0, 1}), -100, 1.5),
                       doctest::Contains("label_smoothing must be in [0, 1], got 1.5"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(zeros({2, 3}), tensor({0, 1}), -100, 0.0, Reduction::batchmean),
                       doctest::Contains("batchmean is not supported"), Error);
}

TEST_CASE("cross_entropy: 1 and 2 threads give bit-identical results") {
  Generator gen(13);
  Tensor x = randn({600, 30}, gen), t = randint(0, 30, {600}, gen), g = randn({600}, gen);
  Tensor one = ones({});
  check_thread_invariant([&] {
    TL a = forward_backward([&](const TL& in) { return cross_entropy(in[0], t, 3, 0.1); }, {x}, one);
    TL b = forward_backward([&](const TL& in) { return cross_entropy(in[0], t, -100, 0.0, Reduction::none); }, {x}, g);
    return TL{a[0], a[1], b[0], b[1]};
  });
}

// ---------------------------------------------------------------------------------------------
// mse_loss, l1_loss, kl_div

TEST_CASE("mse_loss and l1_loss: known values and reductions") {
  Tensor a = tensor({1.f, 2.f, 3.f, 4.f}, {2, 2}), b = tensor({1.5f, 0.f, 3.f, 7.f}, {2, 2});
  CHECK(mse_loss(a, b, Reduction::none).to_vector<float>() == std::vector<float>{0.25f, 4.f, 0.f, 9.f});
  CHECK(mse_loss(a, b, Reduction::sum).item<float>() == 13.25f);
  CHECK(mse_loss(a, b).item<float>() == doctest::Approx(13.25 / 4));
  CHECK(l1_loss(a, b, Reduction::none).to_vector<float>() == std::vector<float>{0.5f, 2.f, 0.f, 3.f});
  CHECK(l1_loss(a, b).item<float>() == doctest::Approx(5.5 / 4));
  // l1 gradient: sign(a - b), 0 where equal.
  Tensor al = a.clone().requires_grad_();
  l1_loss(al, b, Reduction::sum).backward();
  CHECK(al.grad().to_vector<float>() == std::vector<float>{-1.f, 1.f, 0.f, -1.f});
  CHECK_THROWS_WITH_AS(mse_loss(zeros({2, 2}), zeros({4})),
                       "mse_loss: input of shape [2, 2] and target of shape [4] must have the same shape", Error);
  CHECK_THROWS_WITH_AS(l1_loss(zeros({2}), zeros({2}), Reduction::batchmean),
                       doctest::Contains("l1_loss: reduction batchmean is only defined for kl_div"), Error);
}

TEST_CASE("mse_loss, l1_loss, kl_div: gradcheck in both inputs") {
  Generator gen(14);
  Tensor a = randn({3, 4}, gen), b = randn({3, 4}, gen);
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    CAPTURE(static_cast<int>(r));
    CHECK(gradcheck([r](const TL& in) { return mse_loss(in[0], in[1], r); }, {a, b}));
    CHECK(gradcheck([r](const TL& in) { return l1_loss(in[0], in[1], r); }, {a, b}));
  }
  Tensor lq = log_softmax(randn({3, 4}, gen), 1), p = softmax(randn({3, 4}, gen), 1), lp = log_softmax(randn({3, 4}, gen), 1);
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum, Reduction::batchmean}) {
    CAPTURE(static_cast<int>(r));
    CHECK(gradcheck([r](const TL& in) { return kl_div(in[0], in[1], r); }, {lq, p}));
    CHECK(gradcheck([r](const TL& in) { return kl_div(in[0], in[1], r, true); }, {lq, lp}));
  }
}

TEST_CASE("kl_div: the KL divergence, zeros in the target, log_target") {
  Tensor p = tensor({0.5f, 0.5f, 0.f, 0.25f, 0.25f, 0.5f}, {2, 3});
  Tensor q = tensor({0.25f, 0.25f, 0.5f, 0.5f, 0.25f, 0.25f}, {2, 3});
  Tensor lq = q.to(kFloat32);
  std::vector<float> qv = q.to_vector<float>(), pv = p.to_vector<float>();
  std::vector<float> logq(6);
  for (int i = 0; i < 6; ++i) logq[i] = std::log(qv[i]);
  Tensor lqt = tensor(logq, {2, 3});
  double kl = 0;
  for (int i = 0; i < 6; ++i)
    if (pv[i] > 0) kl += pv[i] * std::log(pv[i] / qv[i]);
  CHECK(kl_div(lqt, p, Reduction::batchmean).item<double>() == doctest::Approx(kl / 2).epsilon(1e-6));
  CHECK(kl_div(lqt, p, Reduction::sum).item<double>() == doctest::Approx(kl).epsilon(1e-6));
  CHECK(kl_div(lqt, p).item<double>() == doctest::Approx(kl / 6).epsilon(1e-6));
  Tensor none = kl_div(lqt, p, Reduction::none);
  CHECK(none.at({0, 2}) == 0.0);  // target 0 contributes 0, not NaN
  // log_target: the same with target log p (the zero becomes -inf, exp(-inf) = 0).
  std::vector<float> logp(6);
  for (int i = 0; i < 6; ++i) logp[i] = pv[i] > 0 ? std::log(pv[i]) : -std::numeric_limits<float>::infinity();
  CHECK(kl_div(lqt, tensor(logp, {2, 3}), Reduction::sum, true).item<double>() == doctest::Approx(kl).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(kl_div(zeros({2, 3}), zeros({3, 2})), doctest::Contains("kl_div: input of shape [2, 3]"), Error);
}

TEST_CASE("pointwise losses: 1 and 2 threads give bit-identical sums") {
  Generator gen(15);
  Tensor a = randn({200, 100}, gen), b = randn({200, 100}, gen), one = ones({});
  Tensor lq = log_softmax(a, 1), p = softmax(b, 1);
  check_thread_invariant([&] {
    TL m = forward_backward([](const TL& in) { return mse_loss(in[0], in[1]); }, {a, b}, one);
    TL l = forward_backward([](const TL& in) { return l1_loss(in[0], in[1], Reduction::sum); }, {a, b}, one);
    TL k = forward_backward([](const TL& in) { return kl_div(in[0], in[1], Reduction::batchmean); }, {lq, p}, one);
    return TL{m[0], m[1], m[2], l[0], l[1], k[0], k[1], k[2]};
  });
}


TEST_CASE("softmax, log_softmax and cross_entropy: the baseline and AVX2 rows give the same bits") {
  // Their exp has explicit FMAs: an instruction on the AVX2 path, libm's fmaf on the baseline one.
  Generator gen(14);
  Tensor x = randn({37, 30}, gen) * 6.0, t = randint(0, 30, {37}, gen), g = randn({37, 30}, gen);
  Tensor gl = randn({37}, gen), one = ones({});
  auto run = [&] {
    TL out;
    for (int64_t dim : {1, 0}) {  // contiguous rows, and rows strided across the tensor
      for (TL r : {forward_backward([&](const TL& in) { return softmax(in[0], dim); }, {x}, g),
                   forward_backward([&](const TL& in) { return log_softmax(in[0], dim); }, {x}, g)})
        out.insert(out.end(), r.begin(), r.end());
    }
    for (TL r : {forward_backward([&](const TL& in) { return cross_entropy(in[0], t, 3, 0.1); }, {x}, one),
                 forward_backward([&](const TL& in) { return cross_entropy(in[0], t, -100, 0.0, Reduction::none); },
                                  {x}, gl)})
      out.insert(out.end(), r.begin(), r.end());
    return out;
  };
  const kernels::Isa prev = kernels::active_isa();
  kernels::set_isa(kernels::Isa::ref);
  const TL base = run();
  for (int i = 1; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
    const std::string_view isa = kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i)));
    CAPTURE(isa);
    const TL best = run();
    REQUIRE(best.size() == base.size());
    for (size_t k = 0; k < base.size(); ++k) {
      CAPTURE(k);
      CHECK(quench::testing::bit_equal(base[k], best[k]));
    }
  }
  kernels::set_isa(prev);
}
