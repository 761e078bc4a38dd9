// Element-wise ops: known values, gradcheck, broadcasting, strided inputs, errors, thread invariance.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/elementwise.hpp"
#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"
#include "kernels/vmath.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using quench::testing::gradcheck;
using quench::testing::max_abs_diff;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Element-wise |t - want| <= tol * max(1, |want|); NaN in `want` expects NaN.
void check_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-6) {
  std::vector<double> got = t.to_vector<double>();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      CHECK_MESSAGE(std::isnan(got[i]), "element ", i);
    } else {
      CHECK_MESSAGE(std::abs(got[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i])), "element ", i,
                    ": got ", got[i], " want ", want[i]);
    }
  }
}


using Fn = Tensor (*)(const Tensor&);
Tensor gelu_none(const Tensor& x) { return gelu(x); }
Tensor gelu_tanh(const Tensor& x) { return gelu(x, "tanh"); }
Tensor pow_3_5(const Tensor& x) { return pow(x, 3.5); }
Tensor pow_2(const Tensor& x) { return pow(x, 2.0); }
Tensor clamp_m1_1(const Tensor& x) { return clamp(x, -1.0, 1.0); }

}  // namespace

TEST_CASE("pointwise: math functions, known values") {
  Tensor x = tensor({0.f, 1.f, 4.f, 0.25f});
  check_values(exp(x), {1.0, std::exp(1.0), std::exp(4.0), std::exp(0.25)});
  check_values(log(tensor({1.f, 2.f, 0.5f})), {0.0, std::log(2.0), std::log(0.5)});
  CHECK(std::isinf(log(tensor({0.f})).item<float>()));
  check_values(sqrt(x), {0.0, 1.0, 2.0, 0.5});
  check_values(rsqrt(tensor({1.f, 4.f, 0.25f})), {1.0, 0.5, 2.0});
  check_values(abs(tensor({-3.f, 0.f, 2.5f, -0.f})), {3.0, 0.0, 2.5, 0.0});
  CHECK_FALSE(std::signbit(abs(tensor({-0.f})).item<float>()));
  // Method sugar is the same op.
  CHECK(quench::testing::bit_equal(x.exp(), exp(x)));
  CHECK(quench::testing::bit_equal(x.sqrt(), sqrt(x)));
  CHECK(quench::testing::bit_equal(x.abs(), abs(x)));
  CHECK(quench::testing::bit_equal(tensor({1.f, 3.f}).log(), log(tensor({1.f, 3.f}))));
  CHECK(quench::testing::bit_equal(x.pow(3.0), pow(x, 3.0)));
}

TEST_CASE("pointwise: pow, scalar and tensor exponents") {
  Tensor x = tensor({0.3f, -1.2f, 2.f, 0.7f});
  CHECK(quench::testing::bit_equal(pow(x, 2.0), x * x));
  CHECK(quench::testing::bit_equal(pow(x, 1.0), x));
  check_values(pow(x, 0.0), {1, 1, 1, 1});
  check_values(pow(x, 3.0), {0.027, -1.728, 8.0, 0.343}, 1e-6);
  // |x|^1.5, values from PyTorch 2.x.
  check_values(pow(abs(x), 1.5),
               {0.16431677341461182, 1.3145341873168945, 2.8284270763397217, 0.5856620073318481});
  check_values(pow(tensor({4.f, 0.25f}), -0.5), {0.5, 2.0});
  check_values(pow(tensor({4.f, 0.25f}), -1.0), {0.25, 4.0});
  CHECK(std::isnan(pow(tensor({-2.f}), 0.5).item<float>()));
  // Tensor exponent broadcasts [2, 3] ^ [3].
  Tensor a = tensor({1.5f, 2.f, 0.5f, 3.f, 0.8f, 1.1f}, {2, 3}), b = tensor({2.f, -0.5f, 1.5f});
  Tensor y = pow(a, b);
  CHECK(y.sizes() == Shape{2, 3});
  check_values(y, {2.25, 0.7071067690849304, 0.3535533845424652, 9.0, 1.1180340051651, 1.1536897420883179});
}

