// softmax and layer_norm forward against oneDNN in the same process, on ViT training shapes
// (batch 128: attention rows of 50, token rows of 128 or 512 features); plus quench's fused
// backward and cross_entropy, which have no anchor here; and the fused attention forward and
// backward at the ViT's shape on 1 and 2 threads.
#include <benchmark/benchmark.h>

#include <cmath>

#include <oneapi/dnnl/dnnl.hpp>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"

using namespace quench;

namespace {

dnnl::engine& eng() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

void BM_softmax_quench(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen);
  NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(softmax(x, -1).raw_data());
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
}

void BM_softmax_onednn(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen), y = empty({rows, n});
  dnnl::memory::desc md({rows, n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  dnnl::softmax_forward::primitive_desc pd({dnnl::prop_kind::forward_inference, md, 1}, eng());
  dnnl::softmax_forward prim(pd);
  dnnl::memory src(md, eng(), x.raw_data()), dst(md, eng(), y.raw_data());
  dnnl::stream s(eng());
  for (auto _ : st) {
    prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    s.wait();
  }
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
}

void BM_softmax_fwd_bwd_quench(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen).requires_grad_(), g = randn({rows, n}, gen);
  for (auto _ : st) softmax(x, -1).backward(g);
}

void BM_layer_norm_quench(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen), w = randn({n}, gen), b = randn({n}, gen);
  NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(layer_norm(x, {n}, w, b).raw_data());
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
}

void BM_layer_norm_onednn(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen), y = empty({rows, n}), w = randn({n}, gen), b = randn({n}, gen);
  using dt = dnnl::memory::data_type;
  dnnl::memory::desc md({rows, n}, dt::f32, dnnl::memory::format_tag::ab);
  dnnl::memory::desc pmd({n}, dt::f32, dnnl::memory::format_tag::a);
  dnnl::layer_normalization_forward::primitive_desc pd(
      {dnnl::prop_kind::forward_inference, md, 1e-5f,
       dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift},
      eng());
  dnnl::layer_normalization_forward prim(pd);
  dnnl::memory src(md, eng(), x.raw_data()), dst(md, eng(), y.raw_data());
  dnnl::memory scale(pmd, eng(), w.raw_data()), shift(pmd, eng(), b.raw_data());
  dnnl::stream s(eng());
  for (auto _ : st) {
    prim.execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE, scale}, {DNNL_ARG_SHIFT, shift}});
    s.wait();
  }
  st.SetBytesProcessed(st.iterations() * rows * n * 8);
}

void BM_layer_norm_fwd_bwd_quench(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen).requires_grad_(), w = randn({n}, gen).requires_grad_();
  Tensor b = randn({n}, gen).requires_grad_(), g = randn({rows, n}, gen);
  for (auto _ : st) layer_norm(x, {n}, w, b).backward(g);
}

void BM_cross_entropy_fwd_bwd_quench(benchmark::State& st) {
  const int64_t rows = st.range(0), n = st.range(1);
  Generator gen(1);
  Tensor x = randn({rows, n}, gen).requires_grad_(), t = randint(0, n, {rows}, gen);
  for (auto _ : st) cross_entropy(x, t, -100, 0.1).backward();
}

// The reference ViT's attention (B = 128, N = 50 tokens, D = 128, 4 heads), forward and backward
// on range(0) threads; range(1) = 0: attention_apply(attention_probs()), the two ops hooks see;
// 1: the one-op attention() nn::Attention runs otherwise.
Tensor vit_attention(const Tensor& qkv, bool one_op) {
  const int64_t H = 4;
  const double scale = 1.0 / std::sqrt(32.0);
  return one_op ? attention(qkv, H, scale) : attention_apply(attention_probs(qkv, H, scale), qkv, H);
}

void BM_attention_fwd_bwd_quench(benchmark::State& st) {
  const int prev = get_num_threads();
  set_num_threads(static_cast<int>(st.range(0)));
  const int64_t B = 128, N = 50, D = 128;
  Generator gen(1);
  Tensor qkv = randn({B, N, 3 * D}, gen).requires_grad_(), g = randn({B, N, D}, gen);
  for (auto _ : st) {
    qkv.set_grad(Tensor());  // as for the qkv Linear's output in a model: no gradient to add to
    vit_attention(qkv, st.range(1) != 0).backward(g);
  }
  set_num_threads(prev);
}

void BM_attention_fwd_quench(benchmark::State& st) {
  const int prev = get_num_threads();
  set_num_threads(static_cast<int>(st.range(0)));
  const int64_t B = 128, N = 50, D = 128;
  Generator gen(1);
  Tensor qkv = randn({B, N, 3 * D}, gen);
  NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(vit_attention(qkv, st.range(1) != 0).raw_data());
  set_num_threads(prev);
}

}  // namespace

BENCHMARK(BM_attention_fwd_quench)->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attention_fwd_bwd_quench)->ArgsProduct({{1, 2}, {0, 1}})->Unit(benchmark::kMicrosecond);
// 128 images x 4 heads x 50 tokens rows of 50; 128 x 50 token rows of 128 and 512.
BENCHMARK(BM_softmax_quench)->Args({25600, 50})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_softmax_onednn)->Args({25600, 50})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_softmax_fwd_bwd_quench)->Args({25600, 50})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_layer_norm_quench)->Args({6400, 128})->Args({6400, 512})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_layer_norm_onednn)->Args({6400, 128})->Args({6400, 512})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_layer_norm_fwd_bwd_quench)->Args({6400, 128})->Args({6400, 512})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_cross_entropy_fwd_bwd_quench)->Args({128, 100})->Args({128, 1000})->Unit(benchmark::kMicrosecond);
