// The fake-quantized attention matmul on integer codes (quant/qat_matmul_op): its forward is the exact
// int32 sum of the codes times one scale on every ISA path and thread count, its gradients are the STE
// of fake_quantize + matmul, and the QAT attention modules take it.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/observer.hpp"
#include "quant/int8_attention.hpp"
#include "quant/int8_linear.hpp"
#include "quant/prepare.hpp"
#include "quant/qat_attention.hpp"
#include "quant/qat_bert_attention.hpp"
#include "quant/qat_matmul_op.hpp"
#include "quant/qparams.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using namespace quench::quant;

namespace {

struct Operand {
  QuantSpec spec = QuantSpec::uint8_affine_per_tensor();
  QParams qp;
  Tensor scale() const { return qp.scale.reshape({1}); }
  Tensor zero_point() const { return qp.zero_point.reshape({1}); }
  float s() const { return qp.scale.data_ptr<float>()[0]; }
  int32_t z() const { return qp.zero_point.data_ptr<int32_t>()[0]; }
};

Operand operand(float lo, float hi) {
  Operand o;
  o.qp = qparams_from_range({lo}, {hi}, o.spec);
  return o;
}

// y = float(sum_k (qa - za)(qb - zb)) * (sa * sb), from the rounding rule and int64 sums.
std::vector<float> expected(const Tensor& a, const Operand& oa, const Tensor& b, const Operand& ob) {
  const int64_t K = a.size(-1), M = a.size(-2), N = b.size(-2), G = a.numel() / (M * K);
  const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
  auto code = [](float x, const Operand& o) {
    return quantize_value(x, 1.0f / o.s(), o.z(), static_cast<int32_t>(o.spec.quant_min),
                          static_cast<int32_t>(o.spec.quant_max)) - o.z();
  };
  const float mult = oa.s() * ob.s();
  std::vector<float> y(G * M * N);
  for (int64_t g = 0; g < G; ++g)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += static_cast<int64_t>(code(pa[(g * M + m) * K + k], oa)) * code(pb[(g * N + n) * K + k], ob);
        y[(g * M + m) * N + n] = static_cast<float>(acc) * mult;
      }
  return y;
}

Tensor run(const Tensor& a, const Operand& oa, const Tensor& b, const Operand& ob) {
  return qat_matmul_nt(a, oa.scale(), oa.zero_point(), oa.spec, b, ob.scale(), ob.zero_point(), ob.spec);
}

}  // namespace

TEST_CASE("qat_matmul: the forward is the exact integer sum of the codes times sa * sb on every ISA path") {
  struct Case {
    Shape a, b;
    float alo, ahi, blo, bhi;
  };
  // Zero points 0 (probabilities), about 128, off-centre and 255; K past 258, where an fp32 sum of
  // the codes would round; odd sizes.
  const std::vector<Case> cases = {
      {{2, 3, 17, 64}, {2, 3, 19, 64}, -2.f, 3.f, -1.f, 1.f},
      {{4, 9, 40}, {4, 11, 40}, 0.f, 1.f, -0.7f, 2.5f},
      {{1, 5, 300}, {1, 6, 300}, -1.f, 1.f, -1.f, 1.f},
      {{3, 7, 13}, {3, 5, 13}, -3.f, 0.f, -0.2f, 4.f},
      {{2, 6, 20}, {2, 4, 20}, -1.f, 2.f, 0.f, 2.f},   // zb = 0: the row term's largest factor
      {{2, 6, 20}, {2, 4, 20}, -1.f, 2.f, -2.f, 0.f},  // zb = 255: the shifted zero point 127
  };
  Generator gen(4);
  const kernels::Isa prev = kernels::active_isa();
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.a));
    Tensor a = randn(c.a, gen) * 1.5, b = randn(c.b, gen) * 1.5;
    const Operand oa = operand(c.alo, c.ahi), ob = operand(c.blo, c.bhi);
    const std::vector<float> want = expected(a, oa, b, ob);
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      CAPTURE(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
      Tensor y = run(a, oa, b, ob);
      Shape out = c.a;
      out.back() = c.b[c.b.size() - 2];
      CHECK(y.sizes() == out);
      CHECK(y.to_vector<float>() == want);
    }
    kernels::set_isa(prev);
    // fq(a) @ fq(b) on b's [K, N] rows: the same sums.
    Tensor bt = b.transpose(-2, -1).contiguous();
    CHECK(qat_matmul(a, oa.scale(), oa.zero_point(), oa.spec, bt, ob.scale(), ob.zero_point(), ob.spec)
              .to_vector<float>() == want);
    // Close to the fp32 matmul of the fake-quantized operands (the same products, rounded sums).
    Tensor composed = matmul(fake_quantize(a, oa.scale(), oa.zero_point(), oa.spec),
                             fake_quantize(b, ob.scale(), ob.zero_point(), ob.spec).transpose(-2, -1));
    Tensor y = run(a, oa, b, ob);
    CHECK(testing::max_abs_diff(y, composed) <= 1e-5 * std::max(1.0, testing::max_abs(composed)));
  }
}

