// attention_probs / attention_apply (the fused multi-head attention) against the composed ops they
// replace, gradcheck, thread invariance and shape errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using quench::testing::check_thread_invariant;
using quench::testing::gradcheck;
using quench::testing::max_abs_diff;
using TL = std::vector<Tensor>;

namespace {

// The unfused attention (what nn::Attention ran before the fused ops): {probs, out}.
TL composed(const Tensor& qkv, int64_t H, double scale, const Tensor& mask) {
  const int64_t B = qkv.size(0), N = qkv.size(1), D = qkv.size(2) / 3;
  Tensor p = qkv.reshape({B, N, 3, H, D / H}).permute({2, 0, 3, 1, 4});
  Tensor q = p.select(0, 0), k = p.select(0, 1), v = p.select(0, 2);
  Tensor scores = matmul(q, k.transpose(-2, -1)) * scale;
  if (mask.defined())
    scores = masked_fill(scores, mask.view({B, 1, 1, N}), -std::numeric_limits<double>::infinity());
  Tensor probs = softmax(scores, -1);
  return {probs, matmul(probs, v).transpose(1, 2).reshape({B, N, D})};
}

TL fused(const Tensor& qkv, int64_t H, double scale, const Tensor& mask) {
  Tensor probs = attention_probs(qkv, H, scale, mask);
  return {probs, attention_apply(probs, qkv, H)};
}

// Outputs and the qkv gradient of L = sum(out * r_out) + sum(probs * r_probs).
template <class F>
TL run(F f, const Tensor& qkv_in, int64_t H, const Tensor& mask, const Tensor& r_probs, const Tensor& r_out) {
  Tensor qkv = qkv_in.detach().clone().requires_grad_(true);
  TL o = f(qkv, H, 1.0 / std::sqrt(static_cast<double>(qkv.size(2) / 3 / H)), mask);
  ((o[0] * r_probs).sum() + (o[1] * r_out).sum()).backward();
  return {o[0].detach(), o[1].detach(), qkv.grad()};
}

Tensor key_mask(int64_t B, int64_t N) {
  Tensor m = zeros({B, N}, kUInt8);
  uint8_t* p = m.data_ptr<uint8_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = N - 1 - b % 3; n < N; ++n) p[b * N + n] = 1;  // last 1..3 keys padded
  return m;
}

}  // namespace

TEST_CASE("attention: fused probs, output and qkv gradient equal the composed ops") {
  Generator gen(7);
  const int64_t B = 3, N = 50, D = 128, H = 4;  // the reference ViT's attention shape, small batch
  Tensor qkv = randn({B, N, 3 * D}, gen);
  Tensor rp = randn({B, H, N, N}, gen), ro = randn({B, N, D}, gen);
  for (bool masked : {false, true}) {
    CAPTURE(masked);
    Tensor mask = masked ? key_mask(B, N) : Tensor();
    TL a = run(fused, qkv, H, mask, rp, ro), b = run(composed, qkv, H, mask, rp, ro);
    for (size_t i = 0; i < a.size(); ++i) {
      CAPTURE(i);
      REQUIRE(a[i].sizes() == b[i].sizes());
      // The same FMA chains as the composed matmuls; the softmax rows sum over 16 float lanes
      // instead of softmax's 4 double ones, which moves a probability by at most a few ulps.
      CHECK(max_abs_diff(a[i], b[i]) <= 1e-6);
    }
    if (masked) {
      // padded keys get exactly zero probability
      const float* p = a[0].data_ptr<float>();
      CHECK(p[(0 * H * N + 0) * N + N - 1] == 0.f);
      CHECK(p[(2 * H * N + 5) * N + N - 3] == 0.f);
    }
  }
}

