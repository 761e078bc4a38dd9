// softmax, log_softmax, layer_norm, embedding, index_select, dropout, and the row primitives.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "engine/ops.hpp"
#include "engine/ops/row_math.hpp"
#include "kernels/parallel.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using quench::testing::check_thread_invariant;
using quench::testing::forward_backward;
using quench::testing::gradcheck;
using quench::testing::max_abs_diff;
using TL = std::vector<Tensor>;


// ---------------------------------------------------------------------------------------------
// softmax / log_softmax

TEST_CASE("softmax: known values, rows sum to one, stable for large logits") {
  Tensor y = softmax(tensor({1.f, 2.f, 3.f}), 0);
  const double s = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (int i = 0; i < 3; ++i) CHECK(y.at({i}) == doctest::Approx(std::exp(i + 1.0) / s).epsilon(1e-6));
  Tensor big = tensor({1000.f, 1001.f, 1002.f});
  CHECK(max_abs_diff(softmax(big, 0), y) < 1e-6);
  CHECK(max_abs_diff(log_softmax(big, 0), log_softmax(tensor({1.f, 2.f, 3.f}), 0)) < 1e-5);
  Generator gen(1);
  Tensor x = randn({3, 4, 5}, gen);
  for (int64_t d : {0, 1, 2, -1}) {
    CAPTURE(d);
    Tensor p = softmax(x, d);
    Tensor rows = sum(p, {d});
    for (double v : rows.to_vector<double>()) CHECK(v == doctest::Approx(1.0).epsilon(1e-6));
    // log_softmax == log(softmax), element by element.
    std::vector<double> lp = log_softmax(x, d).to_vector<double>(), pv = p.to_vector<double>();
    for (size_t i = 0; i < lp.size(); ++i) CHECK(lp[i] == doctest::Approx(std::log(pv[i])).epsilon(1e-5));
  }
  // The middle dim against an explicit loop.
  Tensor p1 = softmax(x, 1);
  double den = 0.0;
  for (int j = 0; j < 4; ++j) den += std::exp(x.at({2, j, 3}));
  CHECK(p1.at({2, 1, 3}) == doctest::Approx(std::exp(x.at({2, 1, 3})) / den).epsilon(1e-6));
  // Tensor methods and non-contiguous input.
  CHECK(max_abs_diff(x.softmax(-1), softmax(x, 2)) == 0.0);
  CHECK(max_abs_diff(x.log_softmax(0), log_softmax(x, 0)) == 0.0);
  Tensor xt = x.transpose(0, 2);
  CHECK(max_abs_diff(softmax(xt, 1), softmax(xt.contiguous(), 1)) == 0.0);
}

TEST_CASE("softmax and log_softmax: gradcheck over every dim") {
  Generator gen(2);
  Tensor x = randn({2, 3, 4}, gen);
  for (int64_t d : {0, 1, 2}) {
    CAPTURE(d);
    CHECK(gradcheck([d](const TL& in) { return softmax(in[0], d); }, {x}));
    CHECK(gradcheck([d](const TL& in) { return log_softmax(in[0], d); }, {x}));
  }
  CHECK(gradcheck([](const TL& in) { return in[0].transpose(0, 1).softmax(-1); }, {x}));
}

TEST_CASE("softmax: errors name the op") {
  CHECK_THROWS_WITH_AS(softmax(zeros({2, 3}), 2), doctest::Contains("softmax: dimension 2 is out of range"), Error);
  CHECK_THROWS_WITH_AS(log_softmax(zeros({2}, kInt32), 0),
                       doctest::Contains("log_softmax: expected float32 for input, got int32"), Error);
}

TEST_CASE("softmax: 1 and 2 threads give bit-identical results") {
  Generator gen(3);
  Tensor x = randn({400, 50}, gen), g = randn({400, 50}, gen);
  Tensor x3 = randn({4, 50, 100}, gen), g3 = randn({4, 50, 100}, gen);
  check_thread_invariant([&] {
    TL a = forward_backward([](const TL& in) { return softmax(in[0], 1); }, {x}, g);
    TL b = forward_backward([](const TL& in) { return log_softmax(in[0], -1); }, {x}, g);
    TL c = forward_backward([](const TL& in) { return softmax(in[0], 1); }, {x3}, g3);
    return TL{a[0], a[1], b[0], b[1], c[0], c[1]};
  });
}

