// var, max / min (over a dim and over all elements), argmax / argmin.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using quench::testing::gradcheck;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();


// Distinct values 0.25 apart in a random order, so a gradcheck step never changes which is largest.
Tensor distinct(const Shape& shape, Generator& gen) {
  return randperm(shape_numel(shape), gen).to(kFloat32).reshape(shape) * 0.25 - 1.0;
}

}  // namespace

TEST_CASE("var: known values, dims, keepdim, correction") {
  Tensor v = tensor({1.f, 2.f, 3.f, 4.f, 2.f, 4.f, 8.f, 16.f}, {2, 4});
  CHECK(var(v, {1}).to_vector<float>() == std::vector<float>{5.f / 3.f, 115.f / 3.f});
  CHECK(var(v, {1}, 0).to_vector<float>() == std::vector<float>{1.25f, 28.75f});
  CHECK(var(v, {-1}, 1, true).sizes() == Shape{2, 1});
  CHECK(var(v, {0}).to_vector<float>() == std::vector<float>{0.5f, 2.f, 12.5f, 72.f});
  // Over everything: mean 5, sum of squares of deviations 170, / 7.
  CHECK(var(v).item<float>() == doctest::Approx(170.0 / 7.0).epsilon(1e-6));
  CHECK(var(v).dim() == 0);
  CHECK(var(v, {}, 1, true).sizes() == Shape{1, 1});
  // A large mean does not cancel the variance away.
  CHECK(var(tensor({1e4f + 1, 1e4f + 2, 1e4f + 3, 1e4f + 4})).item<float>() ==
        doctest::Approx(5.0 / 3.0).epsilon(1e-6));
  // n - correction <= 0: 0/0 = NaN and x/0 = inf, as torch.var.
  CHECK(std::isnan(var(tensor({3.f})).item<float>()));
  CHECK(std::isinf(var(tensor({1.f, 2.f}), {}, 2).item<float>()));
  // Strided input equals its contiguous copy.
  Generator gen(21);
  Tensor x = randn({4, 5, 6}, gen);
  Tensor p = x.permute({2, 0, 1});
  CHECK(quench::testing::bit_equal(var(p, {0, 2}), var(p.contiguous(), {0, 2})));
  CHECK_THROWS_WITH_AS(var(zeros({2}, kInt32)), "var: expected float32 for input, got int32 (shape [2])",
                       Error);
  CHECK_THROWS_WITH_AS(var(x, {3}), doctest::Contains("var: dimension 3 is out of range"), Error);
  CHECK_THROWS_WITH_AS(var(x, {1, -2}), doctest::Contains("var: dim 1 appears more than once"), Error);
}

TEST_CASE("var: gradcheck") {
  Generator gen(22);
  Tensor x = randn({3, 4, 5}, gen);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return var(in[0], {1}); }, {x}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return var(in[0], {0, 2}, 0, true); }, {x}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return var(in[0]); }, {x}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return var(in[0].permute({2, 0, 1}), {-1}, 2); }, {x}));
}

