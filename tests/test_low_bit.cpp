// Low-bit fake quantization: specs of 2..8 bits, weights per group along K, activations per token,
// their STE and LSQ gradients (against finite differences of the function they differentiate, and
// against PyTorch), and the observers per group.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/io/safetensors.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/observer.hpp"
#include "quant/qparams.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::quant;

namespace {

nn::SafeTensorsFile low_bit_golden() {
  return nn::load_safetensors(std::string(QUENCH_SOURCE_DIR) + "/tests/golden/low_bit_golden.safetensors");
}

// The scale index of w[n, k] for a [N, K] weight with groups of G (0: per channel).
int64_t scale_index(int64_t n, int64_t k, int64_t K, int64_t G) {
  return G ? n * ((K + G - 1) / G) + k / G : n;
}

// The function whose exact gradients the STE and LSQ define, linearized at (x0, s0): with
// c = round(x0 / s0) - x0 / s0 and m the clamp mask held fixed there,
//   F(x, s) = m * (x + c * s) + (1 - m) * (q_clamped - z) * s
// F(x0, s0) = fake_quantize(x0); dF/dx = m (the STE); dF/ds = m * c + (1 - m) * (q_clamped - z) (LSQ).
// L = sum_i R_i * F_i in double, over a [N, K] weight with scales [N, groups] (zero point 0).
struct Linearized {
  std::vector<double> c, qc;
  std::vector<char> m;
  int64_t N, K, G;
  Linearized(const std::vector<float>& x0, const std::vector<float>& s0, int64_t N_, int64_t K_, int64_t G_,
             const QuantSpec& spec)
      : N(N_), K(K_), G(G_) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) {
        const float inv = 1.0f / s0[scale_index(n, k, K, G)], xs = x0[n * K + k] * inv, r = std::nearbyint(xs);
        const bool in = r >= spec.quant_min && r <= spec.quant_max;
        m.push_back(in);
        c.push_back(static_cast<double>(r) - static_cast<double>(xs));
        qc.push_back(r < spec.quant_min ? double(spec.quant_min) : double(spec.quant_max));
      }
  }
  double loss(const std::vector<double>& x, const std::vector<double>& s, const std::vector<float>& R) const {
    double L = 0;
    for (int64_t i = 0; i < N * K; ++i) {
      const double sc = s[scale_index(i / K, i % K, K, G)];
      L += R[i] * (m[i] ? x[i] + c[i] * sc : qc[i] * sc);
    }
    return L;
  }
};

// Finite differences of the linearization against the op's gradients (dx; ds when ds is given).
void check_against_linearization(const std::vector<float>& x0, const std::vector<float>& s0, int64_t N, int64_t K,
                                 int64_t G, const QuantSpec& spec, const std::vector<float>& R,
                                 const std::vector<float>& dx, const std::vector<float>* ds, double grad_factor) {
  Linearized lin(x0, s0, N, K, G, spec);
  std::vector<double> x(x0.begin(), x0.end()), s(s0.begin(), s0.end());
  const double h = 1e-3;
  int bad = 0;
  for (int64_t i = 0; i < N * K; ++i) {
    const double o = x[i];
    x[i] = o + h;
    const double lp = lin.loss(x, s, R);
    x[i] = o - h;
    const double lm = lin.loss(x, s, R);
    x[i] = o;
    const double num = (lp - lm) / (2 * h);
    if (std::abs(num - dx[i]) > 1e-4 + 1e-4 * std::abs(num) && bad++ < 5)
      FAIL_CHECK("dx[" << i << "]: numeric " << num << " vs analytic " << dx[i]);
  }
  if (ds)
    for (size_t j = 0; j < s.size(); ++j) {
      const double o = s[j], hs = o * 1e-3;
      s[j] = o + hs;
      const double lp = lin.loss(x, s, R);
      s[j] = o - hs;
      const double lm = lin.loss(x, s, R);
      s[j] = o;
      const double num = (lp - lm) / (2 * hs) * grad_factor;
      if (std::abs(num - (*ds)[j]) > 1e-5 + 1e-4 * std::abs(num) && bad++ < 5)
        FAIL_CHECK("ds[" << j << "]: numeric " << num << " vs analytic " << (*ds)[j]);
    }
  CHECK(bad == 0);
}

// A [N, K] weight with spread magnitudes and per-group scales amax / qmax * 0.8 (some clipping).
struct Weights {
  Tensor w, scale, zp;
};

