// Conversion to int8: Int8Linear against QATLinear (same grid, bit for bit), a small ViT fake-quant vs
// converted, every ISA path, PTQ end to end, int8 safetensors checkpoints and their validation.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "nn/io/safetensors.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
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

nn::ViTConfig small_vit() {
  nn::ViTConfig c;
  c.img = 12;
  c.patch = 4;
  c.dim = 32;
  c.depth = 2;
  c.heads = 4;
  c.hidden = 64;
  c.classes = 7;
  return c;
}


// A model whose weights are scaled up so activations and logits span a realistic range.
std::shared_ptr<nn::ViT> make_vit(const nn::ViTConfig& c, uint64_t seed) {
  Generator gen(seed);
  auto v = std::make_shared<nn::ViT>(c, gen);
  NoGradGuard ng;
  for (auto& [n, p] : v->named_parameters())
    if (n.find("weight") != std::string::npos && p.dim() == 2) Tensor(p).copy_(randn(p.sizes(), gen) * 0.15);
  return v;
}

// A fake-quant ViT (observers initialized by training-mode forwards, then frozen) and an identical
// instance converted to int8 from its state dict.
struct Pair {
  std::shared_ptr<nn::ViT> qat, int8;
};

Pair make_pair(const nn::ViTConfig& c, const QuantizationAwareTrainingConfig& cfg, Generator& gen) {
  Pair p{make_vit(c, 11), make_vit(c, 99)};
  prepare_qat(*p.qat, cfg);
  prepare_qat(*p.int8, cfg);
  p.qat->train();
  {
    NoGradGuard ng;
    for (int i = 0; i < 3; ++i) (*p.qat)(randn({4, c.chans, c.img, c.img}, gen));
  }
  freeze_observers(*p.qat);
  p.qat->eval();
  p.int8->load_state_dict(p.qat->state_dict());
  convert(*p.int8);
  return p;
}

}  // namespace

TEST_CASE("qat convert: Int8Linear computes bit for bit what the frozen QATLinear computes") {
  Generator gen(1);
  for (auto shape : {std::tuple{37, 11, true}, std::tuple{128, 64, false}, std::tuple{300, 70, true}}) {
    const int64_t K = std::get<0>(shape), N = std::get<1>(shape);
    const bool with_bias = std::get<2>(shape);
    CAPTURE(K);
    auto net = std::make_shared<nn::Sequential>(
        std::vector<nn::ModulePtr>{std::make_shared<nn::Linear>(K, N, with_bias, gen)});
    prepare_qat(*net);
    Tensor calib = randn({16, K}, gen) * 1.5 + 0.3;
    (*net)(calib);  // training mode: observers see the input and the weight
    freeze_observers(*net);
    net->eval();
    Tensor x = randn({33, K}, gen) * 1.7 + 0.3;  // some values clamp at the range ends
    Tensor y_fq = (*net)(x);
    auto q = std::dynamic_pointer_cast<QATLinear>(net->get_submodule("0"));
    Tensor y_composed = linear(q->input_fake_quant()(x), q->weight_fake_quant()(q->weight), q->bias);
    convert(*net);
    REQUIRE(net->get_submodule("0")->type_name() == "Int8Linear");
    Tensor y_int8 = (*net)(x);
    const double diff = testing::max_abs_diff(y_fq, y_int8);
    const double diff_composed = testing::max_abs_diff(y_composed, y_int8);
    MESSAGE("K=", K, " max |QATLinear - Int8Linear| = ", diff, ", max |fq(x) fq(W)^T + b (fp32) - Int8Linear| = ",
            diff_composed, " (max |y| ", quench::testing::max_abs(y_int8), ")");
    CHECK(diff == 0.0);
    CHECK(diff_composed <= 1e-5 * quench::testing::max_abs(y_int8));
  }
}