TEST_CASE("qat_matmul: gradients are the STE of fake_quantize + matmul, and do not depend on the thread count") {
  Generator gen(5);
  Tensor a = randn({2, 2, 9, 24}, gen) * 2.0, b = randn({2, 2, 10, 24}, gen), g = randn({2, 2, 9, 10}, gen);
  const Operand oa = operand(-1.5f, 2.f), ob = operand(-1.f, 0.8f);  // both clamp some values
  auto fused = [&](const testing::TL& in) { return run(in[0], oa, in[1], ob); };
  auto composed = [&](const testing::TL& in) {
    return matmul(fake_quantize(in[0], oa.scale(), oa.zero_point(), oa.spec),
                  fake_quantize(in[1], ob.scale(), ob.zero_point(), ob.spec).transpose(-2, -1));
  };
  const testing::TL x = testing::forward_backward(fused, {a, b}, g), c = testing::forward_backward(composed, {a, b}, g);
  REQUIRE(x.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    REQUIRE(x[i].sizes() == c[i].sizes());
    CHECK(testing::max_abs_diff(x[i], c[i]) <= 1e-5 * std::max(1.0, testing::max_abs(c[i])));
  }
  int clamped = 0;  // values outside the grid's range get exactly zero gradient
  for (float v : x[1].to_vector<float>()) clamped += v == 0.f;
  CHECK(clamped > 0);
  testing::check_thread_invariant([&] { return testing::forward_backward(fused, {a, b}, g); });
  // The [K, N] form: the same output, and b's gradient transposed.
  auto fused_kn = [&](const testing::TL& in) {
    return qat_matmul(in[0], oa.scale(), oa.zero_point(), oa.spec, in[1], ob.scale(), ob.zero_point(), ob.spec);
  };
  const testing::TL kn = testing::forward_backward(fused_kn, {a, b.transpose(-2, -1).contiguous()}, g);
  CHECK(testing::bit_equal(kn[0], x[0]));
  CHECK(testing::max_abs_diff(kn[1], x[1]) <= 1e-6 * std::max(1.0, testing::max_abs(x[1])));
  CHECK(testing::max_abs_diff(kn[2].transpose(-2, -1), x[2]) <= 1e-6 * std::max(1.0, testing::max_abs(x[2])));
}