// ---------------------------------------------------------------------------------------------
// layer_norm

TEST_CASE("layer_norm: normalizes rows, applies weight and bias") {
  Generator gen(4);
  Tensor x = randn({5, 8}, gen) * 3.0 + 2.0;
  Tensor y = layer_norm(x, {8});
  for (int r = 0; r < 5; ++r) {
    double m = 0, v = 0;
    for (int j = 0; j < 8; ++j) m += y.at({r, j});
    m /= 8;
    for (int j = 0; j < 8; ++j) v += (y.at({r, j}) - m) * (y.at({r, j}) - m);
    CHECK(std::abs(m) < 1e-6);
    CHECK(v / 8 == doctest::Approx(1.0).epsilon(1e-4));  // eps = 1e-5 against variance ~9
  }
  // Explicit formula for one element with weight and bias.
  Tensor w = randn({8}, gen), b = randn({8}, gen);
  Tensor z = layer_norm(x, {8}, w, b, 1e-3);
  double m = 0, v = 0;
  for (int j = 0; j < 8; ++j) m += x.at({2, j});
  m /= 8;
  for (int j = 0; j < 8; ++j) v += (x.at({2, j}) - m) * (x.at({2, j}) - m);
  const double want = (x.at({2, 5}) - m) / std::sqrt(v / 8 + 1e-3) * w.at({5}) + b.at({5});
  CHECK(z.at({2, 5}) == doctest::Approx(want).epsilon(1e-5));
  // Two trailing dims normalize together: same as flattening them.
  Tensor x3 = randn({2, 3, 4}, gen);
  CHECK(max_abs_diff(layer_norm(x3, {3, 4}), layer_norm(x3.reshape({2, 12}), {12}).reshape({2, 3, 4})) < 1e-6);
  // A constant row gives zeros (variance 0, eps keeps it finite).
  CHECK(max_abs_diff(layer_norm(full({2, 4}, 7.0), {4}), zeros({2, 4})) == 0.0);
}

TEST_CASE("layer_norm: rows far from zero against a double reference, forward and backward") {
  // Float sums (16 lanes, a shifted second pass) and a centred backward sum: no cancellation when
  // the mean (300) is 100 standard deviations from zero. Rows of 128 and of 37 (a lane tail).
  Generator gen(44);
  for (int64_t n : {128, 37}) {
    CAPTURE(n);
    const int64_t M = 9;
    Tensor x = (randn({M, n}, gen) * 3.0 + 300.0).requires_grad_();
    Tensor w = randn({n}, gen), g = randn({M, n}, gen);
    Tensor y = layer_norm(x, {n}, w, Tensor(), 1e-6);
    y.backward(g);
    std::vector<float> xv = x.detach().to_vector<float>(), wv = w.to_vector<float>(), gv = g.to_vector<float>();
    std::vector<float> yv = y.detach().to_vector<float>(), dxv = x.grad().to_vector<float>();
    double ey = 0, edx = 0, sdx = 0;
    for (int64_t r = 0; r < M; ++r) {
      double m = 0, v = 0, a = 0, b = 0;
      for (int64_t j = 0; j < n; ++j) m += xv[r * n + j];
      m /= n;
      for (int64_t j = 0; j < n; ++j) v += (xv[r * n + j] - m) * (xv[r * n + j] - m);
      const double rs = 1.0 / std::sqrt(v / n + 1e-6);
      for (int64_t j = 0; j < n; ++j) {
        const double xh = (xv[r * n + j] - m) * rs, gw = double(gv[r * n + j]) * wv[j];
        ey = std::max(ey, std::abs(yv[r * n + j] - xh * wv[j]));
        a += gw, b += gw * xh;
      }
      for (int64_t j = 0; j < n; ++j) {
        const double xh = (xv[r * n + j] - m) * rs, gw = double(gv[r * n + j]) * wv[j];
        const double want = rs * (gw - a / n - xh * b / n);
        edx = std::max(edx, std::abs(dxv[r * n + j] - want));
        sdx = std::max(sdx, std::abs(want));
      }
    }
    CHECK(ey < 4e-5);  // the float mean's own rounding: half an ulp of 300 (1.5e-5) times rstd and |w|
    CHECK(edx < 2e-6 * sdx);
  }
}