TEST_CASE("qat convert: a small ViT, fake-quant vs converted int8, logits and argmax agree") {
  Generator gen(2);
  for (bool attn : {false, true}) {
    CAPTURE(attn);
    QuantizationAwareTrainingConfig cfg;
    cfg.quantize_attention_matmuls = attn;
    Pair p = make_pair(small_vit(), cfg, gen);
    ConvertSummary s;
    Tensor x = randn({16, 1, 12, 12}, gen);
    Tensor a = (*p.qat)(x), b = (*p.int8)(x);
    CHECK(p.int8->get_submodule("blocks.1.mlp.fc2")->type_name() == "Int8Linear");
    CHECK(p.int8->get_submodule("head")->type_name() == "Int8Linear");
    const double diff = testing::max_abs_diff(a, b);
    MESSAGE("ViT (attention matmuls quantized: ", attn, "): max |fake-quant - int8| logit difference ", diff,
            " (max |logit| ", quench::testing::max_abs(a), ")");
    CHECK(diff == 0.0);  // the same grid and the same float epilogue: bit-identical
    CHECK(a.argmax(1).to_vector<int32_t>() == b.argmax(1).to_vector<int32_t>());
    // The grid is coarse enough to matter: the FP32 model differs.
    auto fp = make_vit(small_vit(), 11);
    fp->eval();
    CHECK(testing::max_abs_diff((*fp)(x), a) > 1e-4);
  }
}

TEST_CASE("qat convert: every ISA path of the int8 model gives identical outputs") {
  Generator gen(4);
  Pair p = make_pair(small_vit(), {}, gen);
  Tensor x = randn({5, 1, 12, 12}, gen);
  const kernels::Isa prev = kernels::active_isa();
  std::vector<float> first;
  for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
    const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(i));
    CAPTURE(kernels::isa_name(isa));
    std::vector<float> y = (*p.int8)(x).to_vector<float>();
    auto lin = std::dynamic_pointer_cast<Int8Linear>(p.int8->get_submodule("blocks.0.attn.qkv"));
    CHECK(lin->packed().isa == isa);  // re-packed for this path
    if (first.empty())
      first = y;
    else
      CHECK(y == first);
  }
  kernels::set_isa(prev);
}

TEST_CASE("qat convert: PTQ end to end on a tiny model") {
  Generator gen(6);
  auto make = [&] {
    Generator g(8);
    return std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{
        std::make_shared<nn::Linear>(8, 24, true, g), std::make_shared<nn::GELU>(),
        std::make_shared<nn::Linear>(24, 4, true, g)});
  };
  auto fp = make(), net = make();
  fp->eval();
  PrepareSummary s = prepare_ptq(*net);
  CHECK(s.swapped.size() == 2);
  net->eval();
  Tensor x = randn({32, 8}, gen);
  // Observers only: the prepared model still computes FP32.
  CHECK((*net)(x).to_vector<float>() == (*fp)(x).to_vector<float>());
  CHECK_THROWS_WITH_AS(convert(*make()), doctest::Contains("run prepare_qat or prepare_ptq"), Error);
  {
    auto fresh = make();
    prepare_ptq(*fresh);
    CHECK_THROWS_WITH_AS(convert(*fresh), doctest::Contains("never saw data"), Error);
  }
  std::vector<Tensor> batches;
  for (int i = 0; i < 4; ++i) batches.push_back(randn({32, 8}, gen));
  CHECK(calibrate(*net, batches) == 4);
  CHECK_FALSE(net->is_training());
  auto q = std::dynamic_pointer_cast<QATLinear>(net->get_submodule("2"));
  REQUIRE(q);
  CHECK(q->input_fake_quant().fake_quant_enabled());
  CHECK_FALSE(q->input_fake_quant().observer_enabled());
  Tensor y_fq = (*net)(x);
  convert(*net);
  Tensor y_int8 = (*net)(x), y_fp = (*fp)(x);
  CHECK(testing::max_abs_diff(y_fq, y_int8) == 0.0);
  const double err = testing::max_abs_diff(y_fp, y_int8) / quench::testing::max_abs(y_fp);
  MESSAGE("PTQ tiny model: max |int8 - fp32| / max |fp32| = ", err);
  CHECK(err < 0.05);
  CHECK(err > 0.0);
}