TEST_CASE("max / min over a dim: values, first-occurrence gradient, NaN") {
  Tensor x = tensor({1.f, 3.f, 3.f, -1.f, 5.f, 0.f, -2.f, -2.f, 7.f}, {3, 3});
  CHECK(max(x, 1).to_vector<float>() == std::vector<float>{3, 5, 7});
  CHECK(min(x, 1).to_vector<float>() == std::vector<float>{1, -1, -2});
  CHECK(max(x, 0).to_vector<float>() == std::vector<float>{1, 5, 7});
  CHECK(max(x, -1, true).sizes() == Shape{3, 1});
  CHECK(min(x, 0, true).sizes() == Shape{1, 3});
  CHECK(argmax(x, 1).dtype() == kInt32);
  CHECK(argmax(x, 1).to_vector<int>() == std::vector<int>{1, 1, 2});
  CHECK(argmin(x, 1).to_vector<int>() == std::vector<int>{0, 0, 0});
  CHECK(argmin(x, 0).to_vector<int>() == std::vector<int>{2, 2, 1});
  CHECK(x.argmax(0, true).sizes() == Shape{1, 3});
  CHECK(x.argmax(0, true).to_vector<int>() == std::vector<int>{0, 1, 2});
  // The gradient goes to the first maximal (minimal) element only.
  Tensor xg = x.clone().requires_grad_();
  max(xg, 1).sum().backward();
  CHECK(xg.grad().to_vector<float>() == std::vector<float>{0, 1, 0, 0, 1, 0, 0, 0, 1});
  xg = x.clone().requires_grad_();
  (min(xg, 1, true) * tensor({1.f, 2.f, 3.f}, {3, 1})).sum().backward();
  CHECK(xg.grad().to_vector<float>() == std::vector<float>{1, 0, 0, 2, 0, 0, 3, 0, 0});
  // NaN wins, at its first position.
  Tensor n = tensor({1.f, kNaN, 2.f, kNaN});
  CHECK(std::isnan(max(n, 0).item<float>()));
  CHECK(std::isnan(min(n, 0).item<float>()));
  CHECK(argmax(n, 0).item<int>() == 1);
  CHECK(argmin(n, 0).item<int>() == 1);
  // -inf everywhere still has a first maximum.
  CHECK(argmax(full({3}, -INFINITY), 0).item<int>() == 0);
  // 0-dim input: dim 0 or -1 reduce its one element.
  Tensor s = full({}, 2.5);
  CHECK(max(s, 0).item<float>() == 2.5f);
  CHECK(argmax(s, -1).item<int>() == 0);
  CHECK(argmin(s, 0, true).dim() == 0);
  Tensor sg = full({}, 2.5).requires_grad_();
  max(sg, 0).backward();
  CHECK(sg.grad().item<float>() == 1.f);
  CHECK(var(s, {0}, 0).item<float>() == 0.f);
  CHECK(sum(s, {-1}).item<float>() == 2.5f);
  CHECK_THROWS_WITH_AS(
      max(zeros({2, 0}), 1),
      "max: cannot reduce over dim 1 of size 0 (input shape [2, 0]); expected a non-empty dim", Error);
  CHECK_THROWS_WITH_AS(argmin(zeros({2, 3}), 2), doctest::Contains("argmin: dimension 2 is out of range"),
                       Error);
  CHECK_THROWS_WITH_AS(argmax(zeros({2}, kInt32), 0),
                       doctest::Contains("argmax: expected float32 for input, got int32"), Error);
}

TEST_CASE("max / min over a dim: gradcheck and strided inputs") {
  Generator gen(23);
  Tensor x = distinct({3, 4, 5}, gen);
  for (int64_t d = -3; d < 3; ++d) {
    CAPTURE(d);
    CHECK(gradcheck([d](const std::vector<Tensor>& in) { return max(in[0], d); }, {x}));
    CHECK(gradcheck([d](const std::vector<Tensor>& in) { return min(in[0], d, true); }, {x}));
  }
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return max(in[0].permute({1, 2, 0}), 1); }, {x}));
  Tensor p = x.permute({2, 0, 1}).slice(1, 0, 3, 2);
  for (int64_t d = 0; d < 3; ++d) {
    CHECK(quench::testing::bit_equal(max(p, d), max(p.contiguous(), d)));
    CHECK(quench::testing::bit_equal(argmin(p, d, true), argmin(p.contiguous(), d, true)));
  }
}

TEST_CASE("max / min over a dim: contiguous fast loops equal the generic strided reduction") {
  Generator gen(27);
  // Rows longer than the 16 lanes with a tail, NaN in a few rows, and every dim position.
  Tensor x = randn({5, 37, 33}, gen);
  float* px = x.data_ptr<float>();
  px[3 * 33 + 7] = kNaN;              // [0, 3, 7]
  px[4 * 37 * 33 + 36 * 33 + 32] = kNaN;  // [4, 36, 32]
  // The same values in a non-contiguous layout, which takes the generic reduction.
  Tensor y = x.transpose(0, 1).contiguous().transpose(0, 1);
  REQUIRE_FALSE(y.is_contiguous());
  for (int64_t d = 0; d < 3; ++d) {
    CAPTURE(d);
    CHECK(quench::testing::bit_equal(max(x, d), max(y, d)));
    CHECK(quench::testing::bit_equal(min(x, d, true), min(y, d, true)));
  }
  CHECK(std::isnan(max(x, 2).at({0, 3})));
  CHECK(std::isnan(min(x, 0).at({36, 32})));
}

TEST_CASE("max / min over all elements: value and even gradient split on ties") {
  Tensor x = tensor({1.f, 3.f, 3.f, -1.f, -1.f, -1.f}, {2, 3});
  CHECK(max(x).dim() == 0);
  CHECK(max(x).item<float>() == 3.f);
  CHECK(min(x).item<float>() == -1.f);
  Tensor xg = x.clone().requires_grad_();
  max(xg).backward();
  CHECK(xg.grad().to_vector<float>() == std::vector<float>{0, 0.5f, 0.5f, 0, 0, 0});
  xg = x.clone().requires_grad_();
  (min(xg) * 3.0).backward();
  CHECK(xg.grad().to_vector<float>() == std::vector<float>{0, 0, 0, 1, 1, 1});
  CHECK(std::isnan(max(tensor({1.f, kNaN})).item<float>()));
  xg = tensor({kNaN, 1.f, 3.f}).requires_grad_();
  max(xg).backward();
  CHECK(xg.grad().to_vector<float>() == std::vector<float>{1, 0, 0});  // to the NaN, as PyTorch
  CHECK(std::isnan(min(tensor({kNaN, 1.f})).item<float>()));
  Generator gen(24);
  Tensor d = distinct({4, 5}, gen);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return max(in[0]); }, {d}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return min(in[0].t()); }, {d}));
  CHECK_THROWS_WITH_AS(max(zeros({0, 3})),
                       "max: cannot reduce an empty tensor (shape [0, 3]); expected at least one element",
                       Error);
}

