// Element-wise ops on one ViT fc1 output ([128 x 50 tokens, 512], the reference config), 1 thread:
// the AVX2 loops against the baseline (QUENCH_ISA=ref) ones, the exact GELU's and dropout's AVX-512
// loops against both, and GELU against its libm twin, in the same process. Compare with PyTorch through ratios only (machine load varies).
#include <benchmark/benchmark.h>

#include <cmath>

#include "engine/elementwise.hpp"
#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"

namespace {

using namespace quench;

Tensor input() {
  Generator gen(1);
  return randn({128 * 50, 512}, gen);
}

// range(0): the Isa (0 = baseline loops, 1 = AVX2, 3 = AVX-512), clamped to the CPU's.
template <class F>
void run(benchmark::State& state, F f) {
  set_num_threads(1);
  const kernels::Isa prev = kernels::active_isa();
  const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(state.range(0)));
  Tensor x = input();
  for (auto _ : state) benchmark::DoNotOptimize(f(x).raw_data());
  kernels::set_isa(prev);
  state.SetItemsProcessed(state.iterations() * x.numel());
  state.SetLabel(std::string(kernels::isa_name(isa)));
}

void BM_gelu(benchmark::State& s) {
  run(s, [](const Tensor& x) { return gelu(x); });
}
void BM_gelu_libm(benchmark::State& s) {
  run(s, [](const Tensor& x) {
    return detail::map_unary(x, "gelu",
                             [](float v) { return v * 0.5f * (1.0f + std::erf(v * 0.70710678f)); });
  });
}
void BM_gelu_backward(benchmark::State& s) {
  Tensor g = input();
  run(s, [&g](const Tensor& x) {
    Tensor xr = x.detach().requires_grad_();
    gelu(xr).backward(g);
    return xr.grad();
  });
}
// Dropout p = 0.1 in training (BERT's attention probabilities and hidden states): mask draw and scale.
void BM_dropout(benchmark::State& s) {
  Generator gen(3);
  run(s, [&gen](const Tensor& x) { return dropout(x, 0.1, true, gen); });
}
void BM_exp(benchmark::State& s) {
  run(s, [](const Tensor& x) { return exp(x); });
}
void BM_sigmoid(benchmark::State& s) {
  run(s, [](const Tensor& x) { return sigmoid(x); });
}
void BM_tanh(benchmark::State& s) {
  run(s, [](const Tensor& x) { return tanh(x); });
}
void BM_add(benchmark::State& s) {
  run(s, [](const Tensor& x) { return x + x; });
}
void BM_max_all(benchmark::State& s) {
  run(s, [](const Tensor& x) { return max(x); });
}

// Max over the last dim of attention scores [128 x 4 heads x 50, 50]: range(0) = 1 the contiguous
// vectorized loop, 0 the same values in a transposed layout (the generic strided reduction).
void BM_max_lastdim(benchmark::State& state) {
  set_num_threads(1);
  Generator gen(2);
  Tensor x = randn({128 * 4 * 50, 50}, gen);
  Tensor in = state.range(0) ? x : x.t().contiguous().t();
  for (auto _ : state) benchmark::DoNotOptimize(max(in, -1).raw_data());
  state.SetItemsProcessed(state.iterations() * x.numel());
}

BENCHMARK(BM_max_lastdim)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gelu)->Arg(0)->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gelu_libm)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gelu_backward)->Arg(0)->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_dropout)->Arg(0)->Arg(1)->Arg(3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_exp)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sigmoid)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_tanh)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_add)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_max_all)->Arg(0)->Unit(benchmark::kMillisecond);

}  // namespace
