// Low-bit conversion: Int4Linear (packed s4 weights on the u8 x s4 GEMM) against the fake-quant
// QATLinear, mixed precision by name rules, int4 checkpoints and their validation.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "nn/io/safetensors.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/int4_linear.hpp"
#include "quant/int8_io.hpp"
#include "quant/int8_linear.hpp"
#include "quant/prepare.hpp"
#include "quant/qat_linear.hpp"
#include "tests/gradcheck.hpp"
#include "tests/nn_test_util.hpp"
#include "tests/checkpoint_edit.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::quant;

namespace {

// One Linear prepared with qc, observers run on a calibration batch, frozen, eval mode.
std::shared_ptr<nn::Sequential> prepared_linear(int64_t K, int64_t N, bool bias, const QConfig& qc, Generator& gen) {
  auto net = std::make_shared<nn::Sequential>(
      std::vector<nn::ModulePtr>{std::make_shared<nn::Linear>(K, N, bias, gen)});
  QuantizationAwareTrainingConfig cfg;
  cfg.default_qconfig = qc;
  prepare_qat(*net, cfg);
  (*net)(randn({16, K}, gen) * 1.5 + 0.3);
  freeze_observers(*net);
  net->eval();
  return net;
}

nn::ViTConfig vit_config(int64_t dim, int64_t hidden) {
  nn::ViTConfig c;
  c.img = 12;
  c.patch = 4;
  c.dim = dim;
  c.depth = 2;
  c.heads = 4;
  c.hidden = hidden;
  c.classes = 7;
  return c;
}

std::shared_ptr<nn::ViT> make_vit(const nn::ViTConfig& c, uint64_t seed) {
  Generator gen(seed);
  auto v = std::make_shared<nn::ViT>(c, gen);
  NoGradGuard ng;
  for (auto& [n, p] : v->named_parameters())
    if (n.find("weight") != std::string::npos && p.dim() == 2) Tensor(p).copy_(randn(p.sizes(), gen) * 0.15);
  return v;
}

// A fake-quant ViT under cfg (observers run on three training-mode batches, then frozen) and a
// second instance converted from its state dict.
struct Pair {
  std::shared_ptr<nn::ViT> qat, conv;
  ConvertSummary summary;
};

Pair make_pair(const nn::ViTConfig& c, const QuantizationAwareTrainingConfig& cfg, Generator& gen) {
  Pair p{make_vit(c, 11), make_vit(c, 99), {}};
  prepare_qat(*p.qat, cfg);
  prepare_qat(*p.conv, cfg);
  {
    NoGradGuard ng;
    for (int i = 0; i < 3; ++i) (*p.qat)(randn({4, c.chans, c.img, c.img}, gen));
  }
  freeze_observers(*p.qat);
  p.qat->eval();
  p.conv->load_state_dict(p.qat->state_dict());
  p.summary = convert(*p.conv);
  return p;
}

}  // namespace

TEST_CASE("int4: Int4Linear packs two codes per byte, low nibble first, padding nibble 0") {
  Int4Linear l(5, 3, false);
  CHECK(l.weight.sizes() == Shape{3, 3});
  CHECK(l.weight.dtype() == kUInt8);
  CHECK(l.weight_scale.sizes() == Shape{3, 1});
  std::vector<int8_t> codes;
  for (int i = 0; i < 15; ++i) codes.push_back(static_cast<int8_t>(i % 15 - 7));
  l.set_weight_codes(codes.data());
  CHECK(l.weight_codes() == codes);
  const uint8_t* w = l.weight.data_ptr<uint8_t>();
  CHECK(w[0] == uint8_t((codes[0] & 15) | (codes[1] & 15) << 4));
  CHECK((w[2] >> 4) == 0);  // row 0's padding nibble
  CHECK(w[3] == uint8_t((codes[5] & 15) | (codes[6] & 15) << 4));
  l.validate();
  Int4Linear g(100, 4, true, 32, true, 3);
  CHECK(g.weight_scale.sizes() == Shape{4, 4});
  CHECK_FALSE(g.input_scale.defined());  // per token: nothing to store
  CHECK_THROWS_WITH_AS(Int4Linear(64, 4, true, 12), doctest::Contains("multiple of 8"), Error);
  CHECK_THROWS_WITH_AS(Int4Linear(64, 4, true, 0, false, 5), doctest::Contains("Int8Linear for 5..8"), Error);
}