TEST_CASE("attention: the first Q queries alone give the first Q rows of the full result and its gradient") {
  Generator gen(9);
  const int64_t B = 3, N = 50, D = 128, H = 4;
  Tensor qkv = randn({B, N, 3 * D}, gen);
  const double scale = 1.0 / std::sqrt(32.0);
  for (int64_t Q : {1, 7, 50}) {
    for (bool masked : {false, true}) {
      CAPTURE(Q);
      CAPTURE(masked);
      Tensor mask = masked ? key_mask(B, N) : Tensor();
      // Upstream gradients that vanish past the first Q queries: the full result's other rows are dead.
      Tensor rp = cat({randn({B, H, Q, N}, gen), zeros({B, H, N - Q, N})}, 2);
      Tensor ro = cat({randn({B, Q, D}, gen), zeros({B, N - Q, D})}, 1);
      TL full = run(fused, qkv, H, mask, rp, ro);
      auto prefix = [&](const Tensor& x, int64_t heads, double sc, const Tensor& m) {
        Tensor probs = attention_probs(x, heads, sc, m, Q);
        return TL{probs, attention_apply(probs, x, heads)};
      };
      TL part = run(prefix, qkv, H, mask, rp.narrow(2, 0, Q), ro.narrow(1, 0, Q));
      REQUIRE(part[0].sizes() == Shape{B, H, Q, N});
      REQUIRE(part[1].sizes() == Shape{B, Q, D});
      // Each row is the same FMA chains and softmax sums; a zero upstream row adds exact zeros.
      CHECK(testing::bit_equal(part[0], full[0].narrow(2, 0, Q)));
      CHECK(testing::bit_equal(part[1], full[1].narrow(1, 0, Q)));
      CHECK(max_abs_diff(part[2], full[2]) == 0.0);
    }
  }
  CHECK_THROWS_WITH_AS(attention_probs(qkv, H, scale, Tensor(), 51), doctest::Contains("queries (51)"), Error);
}

TEST_CASE("attention: the one-op attention() equals attention_apply(attention_probs()) and its qkv gradient") {
  Generator gen(12);
  const int64_t B = 3, N = 50, D = 128, H = 4;
  Tensor qkv = randn({B, N, 3 * D}, gen);
  const double scale = 1.0 / std::sqrt(32.0);
  for (int64_t Q : {1, 50}) {
    for (bool masked : {false, true}) {
      CAPTURE(Q);
      CAPTURE(masked);
      Tensor mask = masked ? key_mask(B, N) : Tensor();
      Tensor g = randn({B, Q, D}, gen);
      auto two_ops = [&](const TL& in) {
        return attention_apply(attention_probs(in[0], H, scale, mask, Q), in[0], H);
      };
      auto one_op = [&](const TL& in) { return attention(in[0], H, scale, mask, Q); };
      TL a = testing::forward_backward(one_op, {qkv}, g), b = testing::forward_backward(two_ops, {qkv}, g);
      CHECK(testing::bit_equal(a[0], b[0]));
      {  // without a gradient to come the probabilities stay in scratch: the same output
        NoGradGuard ng;
        CHECK(testing::bit_equal(attention(qkv, H, scale, mask, Q), a[0]));
      }
      // The two-op gradient adds exact zeros (dq, dk + 0; 0 + dv): equal up to the sign of zero.
      CHECK(max_abs_diff(a[1], b[1]) == 0.0);
      check_thread_invariant([&] { return testing::forward_backward(one_op, {qkv}, g); });
    }
  }
  CHECK(gradcheck([&](const TL& in) { return attention(in[0], 2, 0.5, key_mask(2, 5)); }, {randn({2, 5, 24}, gen)}));
  CHECK(gradcheck([&](const TL& in) { return attention(in[0], 2, 0.5, Tensor(), 2); }, {randn({2, 5, 24}, gen)}));
  CHECK_THROWS_WITH_AS(attention(zeros({2, 5, 25}), 2, 1.0), doctest::Contains("attention"), Error);
  CHECK_THROWS_WITH_AS(attention(zeros({2, 5, 24}), 2, 1.0, zeros({2, 4}, kUInt8)), doctest::Contains("[2, 5]"),
                       Error);
}

TEST_CASE("attention: gradcheck of attention_probs and attention_apply, with and without a mask") {
  Generator gen(3);
  const int64_t B = 2, N = 5, D = 8, H = 2;
  Tensor qkv = randn({B, N, 3 * D}, gen);
  for (bool masked : {false, true}) {
    CAPTURE(masked);
    Tensor mask = masked ? key_mask(B, N) : Tensor();
    CHECK(gradcheck([&](const TL& in) { return attention_probs(in[0], H, 0.5, mask); }, {qkv}));
    CHECK(gradcheck(
        [&](const TL& in) { return attention_apply(attention_probs(in[0], H, 0.5, mask), in[0], H); },
        {qkv}));
  }
  Tensor probs = softmax(randn({B, H, N, N}, gen), -1);
  CHECK(gradcheck([&](const TL& in) { return attention_apply(in[0], in[1], H); }, {probs, qkv}));
  // Two of the five tokens ask.
  CHECK(gradcheck(
      [&](const TL& in) { return attention_apply(attention_probs(in[0], H, 0.5, key_mask(B, N), 2), in[0], H); },
      {qkv}));
  CHECK(gradcheck([&](const TL& in) { return attention_apply(in[0], in[1], H); },
                  {softmax(randn({B, H, 2, N}, gen), -1), qkv}));
}