TEST_CASE("qat_matmul: bad shapes and specs are rejected with the op, the shapes and the fix") {
  Generator gen(6);
  const Operand o = operand(-1.f, 1.f);
  CHECK_THROWS_WITH_AS(run(randn({2, 4, 8}, gen), o, randn({2, 5, 7}, gen), o),
                       doctest::Contains("qat_matmul_nt: a of shape [2, 4, 8] does not match b of shape [2, 5, 7]"),
                       Error);
  CHECK_THROWS_WITH_AS(run(randn({2, 4, 8}, gen), o, randn({3, 5, 8}, gen), o),
                       doctest::Contains("same leading dims"), Error);
  CHECK_THROWS_WITH_AS(qat_matmul(randn({2, 4, 8}, gen), o.scale(), o.zero_point(), o.spec, randn({2, 5, 8}, gen),
                                  o.scale(), o.zero_point(), o.spec),
                       doctest::Contains("qat_matmul: a of shape [2, 4, 8] does not match b of shape [2, 5, 8]; "
                                         "expected a [..., M, K] and b [..., K, N]"),
                       Error);
  Operand s8;
  s8.spec = QuantSpec::int8_symmetric_per_tensor();
  s8.qp = qparams_from_range({-1.f}, {1.f}, s8.spec);
  CHECK_FALSE(qat_matmul_fits(s8.spec, s8.scale(), s8.zero_point()));
  CHECK(qat_matmul_fits(o.spec, o.scale(), o.zero_point()));
  CHECK_THROWS_WITH_AS(run(randn({4, 8}, gen), o, randn({5, 8}, gen), s8),
                       doctest::Contains("use fake_quantize and matmul"), Error);
  Tensor bad = full({1}, 0.0);
  CHECK_FALSE(qat_matmul_fits(o.spec, bad, o.zero_point()));
}

TEST_CASE("attention_softmax: the scaled, key-masked softmax of given scores, with its gradient") {
  Generator gen(8);
  Tensor s = randn({2, 3, 5, 7}, gen) * 3.0;
  Tensor mask = zeros({2, 7}, kUInt8);
  mask.data_ptr<uint8_t>()[7 + 6] = 1;  // the second sequence's last key is padding
  mask.data_ptr<uint8_t>()[7 + 5] = 1;
  const double scale = 0.35;
  Tensor y = attention_softmax(s, scale, mask);
  Tensor ref = softmax(masked_fill(s * scale, mask.view({2, 1, 1, 7}), -INFINITY), -1);
  CHECK(testing::max_abs_diff(y, ref) <= 1e-6);
  CHECK(y.select(0, 1).narrow(-1, 5, 2).to_vector<float>() == std::vector<float>(3 * 5 * 2, 0.f));
  auto f = [&](const testing::TL& in) { return attention_softmax(in[0], scale, mask); };
  auto g = [&](const testing::TL& in) {
    return softmax(masked_fill(in[0] * scale, mask.view({2, 1, 1, 7}), -INFINITY), -1);
  };
  Tensor up = randn({2, 3, 5, 7}, gen);
  const testing::TL a = testing::forward_backward(f, {s}, up), b = testing::forward_backward(g, {s}, up);
  CHECK(testing::max_abs_diff(a[1], b[1]) <= 1e-6);
  CHECK_THROWS_WITH_AS(attention_softmax(s, scale, zeros({2, 6}, kUInt8)),
                       doctest::Contains("attention_softmax: expected a u8 key-padding mask [2, 7] for scores "
                                         "[2, 3, 5, 7], got uint8 [2, 6]"),
                       Error);
}

TEST_CASE("qat_matmul: a QAT attention in eval computes its scores and context on the integer codes") {
  Generator gen(7);
  nn::Attention fp32(16, 2, true, gen);
  QConfig qc = QConfig::default_qat();
  QATAttention att(fp32, qc);
  Tensor x = randn({3, 5, 16}, gen);
  att.train(true);
  (void)att(x);  // observe once so every quantizer has a scale
  att.eval();
  NoGradGuard ng;
  Tensor y = att(x);
  // The same by hand: qkv, the integer scores, softmax, the integer context, proj.
  Tensor qkv = (*att.child("qkv"))(x).reshape({3, 5, 3, 2, 8}).permute({2, 0, 3, 1, 4});
  FakeQuantize &fq_q = static_cast<FakeQuantize&>(*att.child("q_fake_quant")),
               &fq_k = static_cast<FakeQuantize&>(*att.child("k_fake_quant")),
               &fq_p = static_cast<FakeQuantize&>(*att.child("probs_fake_quant")),
               &fq_v = static_cast<FakeQuantize&>(*att.child("v_fake_quant"));
  Tensor s = qat_matmul_nt(qkv.select(0, 0), fq_q.scale, fq_q.zero_point, fq_q.spec(), qkv.select(0, 1), fq_k.scale,
                           fq_k.zero_point, fq_k.spec());
  Tensor p = attention_softmax(s, att.scale);
  Tensor o = qat_matmul(p, fq_p.scale, fq_p.zero_point, fq_p.spec(), qkv.select(0, 2), fq_v.scale, fq_v.zero_point,
                        fq_v.spec());
  Tensor want = (*att.child("proj"))(o.transpose(1, 2).reshape({3, 5, 16}));
  CHECK(testing::bit_equal(y, want));
  // ... and that was the fused path (5 tokens, fewer than the head's 8 dims).
  Tensor fused = qat_attention_fused(att, qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2), att.scale, Tensor(),
                                     nullptr, "test");
  REQUIRE(fused.defined());
  CHECK(testing::bit_equal((*att.child("proj"))(fused), want));
}