TEST_CASE("int4: 4-bit per channel, per-tensor activations: Int4Linear is bit for bit the frozen QATLinear") {
  Generator gen(1);
  for (auto shape : {std::tuple{37, 11, 4}, std::tuple{128, 64, 4}, std::tuple{300, 70, 3}, std::tuple{64, 9, 2}}) {
    const int64_t K = std::get<0>(shape), N = std::get<1>(shape);
    const int bits = std::get<2>(shape);
    CAPTURE(K);
    CAPTURE(bits);
    auto net = prepared_linear(K, N, true, QConfig::low_bit(bits), gen);
    Tensor x = randn({33, K}, gen) * 1.7 + 0.3;
    Tensor y_fq = (*net)(x);
    ConvertSummary s = convert(*net);
    CHECK(s.int4_linears == std::vector<std::string>{"0"});
    REQUIRE(net->get_submodule("0")->type_name() == "Int4Linear");
    const kernels::Isa prev = kernels::active_isa();
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      CAPTURE(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
      CHECK(testing::max_abs_diff((*net)(x), y_fq) == 0.0);
    }
    kernels::set_isa(prev);
  }
}

TEST_CASE("int4: per-group weights and per-token activations: Int4Linear matches the fake-quant forward") {
  Generator gen(2);
  for (int64_t G : {8, 32, 64, 128})
    for (bool tok : {false, true}) {
      const int64_t K = 200, N = 48;
      CAPTURE(G);
      CAPTURE(tok);
      auto net = prepared_linear(K, N, true, QConfig::low_bit(4, G, tok), gen);
      auto q = std::dynamic_pointer_cast<QATLinear>(net->get_submodule("0"));
      CHECK(q->weight_fake_quant().scale.sizes() == Shape{N, (K + G - 1) / G});
      Tensor x = randn({21, K}, gen) * 1.7 + 0.3;
      Tensor y_fq = (*net)(x);
      convert(*net);
      REQUIRE(net->get_submodule("0")->type_name() == "Int4Linear");
      Tensor y = (*net)(x);
      // The same integer grid; only the float summation differs (fp32 GEMM of dequantized values
      // against exact integer group sums), so the gap is a few float roundings of |y|.
      const double diff = testing::max_abs_diff(y, y_fq), scale = testing::max_abs(y_fq);
      MESSAGE("G=", G, " per_token=", tok, ": max |Int4Linear - fake quant| = ", diff, " (max |y| ", scale, ")");
      CHECK(diff <= 1e-5 * scale);
      CHECK(diff > -1.0);
      // The grid is real: far from the FP32 layer.
      auto fp = std::make_shared<nn::Linear>(K, N, true, gen);
      Tensor(fp->weight).copy_(q->weight.detach());
      Tensor(fp->bias).copy_(q->bias.detach());
      CHECK(testing::max_abs_diff(linear(x, fp->weight, fp->bias), y) > 100 * diff + 1e-3);
    }
}