TEST_CASE("pointwise: clamp with and without bounds") {
  Tensor x = tensor({-2.f, 0.5f, 3.f, kNaN, -1.f, 1.f});
  check_values(clamp(x, -1.0, 1.0), {-1.0, 0.5, 1.0, NAN, -1.0, 1.0});
  check_values(clamp(x, NAN, 1.0), {-2.0, 0.5, 1.0, NAN, -1.0, 1.0});
  check_values(clamp(x, -1.0, NAN), {-1.0, 0.5, 3.0, NAN, -1.0, 1.0});
  check_values(clamp(x, NAN, NAN), {-2.0, 0.5, 3.0, NAN, -1.0, 1.0});
  // min > max: everything becomes max, as torch.clamp.
  check_values(clamp(tensor({-5.f, 0.f, 5.f}), 2.0, 1.0), {1.0, 1.0, 1.0});
  // Gradient passes where min <= x <= max, bounds included; NaN gets none.
  Tensor xg = x.detach().clone().requires_grad_();
  clamp(xg, -1.0, 1.0).sum().backward();
  CHECK(xg.grad().to_vector<float>() == std::vector<float>{0, 1, 0, 0, 1, 1});
}

TEST_CASE("pointwise: activations, known values (PyTorch formulas)") {
  Tensor x = tensor({1.f, -1.f, 0.5f, -2.5f, 3.f, 0.f});
  check_values(gelu(tensor({1.f})), {0.8413447460685429});
  check_values(gelu(tensor({1.f}), "tanh"), {0.8411919906082768});
  // Reference values: torch.nn.functional.gelu in float32.
  check_values(gelu(x), {0.8413447141647339, -0.1586552858352661, 0.3457311987876892, -0.015524178743362427,
                         2.995950222015381, 0.0});
  check_values(gelu(x, "tanh"), {0.8411920070648193, -0.15880799293518066, 0.3457140028476715,
                                 -0.015084296464920044, 2.9963626861572266, 0.0});
  check_values(tanh(x),
               {std::tanh(1.0), std::tanh(-1.0), std::tanh(0.5), std::tanh(-2.5), std::tanh(3.0), 0.0});
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  check_values(sigmoid(x), {sig(1), sig(-1), sig(0.5), sig(-2.5), sig(3), 0.5});
  check_values(relu(x), {1, 0, 0.5, 0, 3, 0});
  CHECK(std::isnan(relu(tensor({kNaN})).item<float>()));
  CHECK_THROWS_WITH_AS(gelu(x, "erf"),
                       doctest::Contains("gelu: approximate must be \"none\" or \"tanh\", got \"erf\""),
                       Error);
}

TEST_CASE("pointwise: activation gradients match PyTorch") {
  Tensor x0 = tensor({1.f, -1.f, 0.5f, -2.5f, 3.f});
  Tensor x = x0.clone().requires_grad_();
  gelu(x).sum().backward();
  check_values(x.grad(), {1.083315372467041, -0.08331543207168579, 0.867495059967041, -0.03761106729507446,
                          1.0119456052780151});
  x = x0.clone().requires_grad_();
  gelu(x, "tanh").sum().backward();
  check_values(x.grad(), {1.0829640626907349, -0.08296409249305725, 0.8673698902130127, -0.03795165196061134,
                          1.0115842819213867});
  // relu at 0 and abs at 0 give 0.
  x = tensor({0.f, -1.f, 2.f}).requires_grad_();
  relu(x).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0, 0, 1});
  x = tensor({0.f, -1.f, 2.f, kNaN}).requires_grad_();
  abs(x).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0, -1, 1, 0});  // sgn(NaN) = 0, as PyTorch
  // pow(x, 0.5) at 0 and below, as PyTorch: inf and NaN.
  x = tensor({0.f, -1.f}).requires_grad_();
  pow(x, 0.5).sum().backward();
  CHECK(std::isinf(x.grad().to_vector<float>()[0]));
  CHECK(std::isnan(x.grad().to_vector<float>()[1]));
}