TEST_CASE("max / min over all elements: fast contiguous path equals the strided path") {
  Generator gen(25);
  // 3 chunks of 64K and a tail that is not a multiple of the 16 lanes.
  Tensor x = randn({200003}, gen);
  // The same values as a stride-2 view, which takes the generic reduction.
  Tensor sx = randn({200003, 2}, gen);
  sx.select(1, 0).copy_(x);
  Tensor v = sx.select(1, 0);
  REQUIRE_FALSE(v.is_contiguous());
  std::vector<float> xv = x.to_vector<float>();
  float want_max = xv[0], want_min = xv[0];
  for (float f : xv) {
    want_max = std::max(want_max, f);
    want_min = std::min(want_min, f);
  }
  CHECK(max(x).item<float>() == want_max);
  CHECK(min(x).item<float>() == want_min);
  CHECK(max(v).item<float>() == want_max);
  CHECK(min(v).item<float>() == want_min);
  // The extreme in the tail and a NaN in the middle.
  x.data_ptr<float>()[200002] = 100.f;
  CHECK(max(x).item<float>() == 100.f);
  x.data_ptr<float>()[70000] = kNaN;
  CHECK(std::isnan(max(x).item<float>()));
  CHECK(std::isnan(min(x).item<float>()));
}

TEST_CASE("reductions: bit-identical for 1 and 2 threads") {
  Generator gen(26);
  Tensor x = randn({300, 700}, gen);
  Tensor big = randn({300000}, gen);
  auto run = [&]() {
    Tensor xg = x.clone().requires_grad_(), bg = big.clone().requires_grad_();
    std::vector<Tensor> ys = {var(xg, {1}), var(xg, {0}, 0, true), var(xg), max(xg, 1),
                              min(xg, 0),   max(xg.t(), 0),        max(bg), min(bg)};
    Tensor total = zeros({});
    std::vector<Tensor> out;
    for (const Tensor& y : ys) {
      out.push_back(y.detach());
      total = total + y.sum();
    }
    total.backward();
    out.push_back(argmax(x, 1));
    out.push_back(argmin(x, 0));
    out.push_back(xg.grad());
    out.push_back(bg.grad());
    return out;
  };
  quench::testing::check_thread_invariant(run);
}

TEST_CASE("sum over rows (bias gradients): chunks of 64 rows in double, added in order, any thread count") {
  Generator gen(27);
  // 1500 rows: 23 whole chunks and one of 28; 128, 700 and 10 columns.
  for (int64_t cols : {128, 700, 10}) {
    CAPTURE(cols);
    Tensor x = randn({1500, cols}, gen);
    std::vector<float> v = x.to_vector<float>();
    std::vector<float> want(cols);
    for (int64_t j = 0; j < cols; ++j) {
      double total = 0.0;
      for (int64_t r0 = 0; r0 < 1500; r0 += 64) {
        double chunk = 0.0;
        for (int64_t r = r0; r < std::min<int64_t>(1500, r0 + 64); ++r) chunk += v[r * cols + j];
        total += chunk;
      }
      want[j] = static_cast<float>(total);
    }
    quench::testing::check_thread_invariant([&] { return std::vector<Tensor>{sum(x, {0}), mean(x, {0})}; });
    CHECK(quench::testing::bit_equal(sum(x, {0}), tensor(want, {cols})));
  }
  // One chunk of few rows and many columns: split over column blocks, still each column in row order.
  Tensor x = randn({40, 2500}, gen);
  std::vector<float> v = x.to_vector<float>(), want(2500);
  for (int64_t j = 0; j < 2500; ++j) {
    double a = 0.0;
    for (int64_t r = 0; r < 40; ++r) a += v[r * 2500 + j];
    want[j] = static_cast<float>(a);
  }
  quench::testing::check_thread_invariant([&] { return std::vector<Tensor>{sum(x, {0})}; });
  CHECK(quench::testing::bit_equal(sum(x, {0}), tensor(want, {2500})));
}