TEST_CASE("layer_norm: gradcheck with and without weight and bias") {
  Generator gen(5);
  Tensor x = randn({3, 6}, gen), w = randn({6}, gen), b = randn({6}, gen);
  CHECK(gradcheck([](const TL& in) { return layer_norm(in[0], {6}, in[1], in[2]); }, {x, w, b}));
  CHECK(gradcheck([](const TL& in) { return layer_norm(in[0], {6}); }, {x}));
  CHECK(gradcheck([](const TL& in) { return layer_norm(in[0], {6}, in[1]); }, {x, w}));
  CHECK(gradcheck([](const TL& in) { return layer_norm(in[0], {6}, Tensor(), in[1]); }, {x, b}));
  CHECK(gradcheck([](const TL& in) { return layer_norm(in[0], {2, 3}, in[1], in[2], 1e-2); },
                  {randn({2, 2, 2, 3}, gen), randn({2, 3}, gen), randn({2, 3}, gen)}));
}

TEST_CASE("layer_norm: shape errors") {
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 5}), {4}),
                       "layer_norm: normalized_shape [4] must be non-empty and equal the trailing dims of "
                       "the input of shape [2, 5]",
                       Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {4}, zeros({5})),
                       "layer_norm: weight of shape [5] does not match normalized_shape [4]", Error);
  CHECK_THROWS_WITH_AS(layer_norm(zeros({2, 4}), {4}, zeros({4}), zeros({2, 2})),
                       "layer_norm: bias of shape [2, 2] does not match normalized_shape [4]", Error);
}

TEST_CASE("layer_norm: 1 and 2 threads give bit-identical results") {
  Generator gen(6);
  Tensor x = randn({300, 128}, gen), w = randn({128}, gen), b = randn({128}, gen), g = randn({300, 128}, gen);
  check_thread_invariant([&] {
    return forward_backward([](const TL& in) { return layer_norm(in[0], {128}, in[1], in[2]); }, {x, w, b}, g);
  });
}