TEST_CASE("pointwise: unary ops pass gradcheck, contiguous and strided") {
  Generator gen(11);
  Tensor n = randn({3, 4, 5}, gen);
  Tensor pos = rand({3, 4, 5}, gen) + 0.5;
  // Away from 0 for abs and relu, and away from the clamp bounds.
  Tensor away = where(gt(n, 0.0), n + 0.1, n - 0.1);
  Tensor big = n * 1.5;
  Tensor clampable = where(gt(abs(abs(big) - 1.0), 0.05), big, big * 1.2);
  struct Case {
    const char* name;
    Fn f;
    Tensor in;
  };
  const Case cases[] = {
      {"exp", [](const Tensor& t) { return exp(t); }, n},
      {"log", [](const Tensor& t) { return log(t); }, pos},
      {"sqrt", [](const Tensor& t) { return sqrt(t); }, pos},
      {"rsqrt", [](const Tensor& t) { return rsqrt(t); }, pos},
      {"abs", [](const Tensor& t) { return abs(t); }, away},
      {"clamp", clamp_m1_1, clampable},
      {"clamp_min_only", [](const Tensor& t) { return clamp(t, 0.0, NAN); }, away},
      {"pow_2", pow_2, n},
      {"pow_3.5", pow_3_5, pos},
      {"pow_-1.5", [](const Tensor& t) { return pow(t, -1.5); }, pos},
      {"tanh", [](const Tensor& t) { return tanh(t); }, n},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }, n},
      {"relu", [](const Tensor& t) { return relu(t); }, away},
      {"gelu", gelu_none, n},
      {"gelu_tanh", gelu_tanh, n},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    Fn f = c.f;
    CHECK(gradcheck([f](const std::vector<Tensor>& in) { return f(in[0]); }, {c.in}));
    // A permuted, sliced view gives the same values as its contiguous copy and passes gradcheck.
    Tensor v = c.in.permute({2, 0, 1}).slice(0, 0, 5, 2);
    CHECK_FALSE(v.is_contiguous());
    CHECK(quench::testing::bit_equal(f(v), f(v.contiguous())));
    CHECK(gradcheck(
        [f](const std::vector<Tensor>& in) {
          return f(in[0].permute({2, 0, 1}).slice(0, 1, 5, 2));
        },
        {c.in}));
  }
}

TEST_CASE("pointwise: pow with a tensor exponent passes gradcheck with broadcasting") {
  Generator gen(12);
  Tensor a = rand({2, 3, 4}, gen) + 0.5, b = randn({3, 1}, gen);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return pow(in[0], in[1]); }, {a, b}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return pow(in[0].transpose(0, 2), in[1]); },
                  {rand({4, 1, 2}, gen) + 0.5, randn({3, 1}, gen)}));
  // PyTorch's masks: 0^b with b >= 0 gives no exponent gradient; b == 0 gives no base gradient.
  Tensor base = tensor({0.f, 2.f}).requires_grad_(), e = tensor({2.f, 0.f}).requires_grad_();
  pow(base, e).sum().backward();
  CHECK(base.grad().to_vector<float>() == std::vector<float>{0.f, 0.f});
  check_values(e.grad(), {0.0, std::log(2.0)});
}