TEST_CASE("int4: mixed precision by name rules: first / last layers 8-bit, the rest 4-bit per group, one FP32") {
  QuantizationAwareTrainingConfig cfg;
  cfg.default_qconfig = QConfig::low_bit(4, 16);
  add_precision_rules(cfg, "head=8,blocks.0.attn.qkv=fp32,blocks.1.mlp.fc2=3g8,type:Nonexistent=8");
  REQUIRE(cfg.name_overrides.size() == 3);
  CHECK(cfg.type_overrides.count("Nonexistent") == 1);
  Generator gen(3);
  Pair p = make_pair(vit_config(32, 64), cfg, gen);
  auto spec_of = [&](const std::string& n) {
    return std::dynamic_pointer_cast<QATLinear>(p.qat->get_submodule(n))->weight_fake_quant().spec();
  };
  CHECK(spec_of("head") == QuantSpec::int8_symmetric_per_channel(0));
  CHECK(spec_of("blocks.1.mlp.fc1") == QuantSpec::int_symmetric_weight(4, 16));
  CHECK(spec_of("blocks.1.mlp.fc2") == QuantSpec::int_symmetric_weight(3, 8));
  CHECK(p.qat->get_submodule("blocks.0.attn.qkv")->type_name() == "Linear");
  CHECK(p.conv->get_submodule("head")->type_name() == "Int8Linear");
  CHECK(p.conv->get_submodule("blocks.0.attn.proj")->type_name() == "Int4Linear");
  CHECK(p.conv->get_submodule("blocks.1.mlp.fc2")->type_name() == "Int4Linear");
  CHECK(p.conv->get_submodule("blocks.0.attn.qkv")->type_name() == "Linear");
  CHECK(p.summary.int8_linears == std::vector<std::string>{"head"});
  CHECK(p.summary.int4_linears.size() == 7);  // 2 blocks x 4 Linears, less the FP32 qkv
  Tensor x = randn({16, 1, 12, 12}, gen);
  Tensor a = (*p.qat)(x), b = (*p.conv)(x);
  const double diff = testing::max_abs_diff(a, b);
  MESSAGE("mixed-precision ViT: max |fake quant - converted| logit difference ", diff, " (max |logit| ",
          testing::max_abs(a), ")");
  CHECK(diff <= 1e-4 * testing::max_abs(a));
  CHECK(a.argmax(1).to_vector<int32_t>() == b.argmax(1).to_vector<int32_t>());

  for (const char* bad : {"head", "head=9", "head=4g", "head=4x8", "=8", "head=4g12x"}) {
    CAPTURE(bad);
    QuantizationAwareTrainingConfig c2;
    CHECK_THROWS_WITH_AS(add_precision_rules(c2, bad), doctest::Contains("add_precision_rules"), Error);
  }
}

TEST_CASE("int4: checkpoints round-trip, hold packed nibbles, and are at most 0.55x the int8 one") {
  Generator gen(4);
  testing::TempDir dir;
  nn::ViTConfig c;  // the reference ViT (D=128, hidden 512, 6 blocks)
  c.depth = 6;
  Pair p8 = make_pair(c, {}, gen);
  const std::string f8 = dir.file("int8.safetensors");
  save_int8_vit(f8, *p8.conv);
  CHECK(nn::load_safetensors(f8).metadata.at("version") == "1");  // int8-only files unchanged
  int64_t per_channel_bytes = 0;
  for (int64_t G : {0, 128, 64}) {
    CAPTURE(G);
    QuantizationAwareTrainingConfig c4;
    c4.default_qconfig = QConfig::low_bit(4, G);
    Pair p4 = make_pair(c, c4, gen);
    const std::string f4 = dir.file("int4_" + std::to_string(G) + ".safetensors");
    save_int8_vit(f4, *p4.conv);
    const double ratio = double(std::filesystem::file_size(f4)) / double(std::filesystem::file_size(f8));
    MESSAGE("W4 (group ", G, ") / int8 checkpoint size: ", ratio, " (", std::filesystem::file_size(f4), " / ",
            std::filesystem::file_size(f8), " bytes)");
    // Per channel: within the target. Per group the file grows by exactly the extra F32 scales
    // (out * (groups - 1) per layer; 0.25 / 0.5 bits a weight for G = 128 / 64), give or take the
    // header's few hundred bytes of names and metadata.
    const auto bytes = static_cast<int64_t>(std::filesystem::file_size(f4));
    if (G == 0) {
      CHECK(ratio <= 0.55);
      per_channel_bytes = bytes;
    } else {
      int64_t extra = 0;
      for (const std::string& n : p4.summary.int4_linears) {
        auto l = std::dynamic_pointer_cast<Int4Linear>(p4.conv->get_submodule(n));
        extra += l->out_features * (l->groups - 1) * 4;
      }
      CHECK(std::abs(bytes - per_channel_bytes - extra) < 512);
    }
    nn::SafeTensorsFile f = nn::load_safetensors(f4);
    CHECK(f.metadata.at("version") == "2");
    CHECK(f.metadata.at("int4_linear").find("blocks.0.mlp.fc1:128:512:1:4:" + std::to_string(G) + ":0;") !=
          std::string::npos);
    CHECK(f.at("blocks.0.mlp.fc1.weight").dtype() == kUInt8);
    CHECK(f.at("blocks.0.mlp.fc1.weight").sizes() == Shape{512, 64});
    CHECK(f.at("blocks.0.mlp.fc1.weight_scale").sizes() == Shape{512, G ? 128 / G : 1});
    auto loaded = load_int8_vit(f4);
    CHECK(loaded->get_submodule("blocks.5.mlp.fc2")->type_name() == "Int4Linear");
    Tensor x = randn({3, 1, 28, 28}, gen);
    CHECK((*loaded)(x).to_vector<float>() == (*p4.conv)(x).to_vector<float>());
  }
}