TEST_CASE("qat convert: int8 ViT checkpoints round-trip through safetensors, 4x smaller than FP32") {
  Generator gen(9);
  testing::TempDir dir;
  nn::ViTConfig c;  // the reference ViT (D=128, 6 blocks)
  c.depth = 6;
  auto fp = make_vit(c, 3);
  auto vit = make_vit(c, 3);
  prepare_qat(*vit);
  {
    NoGradGuard ng;
    (*vit)(randn({1, 1, 28, 28}, gen));
  }
  convert(*vit);
  Tensor x = randn({2, 1, 28, 28}, gen);
  Tensor y = (*vit)(x);
  const std::string f8 = dir.file("int8.safetensors"), f32 = dir.file("fp32.safetensors");
  save_int8_vit(f8, *vit, {{"note", "test"}});
  nn::NamedTensors fpt;
  for (const auto& [k, t] : fp->state_dict()) fpt.emplace_back(k, t);
  nn::save_safetensors(f32, fpt);
  const double ratio = static_cast<double>(std::filesystem::file_size(f8)) / std::filesystem::file_size(f32);
  MESSAGE("int8 / fp32 checkpoint size: ", ratio);
  CHECK(ratio < 0.3);
  nn::SafeTensorsFile file = nn::load_safetensors(f8);
  CHECK(file.at("blocks.0.attn.qkv.weight").dtype() == kInt8);
  CHECK(file.at("blocks.0.attn.qkv.weight").sizes() == Shape{384, 128});
  CHECK(file.at("blocks.0.attn.qkv.weight_scale").sizes() == Shape{384});
  CHECK(file.metadata.at("format") == "quench-int8");
  CHECK(file.metadata.at("note") == "test");
  CHECK(parse_vit_config(file.metadata.at("vit_config")).depth == 6);

  auto loaded = load_int8_vit(f8);
  CHECK(loaded->get_submodule("blocks.5.mlp.fc1")->type_name() == "Int8Linear");
  CHECK(loaded->get_submodule("blocks.5.mlp")->type_name() == "Int8Mlp");  // the fast path, as convert
  CHECK((*loaded)(x).to_vector<float>() == y.to_vector<float>());
}

TEST_CASE("qat convert: loading an int8 checkpoint validates everything") {
  Generator gen(10);
  testing::TempDir dir;
  Pair p = make_pair(small_vit(), {}, gen);
  const std::string good = dir.file("good.safetensors");
  save_int8_vit(good, *p.int8);
  const testing::CheckpointEdits rewrite(good, dir);
  const auto find = testing::find_tensor;
  std::string wrong_dtype = rewrite("dtype.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
    Tensor& w = find(t, "blocks.0.mlp.fc1.weight");
    w = w.to(kFloat32);
  });
  CHECK_THROWS_WITH_AS(load_int8_vit(wrong_dtype), doctest::Contains("blocks.0.mlp.fc1.weight"), Error);
  std::string missing = rewrite("missing.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
    t.erase(std::remove_if(t.begin(), t.end(), [](auto& e) { return e.first == "head.weight_scale"; }), t.end());
  });
  CHECK_THROWS_WITH_AS(load_int8_vit(missing), doctest::Contains("head.weight_scale"), Error);
  std::string bad_scale = rewrite("scale.safetensors", [&](nn::NamedTensors& t, nn::Metadata&) {
    Tensor& s = find(t, "blocks.1.attn.proj.input_scale");
    s = tensor({-1.f}, {1});
  });
  CHECK_THROWS_WITH_AS(load_int8_vit(bad_scale), doctest::Contains("input_scale must be positive"), Error);
  std::string fp32 = rewrite("fp32.safetensors", [&](nn::NamedTensors&, nn::Metadata& md) { md.erase("format"); });
  CHECK_THROWS_WITH_AS(load_int8_vit(fp32), doctest::Contains("not a quench int8 checkpoint"), Error);
  std::string shape = rewrite("cfg.safetensors", [&](nn::NamedTensors&, nn::Metadata& md) {
    nn::ViTConfig c = small_vit();
    c.hidden = 48;
    md["vit_config"] = vit_config_str(c);
  });
  CHECK_THROWS_WITH_AS(load_int8_vit(shape), doctest::Contains("blocks.0.mlp.fc1"), Error);
  CHECK_THROWS_WITH_AS(save_int8(dir.file("x.safetensors"), *make_vit(small_vit(), 1)),
                       doctest::Contains("convert it first"), Error);
}
