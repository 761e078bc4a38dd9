// The fused int8 fast paths of quant::convert (quant/int8_mlp.hpp, quant/int8_block.hpp) against the unfused modules they
// replace: bit for bit, on every ISA path, for 1 and 2 threads, and against the fake-quant model.
#include <doctest/doctest.h>

#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/int4_linear.hpp"
#include "quant/int8_block.hpp"
#include "quant/int8_linear.hpp"
#include "quant/int8_mlp.hpp"
#include "quant/prepare.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;
using namespace quench::quant;

namespace {

// Sequential(Mlp(dim, hidden)) with weights large enough that GELU sees both signs and the hidden
// activations clamp at both ends of fc2's input range.
std::shared_ptr<nn::Sequential> make_mlp(int64_t dim, int64_t hidden, const std::string& approximate, uint64_t seed) {
  Generator gen(seed);
  auto mlp = std::make_shared<nn::Mlp>(dim, hidden, 0, gen);
  if (approximate != "none") mlp->replace_module("act", std::make_shared<nn::GELU>(approximate));
  NoGradGuard ng;
  for (auto& [n, p] : mlp->named_parameters()) Tensor(p).copy_(randn(p.sizes(), gen) * 0.3);
  return std::make_shared<nn::Sequential>(std::vector<nn::ModulePtr>{mlp});
}

// The QAT model (observers run on a few batches, then frozen) and int8 copies converted with and
// without the fast paths.
struct Trio {
  std::shared_ptr<nn::Sequential> qat, fused, unfused;
  ConvertSummary fused_summary;
};

Trio make_trio(int64_t dim, int64_t hidden, const std::string& approximate = "none",
               const QuantizationAwareTrainingConfig& cfg = {}) {
  Trio t{make_mlp(dim, hidden, approximate, 5), make_mlp(dim, hidden, approximate, 6),
         make_mlp(dim, hidden, approximate, 7), {}};
  Generator gen(8);
  for (auto* m : {&t.qat, &t.fused, &t.unfused}) prepare_qat(**m, cfg);
  {
    NoGradGuard ng;
    for (int i = 0; i < 3; ++i) (*t.qat)(randn({16, dim}, gen) * 1.2);
  }
  freeze_observers(*t.qat);
  t.qat->eval();
  t.fused->load_state_dict(t.qat->state_dict());
  t.unfused->load_state_dict(t.qat->state_dict());
  t.fused_summary = convert(*t.fused);
  convert(*t.unfused, false);
  return t;
}

}  // namespace

TEST_CASE("int8 fused MLP: convert installs it, same state dict, unfused on request") {
  Trio t = make_trio(24, 40);
  CHECK(t.fused_summary.int8_mlps == std::vector<std::string>{"0"});
  CHECK(t.fused->get_submodule("0")->type_name() == "Int8Mlp");
  CHECK(t.fused->get_submodule("0.fc1")->type_name() == "Int8Linear");
  CHECK(t.unfused->get_submodule("0")->type_name() == "Mlp");
  auto a = t.fused->state_dict(), b = t.unfused->state_dict();
  REQUIRE(a.size() == b.size());
  for (const auto& [k, v] : a) CHECK(testing::bit_equal(v, b.at(k)));
}

TEST_CASE("Int8Linear::forward_plus: the residual added in the epilogue, the bits of forward + residual") {
  Trio t = make_trio(24, 40);
  auto& fc1 = static_cast<Int8Linear&>(*t.unfused->get_submodule("0.fc1"));
  Generator gen(10);
  Tensor x = randn({3, 5, 24}, gen), r = randn({3, 5, 40}, gen);
  NoGradGuard ng;
  CHECK(testing::bit_equal(fc1.forward_plus(x, r), fc1(x) + r));
  CHECK_THROWS_WITH_AS(fc1.forward_plus(x, randn({3, 5, 24}, gen)),
                       doctest::Contains("Int8Linear: residual of shape [3, 5, 24] does not match the output "
                                         "[3, 5, 40] of input [3, 5, 24]"),
                       Error);
}

