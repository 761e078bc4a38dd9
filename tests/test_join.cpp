// cat and stack.
#include <doctest/doctest.h>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using quench::testing::gradcheck;
using quench::testing::max_abs_diff;
using TL = std::vector<Tensor>;

TEST_CASE("cat: known values along every dim, int tensors, empty 1-D tensors skipped") {
  Tensor a = arange(6).reshape({2, 3}), b = arange(6, 10).reshape({2, 2});
  Tensor c = cat({a, b}, 1);
  CHECK(c.sizes() == Shape{2, 5});
  CHECK(c.to_vector<float>() == std::vector<float>{0, 1, 2, 6, 7, 3, 4, 5, 8, 9});
  CHECK(cat({a, b}, -1).to_vector<float>() == c.to_vector<float>());
  Tensor d = cat({a, a.narrow(0, 1, 1)}, 0);
  CHECK(d.sizes() == Shape{3, 3});
  CHECK(d.to_vector<float>() == std::vector<float>{0, 1, 2, 3, 4, 5, 3, 4, 5});
  // Middle dim of a 3-D tensor, non-contiguous input.
  Tensor x = arange(24).reshape({2, 3, 4}), y = arange(8).reshape({2, 1, 4});
  Tensor z = cat({x.transpose(0, 0), y, x}, 1);
  CHECK(z.sizes() == Shape{2, 7, 4});
  CHECK(z.at({1, 3, 2}) == y.at({1, 0, 2}));
  CHECK(z.at({1, 6, 3}) == x.at({1, 2, 3}));
  Tensor xt = x.transpose(1, 2);  // [2, 4, 3]
  CHECK(max_abs_diff(cat({xt, xt}, 2), cat({xt.contiguous(), xt.contiguous()}, 2)) == 0.0);
  CHECK(cat({tensor({1, 2}), tensor({3})}, 0).to_vector<int32_t>() == std::vector<int32_t>{1, 2, 3});
  CHECK(cat({zeros({0}), a, zeros({0})}, 1).to_vector<float>() == a.to_vector<float>());
}

TEST_CASE("cat and stack: gradcheck") {
  Generator gen(1);
  Tensor a = randn({2, 3, 4}, gen), b = randn({2, 1, 4}, gen), c = randn({2, 2, 4}, gen);
  CHECK(gradcheck([](const TL& in) { return cat({in[0], in[1], in[2]}, 1); }, {a, b, c}));
  CHECK(gradcheck([](const TL& in) { return cat({in[0], in[0] * 2.0}, 0); }, {a}));
  CHECK(gradcheck([](const TL& in) { return cat({in[0].transpose(1, 2), in[0].transpose(1, 2)}, -1); }, {a}));
  for (int64_t d : {0, 1, 2, 3, -1}) {
    CAPTURE(d);
    CHECK(gradcheck([d](const TL& in) { return stack({in[0], in[1]}, d); }, {a, randn({2, 3, 4}, gen)}));
  }
  // A tensor that needs no gradient next to one that does.
  Tensor w = randn({3}, gen).requires_grad_();
  cat({zeros({2}), w}, 0).sum().backward();
  CHECK(w.grad().to_vector<float>() == std::vector<float>{1, 1, 1});
}

TEST_CASE("stack: known values") {
  Tensor a = tensor({1.f, 2.f}), b = tensor({3.f, 4.f});
  CHECK(stack({a, b}, 0).to_vector<float>() == std::vector<float>{1, 2, 3, 4});
  Tensor s = stack({a, b}, 1);
  CHECK(s.sizes() == Shape{2, 2});
  CHECK(s.to_vector<float>() == std::vector<float>{1, 3, 2, 4});
  CHECK(stack({scalar_tensor(1.0), scalar_tensor(2.0)}, 0).to_vector<float>() == std::vector<float>{1, 2});
}

TEST_CASE("cat and stack: errors name the op and the shapes") {
  CHECK_THROWS_WITH_AS(cat({zeros({2, 3}), zeros({3, 3})}, 1),
                       "cat: tensor 1 has shape [3, 3] but tensor 0 has shape [2, 3]; expected equal sizes "
                       "except in dim 1",
                       Error);
  CHECK_THROWS_WITH_AS(cat({zeros({2, 3}), zeros({2, 3, 1})}, 0), doctest::Contains("tensor 1 has shape [2, 3, 1]"), Error);
  CHECK_THROWS_WITH_AS(cat({zeros({2}), zeros({2}, kInt32)}, 0),
                       "cat: tensor 1 has dtype int32, expected float32 like tensor 0", Error);
  CHECK_THROWS_WITH_AS(cat({}, 0), "cat: expected a non-empty list of tensors", Error);
  CHECK_THROWS_WITH_AS(cat({zeros({2})}, 1), doctest::Contains("cat: dimension 1 is out of range"), Error);
  CHECK_THROWS_WITH_AS(stack({zeros({2, 3}), zeros({3, 2})}, 0),
                       "stack: tensor 1 has shape [3, 2] but tensor 0 has shape [2, 3]; stack expects all "
                       "tensors of the same shape",
                       Error);
  CHECK_THROWS_WITH_AS(stack({zeros({2})}, 3), doctest::Contains("stack: dimension 3 is out of range"), Error);
}

TEST_CASE("cat: 1 and 2 threads give bit-identical results") {
  Generator gen(2);
  Tensor a = randn({200, 64}, gen), b = randn({200, 32}, gen), c = randn({200, 64}, gen);
  Tensor g = randn({200, 160}, gen);
  const int prev = get_num_threads();
  TL res[2];
  for (int n : {1, 2}) {
    set_num_threads(n);
    TL in{a.clone().requires_grad_(), b.clone().requires_grad_(), c.clone().requires_grad_()};
    Tensor y = cat(in, 1);
    y.backward(g);
    res[n - 1] = {y.detach(), in[0].grad(), in[1].grad(), in[2].grad()};
  }
  set_num_threads(prev);
  for (size_t i = 0; i < res[0].size(); ++i) CHECK(res[0][i].to_vector<float>() == res[1][i].to_vector<float>());
  CHECK(max_abs_diff(res[0][2], g.narrow(1, 64, 32)) == 0.0);
}
