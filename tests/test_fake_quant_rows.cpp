// kernels/fake_quant_rows: every ISA path bit-exact with the reference, the reference equal to
// quant/qparams.hpp's rule, and the quant ops built on them thread-invariant and equal to the rule.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/fake_quant_rows.hpp"
#include "kernels/isa.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/observer.hpp"
#include "quant/qparams.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using namespace quench::kernels;

namespace {

struct IsaRestore {
  Isa saved = active_isa();
  ~IsaRestore() { set_isa(saved); }
};

std::vector<Isa> levels() {
  std::vector<Isa> v;
  for (int i = 0; i <= static_cast<int>(cpu_isa()); ++i) v.push_back(static_cast<Isa>(i));
  return v;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Special values around the vector width: ties at power-of-two scales, saturation, NaN, inf, +-0.
std::vector<float> special_row() {
  const float inf = std::numeric_limits<float>::infinity();
  return {0.25f,  0.75f, 1.25f, -0.25f, -0.75f, -1.25f, 100.f, -100.f, 1e30f,  -1e30f, inf,   -inf,
          NAN,    0.f,   -0.f,  63.75f, 64.25f, -32.25f, 2.6f, -2.6f,  123.f,  122.25f, -0.1f, 0.1f,
          -63.5f, 63.5f, 64.f,  -64.f,  -64.5f, 191.5f, -11.149999618530273f};
}

struct Range {
  int32_t qmin, qmax, z;
};
const Range kRanges[] = {{0, 255, 0}, {0, 255, 128}, {0, 255, 255}, {-128, 127, 0}, {-127, 127, 0}, {-128, 127, -5}};

}  // namespace

TEST_CASE("fake_quant_row: every path equals the reference; the reference is quant/qparams.hpp's rule") {
  IsaRestore restore;
  std::mt19937 g(7);
  std::uniform_real_distribution<float> d(-60.f, 60.f);
  std::vector<std::vector<float>> rows = {special_row()};
  for (int64_t n : {0, 1, 7, 8, 9, 16, 17, 33, 1000}) {
    std::vector<float> v(n);
    for (auto& e : v) e = d(g);
    rows.push_back(v);
  }
  for (const auto& x : rows) {
    const int64_t n = static_cast<int64_t>(x.size());
    for (float s : {0.5f, 0.1f, 0.3f, 0.0173f}) {
      for (const Range& rg : kRanges) {
        CAPTURE(n);
        CAPTURE(s);
        CAPTURE(rg.z);
        std::vector<float> rq(n), rd(n);
        std::vector<uint8_t> rm(n), rc(n);
        fake_quant_row_ref(x.data(), n, s, rg.z, rg.qmin, rg.qmax, rq.data(), rd.data(), rm.data(), rc.data());
        bool ok = true;  // the rule, through quant's own functions
        const float inv = 1.0f / s;
        for (int64_t i = 0; i < n; ++i) {
          const int32_t q = quant::quantize_value(x[i], inv, rg.z, rg.qmin, rg.qmax);
          const float u = std::nearbyint(x[i] * inv) + static_cast<float>(rg.z);
          ok = ok && same_bits(rq[i], static_cast<float>(q - rg.z)) &&
               same_bits(rd[i], quant::dequantize_value(q, s, rg.z)) &&
               rm[i] == (u >= static_cast<float>(rg.qmin) && u <= static_cast<float>(rg.qmax)) &&
               (rg.qmin < 0 ? static_cast<int32_t>(static_cast<int8_t>(rc[i])) : static_cast<int32_t>(rc[i])) == q;
        }
        CHECK(ok);
        for (Isa level : levels()) {
          set_isa(level);
          CAPTURE(isa_name(level));
          std::vector<float> q(n, -1.f), dq(n, -1.f);
          std::vector<uint8_t> m(n, 7), c(n, 7);
          fake_quant_row(x.data(), n, s, rg.z, rg.qmin, rg.qmax, q.data(), dq.data(), m.data(), c.data());
          CHECK(same_bits(q, rq));
          CHECK(same_bits(dq, rd));
          CHECK(m == rm);
          CHECK(c == rc);
          // Null outputs are skipped, the others unchanged.
          std::vector<float> dq2(n, -1.f);
          fake_quant_row(x.data(), n, s, rg.z, rg.qmin, rg.qmax, nullptr, dq2.data(), nullptr);
          CHECK(same_bits(dq2, rd));
        }
      }
    }
  }
}

TEST_CASE("min_max_row: every path equals the loop, NaN skipped, the first of +0 / -0 kept") {
  IsaRestore restore;
  const float inf = std::numeric_limits<float>::infinity();
  std::mt19937 g(8);
  std::uniform_real_distribution<float> d(0.5f, 9.f);
  std::vector<std::vector<float>> rows;
  for (int64_t n : {0, 1, 7, 16, 17, 40, 1000}) {
    std::vector<float> v(n);
    for (auto& e : v) e = d(g);
    rows.push_back(v);
    if (n >= 16) {  // zero extremes of both signs, in both orders, and NaN / inf
      for (auto [a, b] : {std::pair{0.f, -0.f}, std::pair{-0.f, 0.f}}) {
        std::vector<float> w = v;
        w[3] = a;
        w[n - 2] = b;
        w[5] = NAN;
        rows.push_back(w);
        for (auto& e : w) e = e == 0.f ? e : -e;  // now 0 is the max
        rows.push_back(w);
      }
      std::vector<float> w = v;
      w[n - 1] = inf;
      w[0] = -inf;
      rows.push_back(w);
      rows.push_back(std::vector<float>(n, NAN));
    }
  }
  for (const auto& x : rows) {
    const int64_t n = static_cast<int64_t>(x.size());
    for (auto [lo0, hi0] : {std::pair{inf, -inf}, std::pair{0.f, 0.f}, std::pair{-0.f, -0.f}, std::pair{2.f, 3.f}}) {
      float rlo = lo0, rhi = hi0;
      min_max_row_ref(x.data(), n, &rlo, &rhi);
      float slo = lo0, shi = hi0;  // the observer's old loop
      for (float v : x) {
        slo = std::min(slo, v);
        shi = std::max(shi, v);
      }
      CHECK(same_bits(rlo, slo));
      CHECK(same_bits(rhi, shi));
      for (Isa level : levels()) {
        set_isa(level);
        CAPTURE(isa_name(level));
        CAPTURE(n);
        float lo = lo0, hi = hi0;
        min_max_row(x.data(), n, &lo, &hi);
        CHECK(same_bits(lo, rlo));
        CHECK(same_bits(hi, rhi));
      }
    }
  }
}

TEST_CASE("mask_row and scale_bias_row: every path equals the reference") {
  IsaRestore restore;
  std::mt19937 rng(17);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int64_t n : {0, 1, 7, 8, 37, 128}) {
    CAPTURE(n);
    std::vector<float> g(n), mult(n), bias(n);
    std::vector<uint8_t> mask(n);
    for (int64_t i = 0; i < n; ++i) {
      g[i] = i % 11 == 3 ? NAN : (i % 13 == 5 ? -0.f : nd(rng));
      mask[i] = static_cast<uint8_t>((i * 7) % 3 != 0);
      mult[i] = std::abs(nd(rng)) * 1e-3f, bias[i] = nd(rng);
    }
    std::vector<float> want_m = g, want_s = g, want_sn = g;
    mask_row_ref(want_m.data(), mask.data(), n);
    scale_bias_row_ref(want_s.data(), mult.data(), bias.data(), n);
    scale_bias_row_ref(want_sn.data(), mult.data(), nullptr, n);
    for (int64_t i = 0; i < n; ++i) {
      CHECK(same_bits(want_m[i], mask[i] ? g[i] : 0.f));
      float v = g[i] * mult[i];
      CHECK(same_bits(want_sn[i], v));
      v = v + bias[i];
      CHECK(same_bits(want_s[i], v));
    }
    for (Isa isa : levels()) {
      CAPTURE(isa_name(isa));
      set_isa(isa);
      std::vector<float> m = g, sb = g, sn = g;
      mask_row(m.data(), mask.data(), n);
      scale_bias_row(sb.data(), mult.data(), bias.data(), n);
      scale_bias_row(sn.data(), mult.data(), nullptr, n);
      CHECK(same_bits(m, want_m));
      CHECK(same_bits(sb, want_s));
      CHECK(same_bits(sn, want_sn));
    }
  }
}