TEST_CASE("int8_attention: the fused inference of a QAT BERT attention has the composed path's bits, padding included") {
  // N past 16 and odd (masked register tails), and N below the head size.
  for (auto [hidden_, heads_, n_] : {std::tuple{32, 4, 37}, std::tuple{64, 2, 9}}) {
    const int64_t hidden = hidden_, heads = heads_, n = n_;
    CAPTURE(n);
    Generator gen(9);
    nn::BertConfig cfg;
    cfg.hidden_size = hidden;
    cfg.num_attention_heads = heads;
    nn::BertSelfAttention fp32(cfg, gen);
    QATBertSelfAttention att(fp32, QConfig::default_qat());
    const int64_t B = 3, N = n, pad = N - 7;
    Tensor h = randn({B, N, hidden}, gen);
    Tensor mask = zeros({B, N}, kUInt8);
    for (int64_t j = pad; j < N; ++j) mask.data_ptr<uint8_t>()[N + j] = 1;  // the second sequence is padded
    for (int64_t j = 1; j < N; ++j) mask.data_ptr<uint8_t>()[2 * N + j] = 1;  // the third keeps one key
    att.train(true);
    (void)att(tensor_list{h, mask});  // observe
    att.eval();
    NoGradGuard ng;
    auto& fq_q = static_cast<FakeQuantize&>(*att.child("q_fake_quant"));
    REQUIRE(int8_attention_applies(fq_q, static_cast<FakeQuantize&>(*att.child("k_fake_quant")),
                                   static_cast<FakeQuantize&>(*att.child("probs_fake_quant")),
                                   static_cast<FakeQuantize&>(*att.child("v_fake_quant"))));
    const kernels::Isa prev = kernels::active_isa();
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      CAPTURE(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
      Tensor fused = att(tensor_list{h, mask});
      Tensor probs;
      Tensor composed;
      {  // a hook that asks for the probabilities takes the composed path
        nn::ScopedHook hook(att.register_forward_hook([&](const nn::ForwardCall& c) { probs = c.extras.at("probs"); }));
        composed = att(tensor_list{h, mask});
      }
      REQUIRE(probs.defined());
      CHECK(testing::bit_equal(fused, composed));
      // Padding keys get no weight.
      CHECK(probs.select(0, 1).narrow(-1, pad, N - pad).to_vector<float>() ==
            std::vector<float>(heads * N * (N - pad), 0.f));
      // The module's output was the fused path's.
      auto split = [&](const char* name) {
        return (*att.child(name))(h).reshape({B, N, heads, hidden / heads}).permute({0, 2, 1, 3});
      };
      Tensor direct = qat_attention_fused(att, split("query"), split("key"), split("value"), att.scale, mask,
                                          att.child("dropout").get(), "test");
      REQUIRE(direct.defined());
      CHECK(testing::bit_equal(direct, fused));
    }
    kernels::set_isa(prev);
    testing::check_thread_invariant([&] { return testing::TL{att(tensor_list{h, mask})}; });
    // Observers that still move (training mode) need the probabilities: the composed path.
    fq_q.train(true);
    CHECK_FALSE(int8_attention_applies(fq_q, static_cast<FakeQuantize&>(*att.child("k_fake_quant")),
                                       static_cast<FakeQuantize&>(*att.child("probs_fake_quant")),
                                       static_cast<FakeQuantize&>(*att.child("v_fake_quant"))));
  }
}

