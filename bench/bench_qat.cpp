// The reference ViT (D=128, 6 blocks, batch 128 unless noted) in the engine: FP32 inference vs the
// converted int8 model (as quant::convert leaves it, with the fused Int8Block / Int8Mlp paths, and
// unfused: convert(model, false)), and an FP32 training step vs a QAT training step (AdamW). Compare
// the rows as ratios within one run (the machine is shared). Threads: QUENCH_NUM_THREADS.
// attention_matmuls: the two products of a QAT attention on BERT-small's shapes (batch 32, 4 heads,
// sequence 128, head 64), q @ k^T, the softmax and probs @ v with u8 operands per tensor, inference:
// `fp32_grid` is the fp32 matmul of the fake-quantized values and the general softmax, `int8` what a
// QAT attention runs in training (the integer codes of qat_matmul_op.hpp, attention_softmax),
// `int8_fused` what it runs in inference (int8_attention.hpp, the same bits).
#include <benchmark/benchmark.h>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/prepare.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/fake_quantize.hpp"
#include "quant/int8_attention.hpp"
#include "quant/observer.hpp"
#include "quant/qat_matmul_op.hpp"

using namespace quench;

namespace {

std::shared_ptr<nn::ViT> make_vit(bool qat, bool int8, bool fuse = true) {
  Generator gen(1);
  auto v = std::make_shared<nn::ViT>(nn::ViTConfig{}, gen);
  if (qat || int8) {
    quant::prepare_qat(*v);
    NoGradGuard ng;
    (*v)(randn({8, 1, 28, 28}, gen));  // observers see one batch
  }
  if (int8) quant::convert(*v, fuse);
  return v;
}

void infer(benchmark::State& st, bool int8, bool fuse = true) {
  auto v = make_vit(false, int8, fuse);
  v->eval();
  Generator gen(2);
  Tensor x = randn({st.range(0), 1, 28, 28}, gen);
  NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize((*v)(x).raw_data());
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

void train_step(benchmark::State& st, bool qat) {
  auto v = make_vit(qat, false);
  v->train();
  Generator gen(3);
  Tensor x = randn({st.range(0), 1, 28, 28}, gen);
  Tensor y = randint(0, 10, {st.range(0)}, gen);
  optim::AdamW opt(v->parameters(), optim::AdamWOptions(1e-3));
  for (auto _ : st) {
    opt.zero_grad();
    Tensor loss = cross_entropy((*v)(x), y);
    loss.backward();
    opt.step();
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

// A quantizer with the given grid, its observer off.
std::shared_ptr<quant::FakeQuantize> grid(const quant::QuantSpec& spec, const quant::QParams& qp) {
  auto f = std::make_shared<quant::FakeQuantize>(spec, quant::ObserverKind::moving_average_min_max);
  f->scale.data_ptr<float>()[0] = qp.scale.data_ptr<float>()[0];
  f->zero_point.data_ptr<int32_t>()[0] = qp.zero_point.data_ptr<int32_t>()[0];
  f->disable_observer();
  f->eval();
  return f;
}

// path 0: fp32 grid, 1: integer ops one after the other, 2: fused per head (int8_attention).
void attention_matmuls(benchmark::State& st, int path) {
  Generator gen(4);
  const int64_t B = 32, H = 4, N = 128, hd = 64;
  Tensor q = randn({B, H, N, hd}, gen), k = randn({B, H, N, hd}, gen), v = randn({B, H, N, hd}, gen);
  const quant::QuantSpec spec = quant::QuantSpec::uint8_affine_per_tensor();
  const quant::QParams x = quant::qparams_from_range({-3.f}, {3.f}, spec);
  const quant::QParams p = quant::qparams_from_range({0.f}, {1.f}, spec);
  Tensor xs = x.scale.reshape({1}), xz = x.zero_point.reshape({1});
  Tensor ps = p.scale.reshape({1}), pz = p.zero_point.reshape({1});
  NoGradGuard ng;
  auto fq = [&](const Tensor& t, const Tensor& s, const Tensor& z) { return quant::fake_quantize(t, s, z, spec); };
  const auto gx = grid(spec, x), gp = grid(spec, p);
  for (auto _ : st) {
    Tensor ctx;
    if (path == 2) {
      ctx = quant::int8_attention(q, k, v, 0.125, Tensor(), *gx, *gx, *gp, *gx);
    } else if (path == 1) {
      Tensor probs = attention_softmax(quant::qat_matmul_nt(q, xs, xz, spec, k, xs, xz, spec), 0.125);
      ctx = quant::qat_matmul(probs, ps, pz, spec, v, xs, xz, spec);
    } else {
      Tensor probs = softmax(matmul(fq(q, xs, xz), fq(k, xs, xz).transpose(-2, -1)) * 0.125, -1);
      ctx = matmul(fq(probs, ps, pz), fq(v, xs, xz));
    }
    benchmark::DoNotOptimize(ctx.raw_data());
  }
  st.SetItemsProcessed(st.iterations() * B);
}

void BM_vit_infer_fp32(benchmark::State& st) { infer(st, false); }
void BM_vit_infer_int8(benchmark::State& st) { infer(st, true); }
void BM_vit_infer_int8_unfused(benchmark::State& st) { infer(st, true, false); }
void BM_vit_train_step_fp32(benchmark::State& st) { train_step(st, false); }
void BM_vit_qat_train_step(benchmark::State& st) { train_step(st, true); }
void BM_attention_matmuls(benchmark::State& st) { attention_matmuls(st, static_cast<int>(st.range(0))); }

}  // namespace

BENCHMARK(BM_vit_infer_fp32)->Name("vit_infer_fp32/engine")->Arg(128)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_vit_infer_int8)->Name("vit_infer_int8/engine")->Arg(128)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_vit_infer_int8_unfused)->Name("vit_infer_int8_unfused/engine")->Arg(128)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_vit_train_step_fp32)->Name("vit_train_step/engine")->Arg(128)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_vit_qat_train_step)->Name("vit_qat_train_step/engine")->Arg(128)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_attention_matmuls)->Name("attention_matmuls/fp32_grid")->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_attention_matmuls)->Name("attention_matmuls/int8")->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_attention_matmuls)->Name("attention_matmuls/int8_fused")->Arg(2)->Unit(benchmark::kMillisecond);
