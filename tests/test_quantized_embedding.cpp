// Quantized embedding tables: QATEmbedding (the fake-quantized table, STE) and the converted
// QuantizedEmbedding (codes at 2..8 bits, packed two per byte at 4 bits or less), bit for bit the same
// rows; prepare's rules (the default quantizes tables, "type:Embedding=fp32" keeps them); int8
// checkpoints (version 3) that round-trip and reject corrupt tables naming the file and the entry.
#include <doctest/doctest.h>

#include <filesystem>

#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/int8_io.hpp"
#include "quant/prepare.hpp"
#include "quant/qat_embedding.hpp"
#include "quant/quantized_embedding.hpp"
#include "tests/gradcheck.hpp"
#include "tests/checkpoint_edit.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::quant;

namespace {

// ids int32 [2, 5] -> Embedding(num, dim, padding 0) -> Linear(dim, 3)
std::shared_ptr<nn::Sequential> emb_model(int64_t num, int64_t dim, uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_shared<nn::Sequential>();
  m->push_back(std::make_shared<nn::Embedding>(num, dim, gen, 0));
  m->push_back(std::make_shared<nn::Linear>(dim, 3, true, gen));
  return m;
}

Tensor ids_for(int64_t num) {
  std::vector<int32_t> v(10);
  for (int i = 0; i < 10; ++i) v[i] = static_cast<int32_t>((i * 7 + 3) % num);
  v[4] = 0;  // the padding row
  return tensor(v, {2, 5});
}

int count_type(nn::Module& m, const std::string& type) {
  int n = 0;
  for (const auto& nm : m.named_modules()) n += nm.second->type_name() == type;
  return n;
}

// A QAT model (one training forward so the observers see the table), frozen, and its conversion.
struct Pair {
  std::shared_ptr<nn::Sequential> fq, conv;
};

Pair make_pair(int64_t num, int64_t dim, const QuantizationAwareTrainingConfig& cfg) {
  Pair p{emb_model(num, dim, 3), emb_model(num, dim, 3)};
  for (auto* m : {p.fq.get(), p.conv.get()}) {
    prepare_qat(*m, cfg);
    m->train();
    NoGradGuard ng;
    (*m)(ids_for(num));
    freeze_observers(*m);
    m->eval();
  }
  convert(*p.conv);
  return p;
}

}  // namespace

TEST_CASE("quantized embedding: QATEmbedding returns rows of the fake-quantized table, its gradient passes by STE") {
  Generator gen(1);
  nn::Embedding fp(12, 9, gen, 0);
  QATEmbedding q(fp, QConfig::low_bit(4, 0));
  CHECK(q.weight.raw_data() == fp.weight.raw_data());  // shared with the FP32 module
  q.train();
  const Tensor ids = ids_for(12);
  Tensor y = q(ids);
  FakeQuantize& fq = q.weight_fake_quant();
  const Tensor ref = embedding(fake_quantize(fp.weight.detach(), fq.scale, fq.zero_point, fq.spec()), ids, 0);
  CHECK(testing::max_abs_diff(y, ref) == 0.0);
  // Per row, symmetric over [-7, 7]: every weight lies inside its row's range, so the STE passes the
  // upstream gradient to each looked-up row (summed over repeats), zero elsewhere and on the padding row.
  const Tensor g = randn(y.sizes(), gen);
  (y * g).sum().backward();
  std::vector<float> expect(12 * 9, 0.0f);
  const std::vector<int32_t> id = ids.to_vector<int32_t>();
  const std::vector<float> gv = g.to_vector<float>();
  for (size_t t = 0; t < id.size(); ++t)
    for (int d = 0; d < 9; ++d)
      if (id[t] != 0) expect[id[t] * 9 + d] += gv[t * 9 + d];
  CHECK(testing::max_abs_diff(q.weight.grad(), tensor(expect, {12, 9})) < 1e-6);
}

