#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/ops.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using quench::testing::gradcheck;

TEST_CASE("autograd: gradients accumulate over multiple uses") {
  Tensor x = tensor({2.f, 3.f}).requires_grad_();
  Tensor y = (x * x + x * 3.0).sum();  // dy/dx = 2x + 3
  y.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{7.f, 9.f});
  // A second backward on a new graph accumulates into .grad.
  (x * 2.0).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{9.f, 11.f});
}

TEST_CASE("autograd: post-accumulate-grad hooks see each leaf's final gradient, once per backward") {
  Tensor x = tensor({2.f, 3.f}).requires_grad_();
  Tensor w = tensor({1.f, -1.f}).requires_grad_();
  std::vector<std::vector<float>> seen;
  std::vector<std::string> order;
  const int64_t hx = x.register_post_accumulate_grad_hook([&](const Tensor& leaf) {
    seen.push_back(leaf.grad().to_vector<float>());
    order.push_back("x");
  });
  w.register_post_accumulate_grad_hook([&](const Tensor&) { order.push_back("w"); });
  // x is used three times: the hook runs once, after all three contributions are in.
  (x * x + x * 3.0 + x * w).sum().backward();  // dy/dx = 2x + 3 + w
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == std::vector<float>{8.f, 8.f});
  CHECK(order.size() == 2);
  // The next backward accumulates into .grad, and the hook sees the sum.
  (x * 2.0).sum().backward();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1] == std::vector<float>{10.f, 10.f});
  x.remove_post_accumulate_grad_hook(hx);
  (x * 2.0).sum().backward();
  CHECK(seen.size() == 2);
  // Only leaves that require grad take hooks.
  CHECK_THROWS_WITH_AS((x * 2.0).register_post_accumulate_grad_hook([](const Tensor&) {}),
                       doctest::Contains("is not a leaf that requires grad"), Error);
  CHECK_THROWS_AS(tensor({1.f}).register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
}

TEST_CASE("autograd: a chain of 10000 ops does not overflow the stack") {
  Tensor x = tensor({1.f}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 10000; ++i) y = y * 1.0001;
  y.sum().backward();
  CHECK(x.grad().item<float>() == doctest::Approx(std::pow(1.0001, 10000)).epsilon(1e-3));
}

TEST_CASE("autograd: graph is freed after backward unless retained") {
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  Tensor y = (x * x).sum();
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{4.f, 8.f});
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("second time"), Error);
}

TEST_CASE("autograd: detach and NoGradGuard record nothing") {
  Tensor x = tensor({1.f}).requires_grad_();
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  {
    NoGradGuard ng;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
  }
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("autograd: non-scalar backward needs a gradient") {
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  CHECK_THROWS_WITH_AS((x * 2.0).backward(), doctest::Contains("only for scalar outputs"), Error);
}

namespace {
// y = x^3 defined outside the engine, as quant/ and distill/ will.
struct Cube : autograd::Function<Cube> {
  static Tensor forward(autograd::AutogradContext* ctx, const Tensor& x) {
    ctx->save_for_backward({x});
    return x * x * x;
  }
  static tensor_list backward(autograd::AutogradContext* ctx, tensor_list g) {
    Tensor x = ctx->get_saved_variables()[0];
    return {g[0] * x * x * 3.0};
  }
};
struct BadShape : autograd::Function<BadShape> {
  static Tensor forward(autograd::AutogradContext*, const Tensor& x) { return x * 1.0; }
  static tensor_list backward(autograd::AutogradContext*, tensor_list) { return {zeros({7})}; }
};
}  // namespace

TEST_CASE("autograd: custom Function forward and backward") {
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return Cube::apply(in[0]); },
                  {tensor({0.5f, -1.f, 2.f})}));
  Tensor x = tensor({1.f, 2.f}).requires_grad_();
  CHECK_THROWS_WITH_AS(BadShape::apply(x).sum().backward(), doctest::Contains("shape [7]"), Error);
}

TEST_CASE("autograd: arithmetic and views pass gradcheck") {
  Generator gen(3);
  Tensor a = randn({2, 3, 4}, gen), b = randn({3, 1}, gen), c = randn({4}, gen);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0] + in[1] * 2.0 - in[2]; }, {a, b, c}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[1] / (in[2] * in[2] + 1.0); },
                  {a, b, c}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return 2.0 / (in[0] * in[0] + 1.0) - in[0] / 3.0; }, {a}));
  CHECK(gradcheck(
      [](const std::vector<Tensor>& in) {
        return in[0].permute({2, 0, 1}).narrow(0, 1, 2).slice(2, 0, 3, 2).reshape({2, -1}) * 1.5;
      },
      {a}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0].select(1, 2).unsqueeze(0).expand({3, 2, 4}); }, {a}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0].t().contiguous().clone(); }, {randn({3, 5}, gen)}));
}

TEST_CASE("autograd: sum and mean pass gradcheck") {
  Generator gen(4);
  Tensor a = randn({3, 4, 5}, gen);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return sum(in[0], {1}); }, {a}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return mean(in[0], {0, 2}, true); }, {a}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0].sum(); }, {a}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return in[0].permute({2, 1, 0}).mean({0}); }, {a}));
}

TEST_CASE("autograd: matmul and linear pass gradcheck in every layout") {
  Generator gen(5);
  Tensor a = randn({2, 3, 4}, gen), b = randn({4, 5}, gen), bb = randn({2, 4, 5}, gen);
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, bb}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0].transpose(1, 2), in[1].transpose(1, 2)); },
                  {randn({2, 4, 3}, gen), randn({2, 5, 4}, gen)}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                  {randn({4}, gen), randn({4, 3}, gen)}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
                  {randn({1, 3, 4}, gen), randn({2, 1, 4, 2}, gen)}));
  CHECK(gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
                  {randn({2, 3, 4}, gen), randn({5, 4}, gen), randn({5}, gen)}));
}

TEST_CASE("matmul: shape errors name the op and both shapes") {
  CHECK_THROWS_WITH_AS(matmul(zeros({4, 3}), zeros({5, 2})),
                       "matmul: inner dimensions differ: [4, 3] @ [5, 2]; expected the last dim of the "
                       "first (3) to equal the second-to-last of the second (5)",
                       Error);
  CHECK_THROWS_WITH_AS(zeros({2, 3}) + zeros({4}), doctest::Contains("[2, 3] and [4] do not broadcast"), Error);
}

TEST_CASE("matmul: known values") {
  Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3}).to(kFloat32);
  Tensor b = tensor({7, 8, 9, 10, 11, 12}, {3, 2}).to(kFloat32);
  CHECK(matmul(a, b).to_vector<float>() == std::vector<float>{58, 64, 139, 154});
  CHECK(matmul(b.t(), a.t()).to_vector<float>() == std::vector<float>{58, 139, 64, 154});
}