TEST_CASE("pointwise: maximum and minimum") {
  Tensor a = tensor({1.f, 5.f, -2.f, 3.f, kNaN, 0.f}, {2, 3}), b = tensor({2.f, 5.f, kNaN});
  check_values(maximum(a, b), {2, 5, NAN, 3, NAN, NAN});
  check_values(minimum(a, b), {1, 5, NAN, 2, NAN, NAN});
  // Ties split the gradient in half; broadcast gradients are summed back.
  Tensor x = tensor({1.f, 2.f, 3.f}).requires_grad_(), y = tensor({2.f}).requires_grad_();
  maximum(x, y).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{0.f, 0.5f, 1.f});
  CHECK(y.grad().to_vector<float>() == std::vector<float>{1.5f});
  x = tensor({1.f, 2.f, 3.f}).requires_grad_();
  y = tensor({2.f}).requires_grad_();
  minimum(x, y).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1.f, 0.5f, 0.f});
  CHECK(y.grad().to_vector<float>() == std::vector<float>{1.5f});
  // gradcheck on well separated values: a from {0, 1, ..}, b from {0.5, 1.5, ..}.
  Generator gen(13);
  Tensor p = randperm(24, gen).to(kFloat32).reshape({2, 3, 4}),
         q = randperm(12, gen).to(kFloat32).reshape({3, 4}) * 2.0 + 0.5;
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return maximum(in[0], in[1]); }, {p, q}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return minimum(in[0].transpose(1, 2), in[1].t()); },
                  {p, q}));
  CHECK_THROWS_WITH_AS(maximum(zeros({2, 3}), zeros({4})),
                       doctest::Contains("maximum: shapes [2, 3] and [4] do not broadcast"), Error);
  CHECK_THROWS_WITH_AS(minimum(zeros({2, 3}), zeros({3}, kInt32)),
                       doctest::Contains("minimum: expected float32 for second input, got int32 (shape [3])"),
                       Error);
}

TEST_CASE("pointwise: comparisons give u8 masks") {
  Tensor a = tensor({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3}), b = tensor({2.f, 2.f, 7.f});
  CHECK(eq(a, b).dtype() == kUInt8);
  CHECK(eq(a, b).sizes() == Shape{2, 3});
  CHECK(eq(a, b).to_vector<int>() == std::vector<int>{0, 1, 0, 0, 0, 0});
  CHECK(ne(a, b).to_vector<int>() == std::vector<int>{1, 0, 1, 1, 1, 1});
  CHECK(lt(a, b).to_vector<int>() == std::vector<int>{1, 0, 1, 0, 0, 1});
  CHECK(le(a, b).to_vector<int>() == std::vector<int>{1, 1, 1, 0, 0, 1});
  CHECK(gt(a, b).to_vector<int>() == std::vector<int>{0, 0, 0, 1, 1, 0});
  CHECK(ge(a, b).to_vector<int>() == std::vector<int>{0, 1, 0, 1, 1, 0});
  CHECK(gt(a, 3.0).to_vector<int>() == std::vector<int>{0, 0, 0, 1, 1, 1});
  CHECK(lt(a, 3.0).to_vector<int>() == std::vector<int>{1, 1, 0, 0, 0, 0});
  CHECK(le(a, 3.0).to_vector<int>() == std::vector<int>{1, 1, 1, 0, 0, 0});
  CHECK(ge(a, 3.0).to_vector<int>() == std::vector<int>{0, 0, 1, 1, 1, 1});
  CHECK(eq(a, 3.0).to_vector<int>() == std::vector<int>{0, 0, 1, 0, 0, 0});
  CHECK(ne(a, 3.0).to_vector<int>() == std::vector<int>{1, 1, 0, 1, 1, 1});
  // A float tensor compares with the scalar rounded to float, as PyTorch: 0.1f == 0.1.
  CHECK(eq(tensor({0.1f}), 0.1).item<int>() == 1);
  // NaN compares unequal to everything.
  CHECK(eq(tensor({kNaN}), tensor({kNaN})).item<int>() == 0);
  CHECK(ne(tensor({kNaN}), tensor({kNaN})).item<int>() == 1);
  // Integer tensors (argmax == labels), mixed dtypes promote; an int compares with a scalar exactly.
  Tensor labels = tensor({0, 2, 1}), pred = tensor({0, 1, 1});
  CHECK(eq(pred, labels).to_vector<int>() == std::vector<int>{1, 0, 1});
  CHECK(eq(labels, tensor({0.f, 2.f, 1.5f})).to_vector<int>() == std::vector<int>{1, 1, 0});
  CHECK(gt(labels, 1.5).to_vector<int>() == std::vector<int>{0, 1, 0});
  CHECK(eq(tensor({3}, {1}, kUInt8), tensor({3, 4}, {2}, kInt8)).to_vector<int>() == std::vector<int>{1, 0});
  // Strided operands and no gradient.
  Tensor x = a.t();
  CHECK(gt(x, b.unsqueeze(1).slice(0, 0, 3)).to_vector<int>() == std::vector<int>{0, 1, 0, 1, 0, 0});
  Tensor r = tensor({1.f}).requires_grad_();
  CHECK_FALSE(gt(r, 0.0).requires_grad());
  CHECK_THROWS_WITH_AS(lt(zeros({2, 3}), zeros({2})),
                       doctest::Contains("lt: shapes [2, 3] and [2] do not broadcast"), Error);
}