TEST_CASE("sum_row_u8 and dequantize_row_s32: every path equals the reference; the reference is the loop") {
  IsaRestore restore;
  std::mt19937 rng(19);
  for (int64_t n : {0, 1, 15, 16, 17, 63, 64, 65, 128, 200, 4096}) {
    CAPTURE(n);
    std::vector<uint8_t> x(n);
    std::vector<int32_t> acc(n);
    int32_t want = 0;
    for (int64_t i = 0; i < n; ++i) {
      x[i] = static_cast<uint8_t>(i % 5 == 0 ? 255 : rng() % 256);
      want += x[i];
      acc[i] = static_cast<int32_t>(rng() % 40000000) - 20000000;  // past 2^24: the conversion rounds
    }
    const int32_t offset = -1234567;
    const float mult = 3.7e-5f;
    std::vector<float> want_y(n);
    for (int64_t i = 0; i < n; ++i) want_y[i] = static_cast<float>(acc[i] + offset) * mult;
    CHECK(sum_row_u8_ref(x.data(), n) == want);
    std::vector<float> ry(n, -1.f);
    dequantize_row_s32_ref(acc.data(), n, offset, mult, ry.data());
    CHECK(same_bits(ry, want_y));
    for (Isa isa : levels()) {
      CAPTURE(isa_name(isa));
      set_isa(isa);
      CHECK(sum_row_u8(x.data(), n) == want);
      std::vector<float> y(n + 1, -1.f);
      dequantize_row_s32(acc.data(), n, offset, mult, y.data());
      CHECK(y[n] == -1.f);  // nothing past the row
      y.resize(n);
      CHECK(same_bits(y, want_y));
    }
  }
}