Weights grouped_weights(int64_t N, int64_t K, int64_t G, const QuantSpec& spec, uint64_t seed) {
  Generator gen(seed);
  Weights r;
  r.w = randn({N, K}, gen) * 0.5;
  const int64_t ng = spec.groups_per_channel(K);
  std::vector<float> w = r.w.to_vector<float>(), s(N * ng, 0.f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      float& v = s[scale_index(n, k, K, G)];
      v = std::max(v, std::abs(w[n * K + k]));
    }
  for (float& v : s) v = v / static_cast<float>(spec.quant_max) * 0.8f;
  r.scale = tensor(s, {N, ng});
  r.zp = zeros({N, ng}, kInt32);
  return r;
}

}  // namespace

TEST_CASE("low bit: weight specs of 2..8 bits, symmetric, per channel or per group; 8 bits is the int8 default") {
  CHECK(QuantSpec::int_symmetric_weight(8) == QuantSpec::int8_symmetric_per_channel(0));
  CHECK(QuantSpec::int_symmetric_weight(8).str() == QuantSpec::int8_symmetric_per_channel(0).str());
  for (int bits = 2; bits <= 8; ++bits) {
    QuantSpec s = QuantSpec::int_symmetric_weight(bits, 64);
    CHECK(s.quant_max == (1 << (bits - 1)) - 1);
    CHECK(s.quant_min == -s.quant_max);
    CHECK(s.per_channel);
    CHECK(s.groups_per_channel(129) == 3);
  }
  CHECK(QuantSpec::int_symmetric_weight(4, 32).str() == "int4 symmetric per-channel(axis 0) group 32 [-7, 7]");
  CHECK(QuantSpec::uint8_affine_per_token().str() == "uint8 affine per-token [0, 255]");
  CHECK_FALSE(QuantSpec::int_symmetric_weight(4, 32) == QuantSpec::int_symmetric_weight(4, 64));
  CHECK_THROWS_WITH_AS(QuantSpec::int_symmetric_weight(9), doctest::Contains("bits must be in [2, 8]"), Error);
  QuantSpec bad = QuantSpec::int8_symmetric_per_tensor();
  bad.group_size = 32;
  CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("needs a per-channel spec on axis 0"), Error);
  QuantSpec tok = QuantSpec::int8_symmetric_per_channel(0);
  tok.per_token = true;
  CHECK_THROWS_WITH_AS(tok.validate(), doctest::Contains("cannot also be per channel"), Error);
}

TEST_CASE("low bit: per-group fake quantization is the shared rule with each group's scale (K not a multiple of G)") {
  for (int bits : {2, 3, 4, 8})
    for (int64_t G : {8, 32, 64}) {
      CAPTURE(bits);
      CAPTURE(G);
      const int64_t N = 5, K = 100;
      QuantSpec spec = QuantSpec::int_symmetric_weight(bits, G);
      Weights w = grouped_weights(N, K, G, spec, 7 + bits);
      Tensor x = w.w.clone().requires_grad_();
      Tensor y = fake_quantize(x, w.scale, w.zp, spec);
      std::vector<float> xv = w.w.to_vector<float>(), sv = w.scale.to_vector<float>(), yv = y.to_vector<float>();
      bool same = true;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          const float s = sv[scale_index(n, k, K, G)];
          const int32_t q =
              quantize_value(xv[n * K + k], 1.0f / s, 0, int32_t(spec.quant_min), int32_t(spec.quant_max));
          same = same && yv[n * K + k] == dequantize_value(q, s, 0);
        }
      CHECK(same);
      // STE: the exact gradient of the linearization, by finite differences.
      Generator gen(3);
      Tensor R = randn({N, K}, gen);
      y.backward(R);
      check_against_linearization(xv, sv, N, K, G, spec, R.to_vector<float>(), x.grad().to_vector<float>(), nullptr,
                                  1.0);
      // 2 threads give the same bits.
      const int saved = get_num_threads();
      set_num_threads(2);
      Tensor y2 = fake_quantize(w.w, w.scale, w.zp, spec);
      set_num_threads(1);
      Tensor y1 = fake_quantize(w.w, w.scale, w.zp, spec);
      set_num_threads(saved);
      CHECK(testing::max_abs_diff(y1, y2) == 0.0);
      CHECK(testing::max_abs_diff(y1, y) == 0.0);
    }
  QuantSpec spec = QuantSpec::int_symmetric_weight(4, 32);
  CHECK_THROWS_WITH_AS(fake_quantize(zeros({4, 64}), ones({4}), zeros({4}, kInt32), spec),
                       doctest::Contains("needs 8 scale(s)"), Error);
}