TEST_CASE("attention: bit-identical for 1 and 2 threads") {
  Generator gen(11);
  const int64_t B = 4, N = 17, D = 32, H = 4;
  Tensor qkv = randn({B, N, 3 * D}, gen), rp = randn({B, H, N, N}, gen), ro = randn({B, N, D}, gen);
  Tensor mask = key_mask(B, N);
  check_thread_invariant([&] { return run(fused, qkv, H, mask, rp, ro); });
}

TEST_CASE("attention: shape and dtype errors name the op and the shapes") {
  Tensor qkv = zeros({2, 5, 24});
  CHECK_THROWS_WITH_AS(attention_probs(zeros({2, 5, 25}), 2, 1.0), doctest::Contains("attention_probs"),
                       Error);
  CHECK_THROWS_AS(attention_probs(zeros({10, 24}), 2, 1.0), Error);
  CHECK_THROWS_WITH_AS(attention_probs(qkv, 2, 1.0, zeros({2, 4}, kUInt8)), doctest::Contains("[2, 5]"),
                       Error);
  CHECK_THROWS_AS(attention_probs(qkv, 2, 1.0, zeros({2, 5})), Error);  // f32 mask
  CHECK_THROWS_WITH_AS(attention_apply(zeros({2, 2, 5, 4}), qkv, 2), doctest::Contains("attention_apply"),
                       Error);
  CHECK_THROWS_AS(attention_probs(qkv.to(kInt32), 2, 1.0), Error);
}

TEST_CASE(
    "attention, layer_norm, column sums: the AVX2 / AVX-512 and baseline paths agree bit for bit") {
  Generator gen(5);
  const int64_t B = 2, N = 13, D = 24, H = 3;
  Tensor qkv = randn({B, N, 3 * D}, gen), rp = randn({B, H, N, N}, gen), ro = randn({B, N, D}, gen);
  Tensor x = randn({37, 128}, gen) * 3.0, w = randn({128}, gen), b = randn({128}, gen),
         g = randn({37, 128}, gen);
  Tensor x37 = randn({9, 37}, gen) * 2.0 + 5.0, w37 = randn({37}, gen), b37 = randn({37}, gen),
         g37 = randn({9, 37}, gen);
  Tensor mask = key_mask(B, N), wide = randn({300, 301}, gen);
  auto both = [&] {
    TL a = run(fused, qkv, H, mask, rp, ro);
    TL one = testing::forward_backward([&](const TL& in) { return attention(in[0], H, 0.3, mask); }, {qkv}, ro);
    a.insert(a.end(), one.begin(), one.end());
    TL l = quench::testing::forward_backward(
        [](const TL& in) { return layer_norm(in[0], {128}, in[1], in[2], 1e-6); }, {x, w, b}, g);
    TL tail = quench::testing::forward_backward(  // rows of 37: the lanes' scalar tail
        [](const TL& in) { return layer_norm(in[0], {37}, in[1], in[2], 1e-6); }, {x37, w37, b37}, g37);
    l.insert(l.end(), tail.begin(), tail.end());
    TL plain = quench::testing::forward_backward(  // no affine parameters: the other row branches
        [](const TL& in) { return layer_norm(in[0], {128}, Tensor(), Tensor(), 1e-6); }, {x}, g);
    l.insert(l.end(), plain.begin(), plain.end());
    l.push_back(x.sum({0}));
    l.push_back(wide.sum({0}));
    return std::make_pair(a, l);
  };
  const kernels::Isa prev = kernels::active_isa();
  kernels::set_isa(kernels::Isa::ref);
  auto base = both();
  // sgemm_small and the softmax rows compute the same operations on every path (one FMA chain per
  // product element, the same lane order for every sum); so do layer_norm's and the column sums'
  // AVX2 and AVX-512 compiles of one lane code.
  for (int level = 1; level <= static_cast<int>(kernels::cpu_isa()); ++level) {
    const std::string_view isa = kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(level)));
    CAPTURE(isa);
    auto best = both();
    for (size_t i = 0; i < base.first.size(); ++i) {
      CAPTURE(i);
      CHECK(base.first[i].to_vector<float>() == best.first[i].to_vector<float>());
    }
    for (size_t i = 0; i < base.second.size(); ++i) {
      CAPTURE(i);
      CHECK(base.second[i].to_vector<float>() == best.second[i].to_vector<float>());
    }
  }
  kernels::set_isa(prev);
}