TEST_CASE("pointwise: where and masked_fill") {
  Tensor cond = tensor({1, 0}, {2, 1}, kUInt8);
  Tensor a = tensor({1.f, 2.f, 3.f}), b = tensor({10.f, 20.f, 30.f, 40.f, 50.f, 60.f}, {2, 3});
  Tensor y = where(cond, a, b);
  CHECK(y.sizes() == Shape{2, 3});
  CHECK(y.to_vector<float>() == std::vector<float>{1, 2, 3, 40, 50, 60});
  Tensor mask = tensor({0, 1, 1}, {3}, kUInt8);
  CHECK(masked_fill(b, mask, -1.5).to_vector<float>() == std::vector<float>{10, -1.5, -1.5, 40, -1.5, -1.5});
  // Both broadcast: x [3] and mask [2, 1] give [2, 3], as PyTorch's out-of-place masked_fill.
  CHECK(masked_fill(a, cond, 0.0).to_vector<float>() == std::vector<float>{0, 0, 0, 1, 2, 3});
  CHECK(std::isinf(masked_fill(a, mask, -INFINITY).to_vector<float>()[1]));
  // Gradients go where selected and sum over broadcast dims.
  Tensor ag = a.clone().requires_grad_(), bg = b.clone().requires_grad_();
  where(cond, ag, bg).sum().backward();
  CHECK(ag.grad().to_vector<float>() == std::vector<float>{1, 1, 1});
  CHECK(bg.grad().to_vector<float>() == std::vector<float>{0, 0, 0, 1, 1, 1});
  Generator gen(14);
  Tensor c3 = gt(randn({2, 3, 4}, gen), 0.0);
  CHECK(gradcheck([c3](const std::vector<Tensor>& in) { return where(c3, in[0], in[1]); },
                  {randn({3, 1}, gen), randn({2, 1, 4}, gen)}));
  CHECK(gradcheck(
      [c3](const std::vector<Tensor>& in) {
        return where(c3.permute({2, 1, 0}), in[0].t(), in[1]);
      },
      {randn({2, 3}, gen), randn({4, 1, 1}, gen)}));
  CHECK(gradcheck([c3](const std::vector<Tensor>& in) { return masked_fill(in[0], c3, 7.0); },
                  {randn({3, 4}, gen)}));
  CHECK(gradcheck(
      [c3](const std::vector<Tensor>& in) {
        return masked_fill(in[0].transpose(0, 2), c3.select(0, 1), -2.0);
      },
      {randn({4, 3, 2}, gen)}));
  CHECK_THROWS_WITH_AS(where(ones({3}), a, a),
                       doctest::Contains("where: expected uint8 for condition, got float32 (shape [3])"),
                       Error);
  CHECK_THROWS_WITH_AS(where(mask, a, zeros({2})),
                       doctest::Contains("where: shapes [3] and [2] do not broadcast"), Error);
  CHECK_THROWS_WITH_AS(masked_fill(a, ones({3}), 1.0),
                       doctest::Contains("masked_fill: expected uint8 for mask, got float32 (shape [3])"),
                       Error);
  CHECK_THROWS_WITH_AS(masked_fill(zeros({4, 3}), zeros({2}, kUInt8), 1.0),
                       doctest::Contains("masked_fill: shapes [4, 3] and [2] do not broadcast"), Error);
}