TEST_CASE("int8_attention_projected: a converted attention turns its projections' rows into codes in cache, same bits") {
  // BERT's three projections (padded batch, N past 16 and odd) and a ViT's one qkv (N below the head
  // size); 8-bit projections (Int8Linear) and 4-bit ones per channel (Int4Linear: the same bits as QAT).
  for (const auto& variant : {std::pair{true, 8}, {false, 8}, {true, 4}, {false, 4}}) {
    const bool bert = variant.first;
    const int wbits = variant.second;
    CAPTURE(bert);
    CAPTURE(wbits);
    Generator gen(11);
    auto root = std::make_shared<nn::Module>("Root");
    const int64_t hidden = 32, heads = 4, B = 3, N = bert ? 37 : 5;
    if (bert) {
      nn::BertConfig cfg;
      cfg.hidden_size = hidden;
      cfg.num_attention_heads = heads;
      root->register_module("attn", std::make_shared<nn::BertSelfAttention>(cfg, gen));
    } else {
      root->register_module("attn", std::make_shared<nn::Attention>(hidden, heads, true, gen));
    }
    QuantizationAwareTrainingConfig qcfg;
    qcfg.quantize_attention_matmuls = true;
    if (wbits == 4) qcfg.default_qconfig = QConfig::low_bit(4);
    prepare_qat(*root, qcfg);
    nn::Module& att = *root->child("attn");
    const std::vector<const char*> proj = bert ? std::vector<const char*>{"query", "key", "value"}
                                               : std::vector<const char*>{"qkv"};
    Tensor h = randn({B, N, hidden}, gen);
    Tensor mask;
    tensor_list in{h};
    if (bert) {
      mask = zeros({B, N}, kUInt8);
      for (int64_t j = N - 9; j < N; ++j) mask.data_ptr<uint8_t>()[N + j] = 1;
      in.push_back(mask);
    }
    root->train(true);
    (void)att(in);  // observe
    root->eval();
    NoGradGuard ng;
    const Tensor qat = att(in);  // QATLinear projections: the fused path from fp32 q, k, v
    convert(*root);
    for (const char* n : proj) REQUIRE(att.child(n)->type_name() == (wbits == 8 ? "Int8Linear" : "Int4Linear"));
    const int64_t hd = hidden / heads;
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    const kernels::Isa prev = kernels::active_isa();
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      CAPTURE(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
      Tensor converted = att(in), composed;
      {  // a hook on a projection takes the composed path
        nn::ScopedHook hook(att.child(proj[0])->register_forward_hook([](const nn::ForwardCall&) {}));
        composed = att(in);
      }
      CHECK(testing::bit_equal(converted, composed));
      if (i == static_cast<int>(prev)) CHECK(testing::bit_equal(converted, qat));
      Tensor direct = qat_attention_fused_projected(att, h, proj, heads, hd, scale, mask,
                                                    bert ? att.child("dropout").get() : nullptr, "test");
      REQUIRE(direct.defined());  // the path the module took
      CHECK(testing::bit_equal(bert ? direct : (*att.child("proj"))(direct), converted));
    }
    kernels::set_isa(prev);
    testing::check_thread_invariant([&] { return testing::TL{att(in)}; });
    std::vector<QuantizedLinear*> lin;
    for (const char* n : proj) lin.push_back(static_cast<QuantizedLinear*>(att.child(n).get()));
    auto& fq = static_cast<FakeQuantize&>(*att.child("q_fake_quant"));
    CHECK_THROWS_WITH(int8_attention_projected(h.narrow(2, 0, 16).contiguous(), lin, heads, scale, Tensor(), fq, fq,
                                               fq, fq),
                      doctest::Contains("int8_attention_projected: a projection takes 32 features, x has [3, "));
    CHECK_THROWS_WITH(int8_attention_projected(h, lin, 3, scale, Tensor(), fq, fq, fq, fq),
                      doctest::Contains("not q, k, v of 3 heads"));
  }
}