TEST_CASE("quantized embedding: QuantizedEmbedding is bit for bit the frozen QATEmbedding at 2..8 bits") {
  for (int bits : {8, 6, 5, 4, 3, 2})
    for (int64_t group : {int64_t{0}, int64_t{8}})
      for (int64_t dim : {int64_t{16}, int64_t{37}}) {
        CAPTURE(bits);
        CAPTURE(group);
        CAPTURE(dim);
        QuantizationAwareTrainingConfig cfg;
        cfg.default_qconfig = QConfig::low_bit(bits, group);
        add_precision_rules(cfg, "1=4");  // the Linear per channel: its int4 GEMM is bit-exact too
        Pair p = make_pair(11, dim, cfg);
        REQUIRE(count_type(*p.conv, "QuantizedEmbedding") == 1);
        auto e = std::dynamic_pointer_cast<QuantizedEmbedding>(p.conv->get_submodule("0"));
        REQUIRE(e != nullptr);
        CHECK(e->bits == bits);
        CHECK(e->weight.dtype() == (bits <= 4 ? kUInt8 : kInt8));
        CHECK(e->weight.size(1) == (bits <= 4 ? (dim + 1) / 2 : dim));
        CHECK(e->weight_scale.size(1) == (group ? (dim + group - 1) / group : 1));
        NoGradGuard ng;
        const Tensor ids = ids_for(11);
        Tensor a = (*p.fq->get_submodule("0"))(ids), b = (*e)(ids);
        CHECK(testing::max_abs_diff(a, b) == 0.0);
        const kernels::Isa saved = kernels::active_isa();  // the fake quantization has ISA paths
        for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
          CAPTURE(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
          CHECK(testing::max_abs_diff((*p.fq)(ids), (*p.conv)(ids)) == 0.0);
        }
        kernels::set_isa(saved);
        // The padding row (zero in FP32) stays zero.
        CHECK(testing::max_abs_diff(b.narrow(0, 0, 1).narrow(1, 4, 1), zeros({1, 1, dim})) == 0.0);
      }
}

TEST_CASE("quantized embedding: ids outside the table name the op, the index and the range") {
  QuantizedEmbedding e(5, 4);
  CHECK_THROWS_WITH_AS(e(tensor(std::vector<int32_t>{1, 5}, {2})),
                       doctest::Contains("QuantizedEmbedding: index 5 at position 1 is out of range for a table of 5 rows"),
                       Error);
  CHECK_THROWS_WITH_AS(e(zeros({2}, kFloat32)), doctest::Contains("QuantizedEmbedding"), Error);
  CHECK_THROWS_WITH_AS(QuantizedEmbedding(5, 4, 9), doctest::Contains("codes of 2..8 bits, got 9"), Error);
  CHECK_THROWS_WITH_AS(QuantizedEmbedding(5, 4, 8, int64_t{1} << 62), doctest::Contains("group_size must be 0"), Error);
}

TEST_CASE("quantized embedding: the default config quantizes tables, 'type:Embedding=fp32' keeps them FP32") {
  auto m = emb_model(10, 8, 1);
  PrepareSummary s = prepare_qat(*m, {});
  CHECK(count_type(*m, "QATEmbedding") == 1);
  CHECK(s.str().find("0: Embedding -> QATEmbedding") != std::string::npos);
  auto k = emb_model(10, 8, 1);
  QuantizationAwareTrainingConfig cfg;
  add_precision_rules(cfg, "type:Embedding=fp32");
  PrepareSummary s2 = prepare_qat(*k, cfg);
  CHECK(count_type(*k, "Embedding") == 1);
  CHECK(count_type(*k, "QATLinear") == 1);
  CHECK(s2.kept_fp32 == std::vector<std::string>{"0"});
  // Specs a QuantizedEmbedding cannot store are refused when preparing, not after training: affine,
  // the full signed range [-128, 127], more than 8 bits.
  for (const QuantSpec& ws : {QuantSpec::make(8, true, false, true), QuantSpec::make(8, true, true, true),
                              QuantSpec::make(10, true, true, true)}) {
    CAPTURE(ws.str());
    QuantizationAwareTrainingConfig bad;
    bad.default_qconfig->weight = ws;
    CHECK_THROWS_WITH_AS(prepare_qat(*emb_model(10, 8, 1), bad), doctest::Contains("type:Embedding=fp32"), Error);
  }
}