TEST_CASE("pointwise: dtype errors name the op and the shape") {
  Tensor i = zeros({2, 3}, kInt32);
  CHECK_THROWS_WITH_AS(exp(i), "exp: expected float32 for input, got int32 (shape [2, 3])", Error);
  CHECK_THROWS_WITH_AS(gelu(i), doctest::Contains("gelu: expected float32"), Error);
  CHECK_THROWS_WITH_AS(clamp(i, 0, 1), doctest::Contains("clamp: expected float32"), Error);
  CHECK_THROWS_WITH_AS(pow(zeros({2, 3}), zeros({3, 2})),
                       doctest::Contains("pow: shapes [2, 3] and [3, 2] do not broadcast"), Error);
  CHECK_THROWS_WITH_AS(exp(Tensor()), doctest::Contains("exp: input is undefined"), Error);
}

TEST_CASE("pointwise: results are bit-identical for 1 and 2 threads") {
  Generator gen(15);
  // 2 x 70000 rows: long enough that each row and the row set are split across threads.
  Tensor x = randn({2, 70000}, gen), e = rand({70000}, gen) + 0.5, c = gt(randn({2, 1}, gen), 0.0);
  Tensor xt = randn({70000, 2}, gen).t();  // strided
  auto run = [&]() {
    std::vector<Tensor> out;
    Tensor xg = x.clone().requires_grad_(), eg = e.clone().requires_grad_();
    std::vector<Tensor> ys = {exp(xg),
                              log(eg),
                              sqrt(eg),
                              rsqrt(eg),
                              abs(xg),
                              clamp(xg, -0.5, 0.5),
                              pow(xg, 3.5),
                              pow(eg, xg),
                              tanh(xg),
                              sigmoid(xg),
                              relu(xg),
                              gelu(xg),
                              gelu(xg, "tanh"),
                              maximum(xg, eg),
                              minimum(xg, xt),
                              where(c, xg, eg),
                              masked_fill(xg, gt(xt, 0.0), 1.0),
                              gelu(xt)};
    Tensor total = zeros({});
    for (const Tensor& y : ys) {
      out.push_back(y.detach());
      total = total + y.sum();
    }
    out.push_back(ge(x, xt));
    total.backward();
    out.push_back(xg.grad());
    out.push_back(eg.grad());
    return out;
  };
  quench::testing::check_thread_invariant(run);
}

