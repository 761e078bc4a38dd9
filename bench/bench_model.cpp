// The reference ViT end to end (issue 4, item 7): one training step (forward, cross-entropy,
// backward, AdamW step) and FP32 inference (eval, no grad), batch 128, random inputs, at 1 and 2
// threads. The anchor is PyTorch on the same machine, run back to back:
//   /usr/bin/python3 /work/shared/reference/vit_reference.py --threads 2
// Time is wall time; the CPU column is the whole process's CPU time (every thread), which on a
// shared, busy machine is the steadier figure. Counters: images/s, and peak_rss_MiB (getrusage,
// the whole process so far: the training cases run first, so it is the training peak).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <string>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/nn.hpp"

using namespace quench;

namespace {

constexpr int64_t kBatch = 128;

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

void BM_vit_train_step(benchmark::State& st, int threads) {
  set_num_threads(threads);
  Generator gen(0);
  nn::ViT model(nn::ViTConfig{}, gen);
  model.train();
  optim::AdamW opt(model.parameters(), optim::AdamWOptions(1e-3));
  Tensor x = randn({kBatch, 1, 28, 28}, gen), y = randint(0, 10, {kBatch}, gen);
  auto step = [&] {
    opt.zero_grad();
    cross_entropy(model(x), y).backward();
    opt.step();
  };
  step();  // warm-up: optimizer state, allocator caches
  for (auto _ : st) step();
  st.counters["images/s"] =
      benchmark::Counter(static_cast<double>(st.iterations() * kBatch), benchmark::Counter::kIsRate);
  st.counters["peak_rss_MiB"] = peak_rss_mib();
}

void BM_vit_infer_fp32(benchmark::State& st, int threads) {
  set_num_threads(threads);
  Generator gen(0);
  nn::ViT model(nn::ViTConfig{}, gen);
  model.eval();
  Tensor x = randn({kBatch, 1, 28, 28}, gen);
  NoGradGuard ng;
  benchmark::DoNotOptimize(model(x).raw_data());
  for (auto _ : st) benchmark::DoNotOptimize(model(x).raw_data());
  st.counters["images/s"] =
      benchmark::Counter(static_cast<double>(st.iterations() * kBatch), benchmark::Counter::kIsRate);
  st.counters["peak_rss_MiB"] = peak_rss_mib();
}

}  // namespace

// vit_train_step/engine and vit_infer_fp32/engine run on 2 threads (the setting), the _t1
// twins on one.
const bool kRegistered = [] {
  for (int threads : {2, 1}) {
    const std::string sfx = threads == 2 ? "" : "_t1";
    benchmark::RegisterBenchmark(("vit_train_step/engine" + sfx).c_str(), BM_vit_train_step, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MeasureProcessCPUTime()
        ->MinTime(3.0);
    benchmark::RegisterBenchmark(("vit_infer_fp32/engine" + sfx).c_str(), BM_vit_infer_fp32, threads)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MeasureProcessCPUTime()
        ->MinTime(3.0);
  }
  return true;
}();
