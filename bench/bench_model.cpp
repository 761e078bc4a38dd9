// The reference ViT end to end (issue 4, item 7): one training step (forward, cross-entropy,
// backward, AdamW step) and FP32 inference (eval, no grad), batch 128, random inputs, at 1 and 2
// threads. The anchor is PyTorch on the same machine, run back to back:
//   /usr/bin/python3 tests/golden/vit_reference.py --threads 2  (bench/model_rounds.py runs both in rounds)
// Time is wall time; the CPU column is the whole process's CPU time (every thread), which on a
// shared, busy machine is the steadier figure. Counters: images/s, and peak_rss_MiB (getrusage,
// the whole process so far: the training cases run first, so it is the training peak).
// vit_distill_train_step/engine (issue 6, item 7) is the QAT + KD step of `quench distill`: the FP32
// teacher (eval, no graph) and a QAT student copy prepared by distill::prepare_compression with the
// default recipe (logit KD + MSE on every block's output and attention probabilities), one step
// through the hooks. Target: <= 1.6x vit_train_step/engine of the same run. vit_qat_train_step/engine
// is the same step without the distillation component (quench distill --no-kd), so the difference of
// the two is what distillation costs (the teacher forward is vit_infer_fp32/engine).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <string>
#include <vector>

#include "distill/compression.hpp"
#include "distill/vit_recipe.hpp"
#include "engine/allocator.hpp"
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
  const size_t misses0 = alloc::cache_stats().misses;
  for (auto _ : st) step();
  st.counters["alloc_misses/step"] =
      static_cast<double>(alloc::cache_stats().misses - misses0) / static_cast<double>(st.iterations());
  st.counters["images/s"] =
      benchmark::Counter(static_cast<double>(st.iterations() * kBatch), benchmark::Counter::kIsRate);
  st.counters["peak_rss_MiB"] = peak_rss_mib();
}

void BM_vit_distill_train_step(benchmark::State& st, int threads, bool kd) {
  set_num_threads(threads);
  Generator gen(0);
  auto teacher = std::make_shared<nn::ViT>(nn::ViTConfig{}, gen);
  teacher->eval();
  Generator g2(1);
  auto student = std::make_shared<nn::ViT>(nn::ViTConfig{}, g2);
  student->load_state_dict(teacher->state_dict(), true);  // the student starts as the teacher
  std::vector<distill::CompressionConfig> configs{quant::QuantizationAwareTrainingConfig{}};
  if (kd) configs.emplace_back(distill::vit_distillation_config(teacher, student->cfg, teacher->cfg, {}));
  distill::CompressionManager cm = distill::prepare_compression(student, configs);
  cm.on_train_begin();
  optim::AdamW opt(cm.trainable_parameters(), optim::AdamWOptions(1e-3));
  cm.on_epoch_begin(0);
  cm.model()->train();
  Tensor x = randn({kBatch, 1, 28, 28}, gen), y = randint(0, 10, {kBatch}, gen);
  int64_t step_no = 0;
  auto step = [&] {
    cm.on_step_begin(step_no++);
    Tensor out = (*cm.model())(x);
    Tensor loss = cm.on_after_compute_loss(x, out, cross_entropy(out, y));
    opt.zero_grad();
    loss.backward();
    cm.on_before_optimizer_step();
    opt.step();
    cm.on_step_end();
  };
  step();
  const size_t misses0 = alloc::cache_stats().misses;
  for (auto _ : st) step();
  st.counters["alloc_misses/step"] =
      static_cast<double>(alloc::cache_stats().misses - misses0) / static_cast<double>(st.iterations());
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

// vit_train_step, vit_qat_train_step, vit_distill_train_step and vit_infer_fp32 (engine) run on 2 threads (the
// issues' setting), the _t1 twins on one.
const bool kRegistered = [] {
  // Whole steps are long: wall time (the issues' figure) with the process CPU time beside it.
  auto timed = [](benchmark::internal::Benchmark* b) {
    b->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime()->MinTime(3.0);
  };
  for (int threads : {2, 1}) {
    const std::string sfx = threads == 2 ? "" : "_t1";
    timed(benchmark::RegisterBenchmark(("vit_train_step/engine" + sfx).c_str(), BM_vit_train_step, threads));
    timed(benchmark::RegisterBenchmark(("vit_qat_train_step/engine" + sfx).c_str(), BM_vit_distill_train_step,
                                       threads, false));
    timed(benchmark::RegisterBenchmark(("vit_distill_train_step/engine" + sfx).c_str(),
                                       BM_vit_distill_train_step, threads, true));
    timed(benchmark::RegisterBenchmark(("vit_infer_fp32/engine" + sfx).c_str(), BM_vit_infer_fp32, threads));
  }
  return true;
}();