TEST_CASE("observer min / max over pieces: the serial loop's result, for 1 and 2 threads") {
  // 100000 values: several pieces; the minimum 0 appears as -0 in an early piece and +0 later.
  Generator gen(11);
  Tensor x = randn({100000}, gen).abs() + 0.5;
  float* p = x.data_ptr<float>();
  p[70000] = 0.f;
  p[20000] = -0.f;
  p[90000] = 0.f;
  p[40000] = 1e6f;
  p[50000] = NAN;
  float slo = std::numeric_limits<float>::infinity(), shi = -slo;
  for (int64_t i = 0; i < x.numel(); ++i) {
    slo = std::min(slo, p[i]);
    shi = std::max(shi, p[i]);
  }
  testing::check_thread_invariant([&] {
    quant::MinMaxObserver obs(quant::QuantSpec::uint8_affine_per_tensor());
    obs.observe(x);
    CHECK(same_bits(obs.min_val().data_ptr<float>()[0], slo));
    CHECK(same_bits(obs.max_val().data_ptr<float>()[0], shi));
    quant::MinMaxObserver pc(quant::QuantSpec::int8_symmetric_per_channel(1));
    pc.observe(x.reshape({1000, 100}));
    return testing::TL{obs.min_val(), obs.max_val(), pc.min_val(), pc.max_val()};
  });
}

TEST_CASE("fake_quantize per tensor in pieces: the rule and its STE mask, for 1 and 2 threads") {
  Generator gen(12);
  Tensor x = randn({3, 50001}, gen) * 3.0;  // one row, several pieces, a ragged end
  Tensor g = randn({3, 50001}, gen);
  const auto spec = quant::QuantSpec::uint8_affine_per_tensor();
  Tensor s = tensor({0.02f}), z = tensor({128}, {1});
  auto f = [&](const testing::TL& in) { return quant::fake_quantize(in[0], s, z, spec); };
  testing::check_thread_invariant([&] { return testing::forward_backward(f, {x}, g); });
  testing::TL out = testing::forward_backward(f, {x}, g);
  const float* px = x.data_ptr<float>();
  const float* py = out[0].data_ptr<float>();
  const float* pg = g.data_ptr<float>();
  const float* pdx = out[1].data_ptr<float>();
  const float inv = 1.0f / 0.02f;
  bool ok = true;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int32_t q = quant::quantize_value(px[i], inv, 128, 0, 255);
    const float u = std::nearbyint(px[i] * inv) + 128.f;
    ok = ok && same_bits(py[i], quant::dequantize_value(q, 0.02f, 128)) &&
         same_bits(pdx[i], u >= 0.f && u <= 255.f ? pg[i] : 0.f);
  }
  CHECK(ok);
}