TEST_CASE("low bit: LSQ gradients (grad factor 1/sqrt(N * qmax)) match finite differences, per tensor/channel/group") {
  const int64_t N = 4, K = 80;
  for (int64_t G : {int64_t(-1), int64_t(0), int64_t(16), int64_t(32)}) {
    CAPTURE(G);
    QuantSpec spec = G < 0 ? QuantSpec::make(4, true, true, false) : QuantSpec::int_symmetric_weight(4, G);
    if (G < 0) spec.quant_min = -7;
    const int64_t Gs = G < 0 ? 0 : G;
    Weights w = grouped_weights(N, K, Gs, QuantSpec::int_symmetric_weight(4, Gs), 21);
    Tensor s0 = w.scale, z0 = w.zp;
    if (G < 0) {  // one scale for everything: the largest
      float m = 0;
      for (float v : w.scale.to_vector<float>()) m = std::max(m, v);
      s0 = tensor({m});
      z0 = zeros({1}, kInt32);
    }
    // Through the module, as QAT runs it: the grad factor 1 / sqrt(elements per scale * qmax).
    FakeQuantize fq(spec, ObserverKind::min_max, N, true, K);
    fq.disable_observer();
    {
      NoGradGuard ng;
      Tensor(fq.scale).copy_(s0.reshape(fq.scale.sizes()));
    }
    Tensor x = w.w.clone().requires_grad_();
    Tensor y = fq(x);
    Generator gen(5);
    Tensor R = randn({N, K}, gen);
    y.backward(R);
    const double per_scale = Gs ? double(Gs) : double(N * K / s0.numel());
    const double gf = 1.0 / std::sqrt(per_scale * 7.0);
    std::vector<float> ds = fq.scale.grad().to_vector<float>();
    std::vector<float> sv = s0.to_vector<float>();
    if (G < 0) {  // the linearization's scale index for one scale
      check_against_linearization(w.w.to_vector<float>(), std::vector<float>(N, sv[0]), N, K, 0, spec,
                                  R.to_vector<float>(), x.grad().to_vector<float>(), nullptr, 1.0);
      Linearized lin(w.w.to_vector<float>(), std::vector<float>(N, sv[0]), N, K, 0, spec);
      std::vector<double> xd(x.numel()), sp(N, sv[0] * 1.001), sm(N, sv[0] * 0.999);
      for (int64_t i = 0; i < x.numel(); ++i) xd[i] = w.w.to_vector<float>()[i];
      const double num = (lin.loss(xd, sp, R.to_vector<float>()) - lin.loss(xd, sm, R.to_vector<float>())) /
                         (0.002 * sv[0]) * gf;
      CHECK(ds[0] == doctest::Approx(num).epsilon(1e-4));
    } else {
      check_against_linearization(w.w.to_vector<float>(), sv, N, K, Gs, spec, R.to_vector<float>(),
                                  x.grad().to_vector<float>(), &ds, gf);
    }
  }
}

TEST_CASE("low bit: per-group fake quantization and LSQ match PyTorch (golden)") {
  auto g = low_bit_golden();
  QuantSpec spec = QuantSpec::int_symmetric_weight(4, 32);
  Tensor x = g.at("grp.x").clone().requires_grad_();
  Tensor y = fake_quantize(x, g.at("grp.scale"), zeros({5, 3}, kInt32), spec);
  CHECK(testing::max_abs_diff(y, g.at("grp.y")) == 0.0);
  y.backward(g.at("grp.g"));
  CHECK(testing::max_abs_diff(x.grad(), g.at("grp.dx")) == 0.0);

  Tensor lx = g.at("grp.x").clone().requires_grad_();
  Tensor ls = g.at("lsq.scale").clone().requires_grad_();
  Tensor ly = fake_quantize_learnable(lx, ls, zeros({5, 3}, kInt32), spec, 1.0 / std::sqrt(32.0 * 7.0));
  CHECK(testing::max_abs_diff(ly, g.at("lsq.y")) == 0.0);
  ly.backward(g.at("lsq.g"));
  CHECK(testing::max_abs_diff(lx.grad(), g.at("lsq.dx")) == 0.0);
  CHECK(testing::max_abs_diff(ls.grad(), g.at("lsq.dscale")) < 1e-5);
}