TEST_CASE("int8 fused MLP: bit-identical to the unfused modules and the fake-quant model, every ISA, 1 and 2 threads") {
  // hidden 72 / dim 40: K not a multiple of 64 or 16, N with partial panels.
  for (auto shape : {std::pair<int64_t, int64_t>{40, 72}, {128, 512}}) {
    const int64_t dim = shape.first, hidden = shape.second;
    Trio t = make_trio(dim, hidden);
    Generator gen(9);
    const kernels::Isa prev = kernels::active_isa();
    // Row counts: one row, fewer than a micro-kernel tile, one block per thread, several 128-row blocks.
    for (int64_t M : {1, 5, 50, 300}) {
      Tensor x = randn({M, dim}, gen) * 1.3;
      Tensor y_qat = (*t.qat)(x);
      for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
        const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(i));
        CAPTURE(dim);
        CAPTURE(M);
        CAPTURE(kernels::isa_name(isa));
        Tensor y_unfused = (*t.unfused)(x);
        testing::check_thread_invariant([&] { return testing::TL{(*t.fused)(x)}; });
        Tensor y = (*t.fused)(x);
        CHECK(testing::bit_equal(y, y_unfused));
        CHECK(testing::bit_equal(y, y_qat));
      }
      kernels::set_isa(prev);
    }
    // Leading dims are kept: [2, 3, dim] -> [2, 3, dim].
    Tensor x3 = randn({2, 3, dim}, gen);
    Tensor y3 = (*t.fused)(x3);
    CHECK(y3.sizes() == Shape{2, 3, dim});
    CHECK(testing::bit_equal(y3, (*t.unfused)(x3)));
  }
}

TEST_CASE("int8 fused MLP: tanh GELU is not fused; a hook on a child takes the unfused path") {
  Trio tanh = make_trio(16, 32, "tanh");
  CHECK(tanh.fused_summary.int8_mlps.empty());
  CHECK(tanh.fused->get_submodule("0")->type_name() == "Mlp");

  Trio t = make_trio(16, 32);
  auto mlp = std::dynamic_pointer_cast<Int8Mlp>(t.fused->get_submodule("0"));
  REQUIRE(mlp != nullptr);
  CHECK(mlp->fused());
  Generator gen(3);
  Tensor x = randn({9, 16}, gen);
  int calls = 0;
  Tensor seen;
  {
    nn::ScopedHook h(t.fused->get_submodule("0.act")->register_forward_hook([&](const nn::ForwardCall& c) {
      ++calls;
      seen = c.output;
    }));
    CHECK_FALSE(mlp->fused());
    Tensor y = (*t.fused)(x);
    CHECK(calls == 1);
    CHECK(seen.sizes() == Shape{9, 32});
    CHECK(testing::bit_equal(y, (*t.unfused)(x)));
  }
  CHECK(mlp->fused());
}

namespace {

nn::ViTConfig tiny_cfg() {
  nn::ViTConfig c;
  c.img = 12;
  c.patch = 4;  // 9 patches + CLS = 10 tokens
  c.dim = 32;
  c.depth = 2;
  c.heads = 4;
  c.hidden = 72;
  c.classes = 5;
  return c;
}

std::shared_ptr<nn::ViT> scaled_vit(const nn::ViTConfig& c, uint64_t seed) {
  Generator gen(seed);
  auto v = std::make_shared<nn::ViT>(c, gen);
  NoGradGuard ng;
  for (auto& [n, p] : v->named_parameters()) {
    if (n.find("weight") != std::string::npos && p.dim() == 2) Tensor(p).copy_(randn(p.sizes(), gen) * 0.2);
    if (n.find("norm") != std::string::npos) Tensor(p).copy_(Tensor(p) + randn(p.sizes(), gen) * 0.3);  // norm1 != norm2
  }
  return v;
}

struct VitTrio {
  std::shared_ptr<nn::ViT> qat, fused, unfused;
  ConvertSummary summary;
};

VitTrio make_vit_trio(const nn::ViTConfig& c, const QuantizationAwareTrainingConfig& cfg = {}) {
  VitTrio t{scaled_vit(c, 1), scaled_vit(c, 2), scaled_vit(c, 3), {}};
  for (auto* m : {&t.qat, &t.fused, &t.unfused}) prepare_qat(**m, cfg);
  Generator gen(4);
  {
    NoGradGuard ng;
    for (int i = 0; i < 3; ++i) (*t.qat)(randn({6, c.chans, c.img, c.img}, gen));
  }
  freeze_observers(*t.qat);
  t.qat->eval();
  t.fused->load_state_dict(t.qat->state_dict());
  t.unfused->load_state_dict(t.qat->state_dict());
  t.summary = convert(*t.fused);
  convert(*t.unfused, false);
  return t;
}

}  // namespace

