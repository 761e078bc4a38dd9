// BERT-small end to end (issue 19, item 6): 4 layers, hidden 256, 4 heads, intermediate 1024,
// vocabulary 8000, batch 32 of 128 tokens (no padding), 2 threads (the _t1 twins on one).
//   bert_train_step/engine   forward, cross-entropy, backward, AdamW step (dropout on, as in training)
//   bert_infer_fp32/engine   eval, no grad
//   bert_infer_int8/engine   the converted model of `quench distill --task text`: every Linear an
//                            Int8Linear (u8 activations per tensor, s8 weights per channel), attention
//                            matmuls on the frozen fake-quant grid (QATBertSelfAttention)
// The anchor is the PyTorch twin (tests/golden/bert_reference.py run as a script: the same model,
// AdamW, FP32 and quantize_dynamic int8); bench/model_rounds.py --model bert runs both in rounds.
#include <benchmark/benchmark.h>

#include <string>

#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/nn.hpp"
#include "quant/convert.hpp"
#include "quant/prepare.hpp"

using namespace quench;

namespace {

constexpr int64_t kBatch = 32, kSeq = 128;

nn::BertConfig bert_small() { return nn::BertConfig::small(8000, 2, kSeq); }

tensor_list random_batch(const nn::BertConfig& c, Generator& gen) {
  return {randint(1, c.vocab_size, {kBatch, kSeq}, gen), ones({kBatch, kSeq}, kInt32), zeros({kBatch, kSeq}, kInt32)};
}

void set_rate(benchmark::State& st) {
  st.counters["sequences/s"] =
      benchmark::Counter(static_cast<double>(st.iterations() * kBatch), benchmark::Counter::kIsRate);
}

void BM_bert_train_step(benchmark::State& st, int threads) {
  set_num_threads(threads);
  Generator gen(0);
  nn::BertForSequenceClassification model(bert_small(), gen);
  model.train();
  optim::AdamW opt(model.parameters(), optim::AdamWOptions(1e-3));
  tensor_list x = random_batch(model.cfg, gen);
  Tensor y = randint(0, 2, {kBatch}, gen);
  auto step = [&] {
    opt.zero_grad();
    cross_entropy(model(x), y).backward();
    opt.step();
  };
  step();  // optimizer state, allocator caches
  for (auto _ : st) step();
  set_rate(st);
}

void BM_bert_infer(benchmark::State& st, int threads, bool int8) {
  set_num_threads(threads);
  Generator gen(0);
  auto owned = std::make_shared<nn::BertForSequenceClassification>(bert_small(), gen);
  nn::BertForSequenceClassification& model = *owned;
  tensor_list x = random_batch(model.cfg, gen);
  NoGradGuard ng;
  if (int8) {
    quant::QuantizationAwareTrainingConfig q;
    q.quantize_attention_matmuls = true;
    quant::prepare_ptq(model, q);
    quant::calibrate_multi(model, 2, [&](int64_t) { return x; });
    quant::convert(model);
  }
  model.eval();
  benchmark::DoNotOptimize(model(x).raw_data());
  for (auto _ : st) benchmark::DoNotOptimize(model(x).raw_data());
  set_rate(st);
}

}  // namespace

const bool kRegistered = [] {
  auto timed = [](benchmark::internal::Benchmark* b) {
    b->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime()->MinTime(3.0);
  };
  for (int threads : {2, 1}) {
    const std::string sfx = threads == 2 ? "" : "_t1";
    timed(benchmark::RegisterBenchmark(("bert_train_step/engine" + sfx).c_str(), BM_bert_train_step, threads));
    timed(benchmark::RegisterBenchmark(("bert_infer_fp32/engine" + sfx).c_str(), BM_bert_infer, threads, false));
    timed(benchmark::RegisterBenchmark(("bert_infer_int8/engine" + sfx).c_str(), BM_bert_infer, threads, true));
  }
  return true;
}();