TEST_CASE("low bit: per-token fake quantization uses each row's own qparams; matches PyTorch (golden)") {
  auto g = low_bit_golden();
  QuantSpec spec = QuantSpec::uint8_affine_per_token();
  Tensor x = g.at("tok.x").clone().requires_grad_();
  Tensor y = fake_quantize_per_token(x, spec);
  CHECK(testing::max_abs_diff(y, g.at("tok.y")) == 0.0);
  y.backward(g.at("tok.g"));
  CHECK(testing::max_abs_diff(x.grad(), g.at("tok.dx")) == 0.0);
  // row_qparams gives PyTorch's per-row observer qparams.
  std::vector<float> xv = g.at("tok.x").to_vector<float>(), ts = g.at("tok.scale").to_vector<float>();
  std::vector<int32_t> tz = g.at("tok.zero_point").to_vector<int32_t>();
  bool same = true;
  for (int64_t r = 0; r < 7; ++r) {
    float s;
    int32_t z;
    row_qparams(xv.data() + r * 40, 40, spec, &s, &z);
    same = same && s == ts[r] && z == tz[r];
  }
  CHECK(same);
  // A 3-d input quantizes per row of its last dim; rows are independent of each other.
  Generator gen(9);
  Tensor x3 = randn({2, 3, 16}, gen) * 3.0;
  Tensor y3 = fake_quantize_per_token(x3, spec);
  Tensor row = fake_quantize_per_token(x3.reshape({6, 16}).narrow(0, 4, 1).contiguous(), spec);
  CHECK(testing::max_abs_diff(y3.reshape({6, 16}).narrow(0, 4, 1).contiguous(), row) == 0.0);
  // The module: no observer, each batch on its own qparams.
  FakeQuantize fq(spec, ObserverKind::moving_average_min_max);
  CHECK(fq.calibrated());
  CHECK(fq.row_independent());
  CHECK(testing::max_abs_diff(fq(x3), y3) == 0.0);
  CHECK(fq.named_children().empty());
  CHECK_THROWS_WITH_AS(FakeQuantize(spec, ObserverKind::min_max, 0, true), doctest::Contains("cannot be learned"),
                       Error);
  CHECK_THROWS_WITH_AS(fake_quantize(x3, ones({1}), zeros({1}, kInt32), spec),
                       doctest::Contains("use fake_quantize_per_token"), Error);
}

TEST_CASE("low bit: observers keep one range per group; state [C, groups]; thread count does not matter") {
  const int64_t N = 3, K = 40000, G = 32768;  // two groups, the first cut into pieces
  QuantSpec spec = QuantSpec::int_symmetric_weight(4, G);
  Generator gen(13);
  Tensor w = randn({N, K}, gen);
  w.data_ptr<float>()[1 * K + 35000] = 9.f;  // row 1, group 1
  w.data_ptr<float>()[2 * K + 100] = -11.f;  // row 2, group 0
  const int saved = get_num_threads();
  std::vector<std::vector<float>> seen;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    MinMaxObserver ob(spec);
    ob.observe(w);
    CHECK(ob.min_val().sizes() == Shape{N, 2});
    QParams q = ob.calculate_qparams();
    std::vector<float> s = q.scale.to_vector<float>();
    CHECK(s[1 * 2 + 1] == 9.f / 7.f);
    CHECK(s[2 * 2 + 0] == 11.f / 7.f);
    seen.push_back(s);
  }
  set_num_threads(saved);
  CHECK(seen[0] == seen[1]);
  // Against a loop over each group.
  std::vector<float> wv = w.to_vector<float>();
  bool same = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t gi = 0; gi < 2; ++gi) {
      float amax = 0;
      for (int64_t k = gi * G; k < std::min(K, (gi + 1) * G); ++k) amax = std::max(amax, std::abs(wv[n * K + k]));
      same = same && seen[0][n * 2 + gi] == std::max(amax / 7.f, 1.1920929e-07f);
    }
  CHECK(same);
  // The module registers [C, groups] state up front and refreshes its [C, groups] scale.
  FakeQuantize fq(spec, ObserverKind::moving_average_min_max, N, false, K);
  CHECK(fq.scale.sizes() == Shape{N, 2});
  fq.train();
  fq(w);
  CHECK(fq.scale.to_vector<float>() == seen[0]);
  MinMaxObserver other(spec);
  other.observe(w);
  CHECK_THROWS_WITH_AS(other.observe(randn({N, 100}, gen)), doctest::Contains("differs from"), Error);
}