TEST_CASE("int8 fused block: a ViT's blocks become Int8Block, bit-identical to unfused and fake-quant, every ISA, 1 and 2 threads") {
  VitTrio t = make_vit_trio(tiny_cfg());
  CHECK(t.summary.int8_blocks == std::vector<std::string>{"blocks.0", "blocks.1"});
  CHECK(t.summary.int8_mlps == std::vector<std::string>{"blocks.0.mlp", "blocks.1.mlp"});
  CHECK(t.fused->get_submodule("blocks.1")->type_name() == "Int8Block");
  CHECK(t.fused->get_submodule("blocks.1.attn.qkv")->type_name() == "Int8Linear");
  CHECK(t.fused->state_dict().size() == t.unfused->state_dict().size());
  Generator gen(5);
  const kernels::Isa prev = kernels::active_isa();
  // 1 image (one group), 3 (uneven groups on 2 threads), 70 (26-image groups).
  for (int64_t B : {1, 3, 70}) {
    Tensor x = randn({B, 1, 12, 12}, gen);
    Tensor y_qat = (*t.qat)(x);
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(i));
      CAPTURE(B);
      CAPTURE(kernels::isa_name(isa));
      testing::check_thread_invariant([&] { return testing::TL{(*t.fused)(x)}; });
      Tensor y = (*t.fused)(x);
      CHECK(testing::bit_equal(y, (*t.unfused)(x)));
      CHECK(testing::bit_equal(y, y_qat));
    }
    kernels::set_isa(prev);
  }
}

TEST_CASE("int8 fused block: the CLS-only last block is bit-identical to the full block, every ISA, 1 and 2 threads") {
  VitTrio t = make_vit_trio(tiny_cfg());
  Generator gen(8);
  const kernels::Isa prev = kernels::active_isa();
  for (int64_t B : {1, 3, 70}) {
    Tensor x = randn({B, 1, 12, 12}, gen);
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(i));
      CAPTURE(B);
      CAPTURE(kernels::isa_name(isa));
      for (auto* m : {&t.fused, &t.unfused}) {
        Tensor part = (**m)(x);
        testing::check_thread_invariant([&] { return testing::TL{(**m)(x)}; });
        // A hook on the final norm needs every row: the last block runs in full.
        Shape seen;
        nn::ScopedHook h((*m)->child("norm")->register_forward_hook(
            [&](const nn::ForwardCall& c) { seen = c.output.sizes(); }));
        CHECK(testing::bit_equal(part, (**m)(x)));
        CHECK(seen == Shape{B, 10, 32});
      }
    }
    kernels::set_isa(prev);
  }
}

TEST_CASE("int8 fused block: masks, hooks, gradients and QATAttention take the composed path") {
  VitTrio t = make_vit_trio(tiny_cfg());
  auto blk = std::dynamic_pointer_cast<Int8Block>(t.fused->get_submodule("blocks.0"));
  REQUIRE(blk != nullptr);
  nn::ModulePtr ref = t.unfused->get_submodule("blocks.0");
  Generator gen(6);
  Tensor x = randn({4, 10, 32}, gen);
  Tensor mask = zeros({4, 10}, kUInt8);
  mask.data_ptr<uint8_t>()[7] = 1;
  mask.data_ptr<uint8_t>()[25] = 1;
  CHECK(testing::bit_equal((*blk)(tensor_list{x, mask}), (*ref)(tensor_list{x, mask})));
  CHECK(testing::bit_equal((*blk)(x), (*ref)(x)));
  {
    // attn's "probs" reach a hook: the block runs its children one by one.
    Tensor probs;
    nn::ScopedHook h(blk->child("attn")->register_forward_hook(
        [&](const nn::ForwardCall& c) { probs = c.extra("probs"); }));
    CHECK_FALSE(blk->fused());
    CHECK(testing::bit_equal((*blk)(x), (*ref)(x)));
    CHECK(probs.sizes() == Shape{4, 4, 10, 10});
  }
  CHECK(blk->fused());
  {
    // Gradient recording on the input: the composed path keeps the residual stream differentiable.
    Tensor xg = x.clone().requires_grad_(true);
    Tensor y = (*blk)(xg);
    CHECK(y.requires_grad());
    CHECK(testing::bit_equal(y.detach(), (*ref)(x)));
  }
  // With quantized attention matmuls the blocks keep QATAttention and stay nn::Block.
  QuantizationAwareTrainingConfig cfg;
  cfg.quantize_attention_matmuls = true;
  auto v = scaled_vit(tiny_cfg(), 7);
  prepare_qat(*v, cfg);
  {
    NoGradGuard ng;
    (*v)(randn({2, 1, 12, 12}, gen));
  }
  ConvertSummary s = convert(*v);
  CHECK(s.int8_blocks.empty());
  CHECK(s.int8_mlps.size() == 2);
  CHECK(v->get_submodule("blocks.0")->type_name() == "Block");
}