TEST_CASE("vmath: vectorizable exp, erf, tanh against libm (their reference twins)") {
  // A dense grid over every range the approximations switch on, plus edge values.
  std::vector<float> xs;
  for (int i = 0; i <= 400000; ++i) xs.push_back(-110.f + 205.f * static_cast<float>(i) / 400000.f);
  for (int i = 0; i <= 20000; ++i) xs.push_back(-1.f + 2.f * static_cast<float>(i) / 20000.f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 3e-4f, 5e-4f, 88.7f, 88.72f, 88.73f, -87.3f, -103.f, -103.9f,
                  -104.f, 3.999f, 4.f, 4.001f, 7.9f, 7.91f})
    xs.push_back(v);
  Tensor x = tensor(xs);
  Tensor e = detail::map_unary(x, "vexp", [](float v) { return kernels::vexp(v); });
  Tensor r = detail::map_unary(x, "verf", [](float v) { return kernels::verf(v); });
  Tensor t = detail::map_unary(x, "vtanh", [](float v) { return kernels::vtanh(v); });
  const float* pe = e.data_ptr<float>();
  const float* pr = r.data_ptr<float>();
  const float* pt = t.data_ptr<float>();
  double worst_exp = 0, worst_denormal = 0, worst_erf = 0, worst_tanh = 0, worst_tanh_rel = 0;
  int overflow_misses = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double xv = xs[i];
    const double re = std::exp(xv);
    if (re > 3.4028234663852886e38) {
      overflow_misses += !std::isinf(pe[i]);
    } else if (re < 1.1754943508222875e-38) {
      worst_denormal = std::max(worst_denormal, std::abs(pe[i] - re));
    } else {
      worst_exp = std::max(worst_exp, std::abs(pe[i] - re) / re);
    }
    worst_erf = std::max(worst_erf, std::abs(pr[i] - std::erf(xv)));
    const double rt = std::tanh(xv);
    worst_tanh = std::max(worst_tanh, std::abs(pt[i] - rt));
    if (rt != 0) worst_tanh_rel = std::max(worst_tanh_rel, std::abs(pt[i] - rt) / std::abs(rt));
  }
  CHECK(worst_exp <= 2e-7);
  CHECK(overflow_misses == 0);
  CHECK(worst_denormal <= 1.5e-45);  // within one denormal step
  CHECK(worst_erf <= 5e-7);
  CHECK(worst_tanh <= 2e-7);
  CHECK(worst_tanh_rel <= 3e-7);
  MESSAGE("vmath worst error: exp rel ", worst_exp, ", erf abs ", worst_erf, ", tanh abs ", worst_tanh,
          " rel ", worst_tanh_rel);
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {kNaN, inf, -inf}) {
    CAPTURE(v);
    const float ve = kernels::vexp(v), vr = kernels::verf(v), vt = kernels::vtanh(v);
    if (std::isnan(v)) {
      CHECK((std::isnan(ve) && std::isnan(vr) && std::isnan(vt)));
    } else {
      CHECK(ve == static_cast<float>(std::exp(v)));
      CHECK(vr == std::erf(v));
      CHECK(vt == std::tanh(v));
    }
  }
  CHECK(std::signbit(kernels::vtanh(-0.f)));
  CHECK(kernels::vexp(0.f) == 1.f);
}

TEST_CASE("pointwise: the AVX-512, AVX2 and baseline loops give the same bits") {
  Generator gen(16);
  // 1001 columns: every loop's vector tail; the last row's edge values go through erf's and exp's
  // clamps.
  const std::vector<float> edges{0.f, -0.f, 1e-40f, -1e-40f, 5.65f, -5.65f, 13.f, -13.f, 1e30f, -1e30f,
                                 std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                 kNaN};
  std::vector<float> edge_row(1001);
  for (size_t i = 0; i < edge_row.size(); ++i) edge_row[i] = edges[i % edges.size()];
  Tensor x = cat({randn({3, 1001}, gen) * 4.0, tensor(edge_row, {1, 1001})}, 0);
  Tensor y = rand({1001}, gen) + 0.5, g = randn({4, 1001}, gen);
  auto run = [&]() {
    std::vector<Tensor> out{exp(x),    gelu(x),   gelu(x, "tanh"),       sigmoid(x), tanh(x),
                            x * y + x, pow(y, x), where(gt(x, y), x, y), abs(x),     clamp(x, -1.0, 2.0)};
    // The GELU gradients (the exact one through kernels::gelu_backward_rows).
    for (const char* approx : {"none", "tanh"}) {
      Tensor xg = x.clone().requires_grad_();
      gelu(xg, approx).backward(g);
      out.push_back(xg.grad());
    }
    return out;
  };
  const kernels::Isa prev = kernels::active_isa();
  kernels::set_isa(kernels::Isa::ref);
  std::vector<Tensor> base = run();
  for (int i = 1; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
    // (CAPTURE evaluates its expression only when it reports, so the switch is a statement.)
    const std::string_view isa = kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i)));
    CAPTURE(isa);
    std::vector<Tensor> best = run();
    for (size_t k = 0; k < base.size(); ++k) {
      CAPTURE(k);
      CHECK(quench::testing::bit_equal(base[k], best[k]));
    }
  }
  kernels::set_isa(prev);
}