TEST_CASE("layer_norm: a row's result does not depend on the rows around it (row groups)") {
  // The forward sums several rows at once; each row must still get its own single-row sums.
  Generator gen(8);
  for (int64_t n : {128, 130, 7}) {
    CAPTURE(n);
    Tensor x = randn({11, n}, gen) * 3.0 + 1.0, w = randn({n}, gen), b = randn({n}, gen);
    Tensor whole = layer_norm(x, {n}, w, b);
    for (int64_t i = 0; i < 11; ++i) {
      CAPTURE(i);
      CHECK(quench::testing::bit_equal(whole.slice(0, i, i + 1), layer_norm(x.slice(0, i, i + 1), {n}, w, b)));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// embedding / index_select

TEST_CASE("embedding: picks rows, gradients of repeated indices add up") {
  Tensor w = arange(12).reshape({4, 3});
  Tensor idx = tensor({2, 0, 2, 3}, {2, 2});
  Tensor y = embedding(w, idx);
  CHECK(y.sizes() == Shape{2, 2, 3});
  CHECK(y.to_vector<float>() == std::vector<float>{6, 7, 8, 0, 1, 2, 6, 7, 8, 9, 10, 11});
  Tensor wl = w.clone().requires_grad_();
  embedding(wl, idx).sum().backward();
  CHECK(wl.grad().to_vector<float>() == std::vector<float>{1, 1, 1, 0, 0, 0, 2, 2, 2, 1, 1, 1});
  Generator gen(7);
  CHECK(gradcheck([idx](const TL& in) { return embedding(in[0], idx); }, {randn({4, 3}, gen)}));
  CHECK(gradcheck([](const TL& in) { return embedding(in[0], tensor({1, 1, 0}, {3})); }, {randn({2, 5}, gen)}));
}

TEST_CASE("embedding: errors") {
  CHECK_THROWS_WITH_AS(embedding(zeros({4, 3}), tensor({0, 4})),
                       "embedding: index 4 at position 1 is out of range for a weight of shape [4, 3] "
                       "(expected 0 <= index < 4)",
                       Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({4, 3}), tensor({-1})), doctest::Contains("index -1 at position 0"), Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({4, 3}), zeros({2})),
                       doctest::Contains("embedding: expected int32 for indices, got float32"), Error);
  CHECK_THROWS_WITH_AS(embedding(zeros({12}), tensor({0})),
                       doctest::Contains("expected a 2-D weight [num_embeddings, dim], got shape [12]"), Error);
}

TEST_CASE("index_select: along every dim, gradcheck with repeats") {
  Tensor x = arange(24).reshape({2, 3, 4});
  Tensor y = index_select(x, 1, tensor({2, 0, 2}));
  CHECK(y.sizes() == Shape{2, 3, 4});
  CHECK(y.at({1, 0, 3}) == x.at({1, 2, 3}));
  CHECK(y.at({0, 1, 2}) == x.at({0, 0, 2}));
  Tensor z = index_select(x, -1, tensor({3}));
  CHECK(z.sizes() == Shape{2, 3, 1});
  CHECK(z.at({1, 2, 0}) == 23.0);
  // Integer tensors gather too.
  CHECK(index_select(tensor({5, 6, 7}), 0, tensor({2, 2, 0})).to_vector<int32_t>() == std::vector<int32_t>{7, 7, 5});
  Generator gen(8);
  Tensor idx = tensor({1, 1, 0, 2});
  for (int64_t d : {0, 1, 2}) {
    CAPTURE(d);
    CHECK(gradcheck([d, idx](const TL& in) { return index_select(in[0], d, idx); }, {randn({3, 3, 3}, gen)}));
  }
  CHECK_THROWS_WITH_AS(index_select(x, 0, tensor({2})),
                       "index_select: index 2 at position 0 is out of range for dim 0 of an input of shape "
                       "[2, 3, 4] (expected 0 <= index < 2)",
                       Error);
  CHECK_THROWS_WITH_AS(index_select(x, 0, tensor({0, 1}, {1, 2})),
                       "index_select: expected 1-D indices, got shape [1, 2]", Error);
}

TEST_CASE("embedding and index_select: 1 and 2 threads give bit-identical gradients") {
  Generator gen(9);
  Tensor w = randn({50, 256}, gen);
  Tensor idx = randint(0, 50, {1000}, gen), g = randn({1000, 256}, gen);
  Tensor x = randn({8, 40, 30}, gen), idx2 = randint(0, 40, {100}, gen), g2 = randn({8, 100, 30}, gen);
  check_thread_invariant([&] {
    TL a = forward_backward([&](const TL& in) { return embedding(in[0], idx); }, {w}, g);
    TL b = forward_backward([&](const TL& in) { return index_select(in[0], 1, idx2); }, {x}, g2);
    return TL{a[0], a[1], b[0], b[1]};
  });
}

// ---------------------------------------------------------------------------------------------
// dropout

TEST_CASE("dropout: identity in eval or with p = 0, zeros with p = 1") {
  Generator gen(16);
  Tensor x = randn({4, 5}, gen);
  CHECK(dropout(x, 0.5, false, gen).is_same(x));
  CHECK(dropout(x, 0.0, true, gen).is_same(x));
  Tensor xl = x.clone().requires_grad_();
  Tensor y = dropout(xl, 1.0, true, gen);
  CHECK(max_abs_diff(y, zeros({4, 5})) == 0.0);
  y.sum().backward();
  CHECK(max_abs_diff(xl.grad(), zeros({4, 5})) == 0.0);
  CHECK_THROWS_WITH_AS(dropout(x, 1.5, true, gen),
                       "dropout: probability p must be in [0, 1], got 1.5 (input of shape [4, 5])", Error);
}

TEST_CASE("dropout: seeded mask, scale 1/(1-p), drop rate close to p, gradcheck") {
  const double p = 0.3;
  Tensor x = ones({40000});
  Generator g1(17), g2(17);
  Tensor a = dropout(x, p, true, g1), b = dropout(x, p, true, g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());  // same seed, same mask
  CHECK(a.to_vector<float>() != dropout(x, p, true, g1).to_vector<float>());  // the generator advanced
  int64_t zeros_n = 0;
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  for (float v : a.to_vector<float>()) {
    if (v == 0.f) ++zeros_n;
    else CHECK(v == scale);
  }
  // 40000 Bernoulli(0.3): standard deviation of the rate 0.0023; 0.015 is > 6 sigma.
  CHECK(std::abs(static_cast<double>(zeros_n) / 40000 - p) < 0.015);
  // The gradient is the same mask and scale; a fresh generator per call keeps the mask fixed.
  Generator gen(18);
  CHECK(gradcheck([](const TL& in) { Generator g(19); return dropout(in[0], 0.4, true, g); }, {randn({3, 7}, gen)}));
  // Threads: the mask comes from the generator alone.
  Tensor big = randn({50000}, gen), gbig = randn({50000}, gen);
  check_thread_invariant([&] {
    Generator g(20);
    Tensor xl = big.clone().requires_grad_();
    Tensor y = dropout(xl, 0.2, true, g);
    y.backward(gbig);
    return TL{y.detach(), xl.grad()};
  });
}

// ---------------------------------------------------------------------------------------------
// row primitives (engine/ops/row_math.hpp) against their plain counterparts

TEST_CASE("row_math: exp_approx against std::exp, row_max and lane sums against plain loops") {
  double worst = 0.0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / 200000.0f;  // [-87, 88]
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(detail::exp_approx(x) - ref) / ref);
  }
  CHECK(worst < 3e-7);
  CHECK(detail::exp_approx(0.f) == 1.f);
  CHECK(detail::exp_approx(-std::numeric_limits<float>::infinity()) == 0.f);
  CHECK(detail::exp_approx(-200.f) == 0.f);
  CHECK(std::isnan(detail::exp_approx(std::numeric_limits<float>::quiet_NaN())));
  Generator gen(30);
  for (int64_t n : {1, 3, 4, 7, 8, 9, 50, 129}) {
    CAPTURE(n);
    std::vector<float> a = randn({n}, gen).to_vector<float>(), b = randn({n}, gen).to_vector<float>();
    float m = a[0];
    double s = 0, d = 0;
    for (int64_t j = 0; j < n; ++j) {
      m = std::max(m, a[j]);
      s += a[j];
      d += static_cast<double>(a[j]) * b[j];
    }
    CHECK(detail::row_max(a.data(), n) == m);
    CHECK(detail::row_sum(a.data(), n) == doctest::Approx(s).epsilon(1e-12));
    CHECK(detail::row_dot(a.data(), b.data(), n) == doctest::Approx(d).epsilon(1e-12));
  }
}

TEST_CASE("softmax: a strided dim gives the same bits as the last dim of a contiguous copy") {
  Generator gen(31);
  Tensor x = randn({3, 7, 5}, gen);
  Tensor a = softmax(x, 1);
  Tensor b = softmax(x.transpose(1, 2).contiguous(), 2).transpose(1, 2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  Tensor t = tensor({0, 3, 6, 1, 2, 5, 4, 4, 0, 1, 2, 3, 6, 5, 0}, {3, 5});
  Tensor c = cross_entropy(x, t, -100, 0.1, Reduction::none);
  Tensor d = cross_entropy(x.transpose(1, 2).reshape({15, 7}), t.reshape({15}), -100, 0.1, Reduction::none);
  CHECK(c.reshape({15}).to_vector<float>() == d.to_vector<float>());
}