namespace {

QuantizationAwareTrainingConfig low_bit(int bits, int64_t group_size, bool per_token = false) {
  QuantizationAwareTrainingConfig cfg;
  cfg.default_qconfig = QConfig::low_bit(bits, group_size, per_token);
  return cfg;
}

}  // namespace

TEST_CASE("low-bit fused MLP and block: Int4Linear layers take the fused passes, bit-identical to unfused, every ISA, 1 and 2 threads") {
  // Per channel the unfused Int4Linear is the fake-quant model's bits too; per group of K it matches
  // it to float rounding only (quant/int4_linear.hpp), so there the reference is the unfused model.
  for (auto spec : {std::pair<int, int64_t>{4, 0}, {3, 16}}) {
    const int bits = spec.first;
    const int64_t group = spec.second;
    CAPTURE(bits);
    CAPTURE(group);
    Trio t = make_trio(40, 72, "none", low_bit(bits, group));
    CHECK(t.fused_summary.int8_mlps == std::vector<std::string>{"0"});
    CHECK(t.fused->get_submodule("0.fc1")->type_name() == "Int4Linear");
    VitTrio v = make_vit_trio(tiny_cfg(), low_bit(bits, group));
    CHECK(v.summary.int8_blocks == std::vector<std::string>{"blocks.0", "blocks.1"});
    CHECK(v.fused->get_submodule("blocks.0.attn.qkv")->type_name() == "Int4Linear");
    Generator gen(11);
    const kernels::Isa prev = kernels::active_isa();
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(i));
      CAPTURE(kernels::isa_name(isa));
      for (int64_t M : {5, 300}) {
        Tensor x = randn({M, 40}, gen) * 1.3;
        testing::check_thread_invariant([&] { return testing::TL{(*t.fused)(x)}; });
        Tensor y = (*t.fused)(x);
        CHECK(testing::bit_equal(y, (*t.unfused)(x)));
        if (group == 0) CHECK(testing::bit_equal(y, (*t.qat)(x)));
      }
      for (int64_t B : {3, 70}) {
        Tensor x = randn({B, 1, 12, 12}, gen);
        testing::check_thread_invariant([&] { return testing::TL{(*v.fused)(x)}; });
        Tensor y = (*v.fused)(x);
        CHECK(testing::bit_equal(y, (*v.unfused)(x)));
        if (group == 0) CHECK(testing::bit_equal(y, (*v.qat)(x)));
      }
    }
    kernels::set_isa(prev);
  }
}

TEST_CASE("low-bit fused MLP: per-token activations have no frozen grid and stay composed") {
  Trio t = make_trio(24, 40, "none", low_bit(4, 8, true));
  CHECK(t.fused_summary.int8_mlps.empty());
  auto& fc1 = static_cast<Int4Linear&>(*t.fused->get_submodule("0.fc1"));
  CHECK_FALSE(fc1.frozen_input_grid());
  Generator gen(12);
  Tensor x = randn({6, 24}, gen), r = randn({6, 40}, gen);
  NoGradGuard ng;
  CHECK(testing::bit_equal(fc1.forward_plus(x, r), fc1(x) + r));  // the residual in the epilogue
  std::vector<uint8_t> q(6 * 24);
  CHECK_THROWS_WITH_AS(fc1.quantize_input(x.data_ptr<float>(), 6, 24, q.data()),
                       doctest::Contains("Int4Linear: quantize_input needs a frozen input grid"), Error);
}