TEST_CASE("quantized embedding: checkpoints round-trip (version 3) and corrupt tables are rejected by name") {
  testing::TempDir dir;
  QuantizationAwareTrainingConfig cfg;
  cfg.default_qconfig = QConfig::low_bit(4, 8);
  Pair p = make_pair(11, 16, cfg);
  const std::string good = dir.file("good.safetensors");
  save_int8(good, *p.conv);
  auto back = emb_model(11, 16, 9);
  const nn::Metadata md = load_int8(good, *back);
  CHECK(md.at("version") == "3");
  CHECK(md.at("quantized_embedding") == "0:11:16:0:4:8;");
  CHECK(count_type(*back, "QuantizedEmbedding") == 1);
  NoGradGuard ng;
  CHECK(testing::max_abs_diff((*back)(ids_for(11)), (*p.conv)(ids_for(11))) == 0.0);
  CHECK(testing::max_abs_diff((*back->get_submodule("0"))(ids_for(11)), (*p.fq->get_submodule("0"))(ids_for(11))) == 0.0);

  const testing::CheckpointEdits rewrite(good, dir);
  const auto find = testing::find_tensor;
  auto rejects = [](const std::string& path, const std::string& why) {
    CAPTURE(why);
    auto skeleton = emb_model(11, 16, 9);
    try {
      load_int8(path, *skeleton);
      FAIL_CHECK("loaded " << path);
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find(why) != std::string::npos);
    }
  };
  rejects(rewrite("code.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
            Tensor c = find(t, "0.weight").clone();
            c.data_ptr<uint8_t>()[20] = 0x08;  // low nibble -8: outside [-7, 7]
            find(t, "0.weight") = c;
          }),
          "'0': weight code [2, 8] = -8 is outside the symmetric 4-bit range");
  rejects(rewrite("scale.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
            Tensor s = find(t, "0.weight_scale").clone();
            s.data_ptr<float>()[3] = 0.f;
            find(t, "0.weight_scale") = s;
          }),
          "weight_scale[1, 1] must be positive");
  rejects(rewrite("shape.safetensors",
                  [&](nn::NamedTensors& t, nn::Metadata&) { find(t, "0.weight") = zeros({11, 16}, kUInt8); }),
          "0.weight");
  rejects(rewrite("dims.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& m) { m["quantized_embedding"] = "0:12:16:0:4:8;"; }),
          "'0' is Embedding(11, 16, padding_idx=0) in the model but Embedding(12, 16, padding_idx=0) in the file");
  rejects(rewrite("entry.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& m) { m["quantized_embedding"] = "0:11:16;"; }),
          "malformed quantized_embedding entry '0:11:16'");
  rejects(rewrite("bits.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& m) { m["quantized_embedding"] = "0:11:16:0:9:8;"; }),
          "codes of 2..8 bits, got 9");
  rejects(rewrite("bits_wrap.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& m) { m["quantized_embedding"] = "0:11:16:0:4294967304:8;"; }),
          "codes of 2..8 bits, got 4294967304");
  rejects(rewrite("group.safetensors", [&](nn::NamedTensors&, nn::Metadata& m) {
            m["quantized_embedding"] = "0:11:16:0:4:9223372036854775807;";
          }),
          "group_size must be 0 (per row) or in [1, 65536]");
  rejects(rewrite("missing_module.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& m) { m["quantized_embedding"] = "7:11:16:0:4:8;"; }),
          "quantized_embedding entry '7'");
  rejects(rewrite("linear.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& m) { m["quantized_embedding"] = "1:11:16:0:4:8;"; }),
          "'1' is not an Embedding in the model");
  rejects(rewrite("version.safetensors", [&](nn::NamedTensors&, nn::Metadata& m) { m["version"] = "2"; }),
          "unexpected keys (1): 0.weight_scale");  // a version 2 reader knows no quantized tables: their tensors are unexpected
  // Odd dim: a set padding nibble is rejected.
  QuantizedEmbedding odd(2, 5, 4);
  odd.weight.data_ptr<uint8_t>()[2] = 0x10;
  CHECK_THROWS_WITH_AS(odd.validate("odd"), doctest::Contains("non-zero padding nibble"), Error);
}

TEST_CASE("quantized embedding: LSQ scales (learnable) train through QATEmbedding and convert") {
  QuantizationAwareTrainingConfig cfg;
  QConfig qc = QConfig::low_bit(4, 8);
  qc.learnable_scale = true;
  cfg.default_qconfig = qc;
  add_precision_rules(cfg, "1=fp32");
  auto m = emb_model(11, 16, 3);
  prepare_qat(*m, cfg);
  m->train();
  auto* q = dynamic_cast<QATEmbedding*>(m->get_submodule("0").get());
  REQUIRE(q != nullptr);
  Tensor y = (*m)(ids_for(11));
  y.sum().backward();
  const Tensor sg = q->weight_fake_quant().scale.grad();
  REQUIRE(sg.defined());
  CHECK(sg.sizes() == Shape{11, 2});
  CHECK(testing::max_abs_diff(sg, zeros({11, 2})) > 0.0);  // the scales learn
  m->eval();
  Tensor fq;
  {
    NoGradGuard ng;
    fq = (*m)(ids_for(11));
  }
  convert(*m);
  NoGradGuard ng;
  CHECK(count_type(*m, "QuantizedEmbedding") == 1);
  CHECK(testing::max_abs_diff((*m)(ids_for(11)), fq) <= 1e-6 * testing::max_abs_diff(fq, zeros(fq.sizes())));
}