TEST_CASE("int4: corrupt or inconsistent int4 checkpoints are rejected with the file and the reason") {
  Generator gen(5);
  testing::TempDir dir;
  QuantizationAwareTrainingConfig cfg;
  cfg.default_qconfig = QConfig::low_bit(4, 8, true);
  Pair p = make_pair(vit_config(32, 64), cfg, gen);
  const std::string good = dir.file("good.safetensors");
  save_int8_vit(good, *p.conv);
  CHECK_NOTHROW(load_int8_vit(good));
  const testing::CheckpointEdits rewrite(good, dir);
  const auto find = testing::find_tensor;
  auto rejects = [](const std::string& path, const std::string& why) {
    CAPTURE(why);
    try {
      load_int8_vit(path);
      FAIL_CHECK("loaded " << path);
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find(why) != std::string::npos);
    }
  };
  const std::string w = "blocks.0.mlp.fc1.weight";
  rejects(rewrite("shape.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
            find(t, w) = zeros({64, 15}, kUInt8);
          }),
          w);
  rejects(rewrite("dtype.safetensors",
                  [&](nn::NamedTensors& t, nn::Metadata&) { find(t, w) = zeros({64, 16}, kInt8); }),
          w);
  rejects(rewrite("code.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
            Tensor c = find(t, w).clone();
            c.data_ptr<uint8_t>()[5] = 0x80;  // high nibble -8: outside [-7, 7]
            find(t, w) = c;
          }),
          "outside the symmetric 4-bit range");
  rejects(rewrite("scale.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
            Tensor s = find(t, "blocks.1.attn.proj.weight_scale").clone();
            s.data_ptr<float>()[3] = -1.f;
            find(t, "blocks.1.attn.proj.weight_scale") = s;
          }),
          "weight_scale[0, 3] must be positive");
  rejects(rewrite("entry.safetensors", [&](nn::NamedTensors&, nn::Metadata& md) { md["int4_linear"] += "head:1:2;"; }),
          "malformed int4_linear entry 'head:1:2'");
  rejects(rewrite("bits.safetensors",
                  [&](nn::NamedTensors&, nn::Metadata& md) {
                    std::string& e = md["int4_linear"];
                    const size_t at = e.find("blocks.0.mlp.fc1:32:64:1:4:8:1");
                    REQUIRE(at != std::string::npos);
                    e.replace(at, 30, "blocks.0.mlp.fc1:32:64:1:7:8:1");
                  }),
          "weights of 2..4 bits");
  rejects(rewrite("version.safetensors", [&](nn::NamedTensors&, nn::Metadata& md) { md["version"] = "1"; }),
          "no int8_linear, int4_linear or quantized_embedding layers listed");  // version 1 knows no int4_linear
  rejects(rewrite("missing.safetensors", [&](nn::NamedTensors&, nn::Metadata& md) { md.erase("int4_linear"); }),
          "metadata has no 'int4_linear'");
  // Odd in_features: a set padding nibble is rejected.
  Int4Linear odd(5, 2, false);
  odd.weight.data_ptr<uint8_t>()[2] = 0x10;
  CHECK_THROWS_WITH_AS(odd.validate("odd"), doctest::Contains("non-zero padding nibble"), Error);
  // A truncated file.
  const std::string cut = dir.file("cut.safetensors");
  std::filesystem::copy_file(good, cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(good) - 100);
  CHECK_THROWS_WITH_AS(load_int8_vit(cut), doctest::Contains(cut.c_str()), Error);
}
