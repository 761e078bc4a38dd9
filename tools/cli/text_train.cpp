#include "tools/cli/text_train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "dist/data_parallel.hpp"
#include "distill/bert_recipe.hpp"
#include "distill/compression.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "nn/optim/adamw.hpp"
#include "nn/optim/clip_grad.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "nn/text/vocab_trainer.hpp"
#include "quant/convert.hpp"
#include "quant/prepare.hpp"

namespace quench::cli {

using Clock = std::chrono::steady_clock;

nlohmann::json to_json(const TextTrainConfig& c) {
  return {{"data", to_json(c.data)},
          {"vocab", c.vocab},
          {"vocab_size", c.vocab_size},
          {"do_lower_case", c.do_lower_case},
          {"max_length", c.max_length},
          {"layers", c.layers},
          {"hidden", c.hidden},
          {"heads", c.heads},
          {"intermediate", c.intermediate},
          {"dropout", c.dropout},
          {"epochs", c.epochs},
          {"batch_size", c.batch_size},
          {"lr", c.lr},
          {"weight_decay", c.weight_decay},
          {"warmup_ratio", c.warmup_ratio},
          {"clip_grad", c.clip_grad},
          {"seed", c.seed}};
}

TextTrainConfig text_train_config_from_json(const nlohmann::json& j) {
  TextTrainConfig c;
  if (j.contains("data")) c.data = text_data_options_from_json(j.at("data"));
#define QUENCH_GET(k) c.k = j.value(#k, c.k)
  QUENCH_GET(vocab);
  QUENCH_GET(vocab_size);
  QUENCH_GET(do_lower_case);
  QUENCH_GET(max_length);
  QUENCH_GET(layers);
  QUENCH_GET(hidden);
  QUENCH_GET(heads);
  QUENCH_GET(intermediate);
  QUENCH_GET(dropout);
  QUENCH_GET(epochs);
  QUENCH_GET(batch_size);
  QUENCH_GET(lr);
  QUENCH_GET(weight_decay);
  QUENCH_GET(warmup_ratio);
  QUENCH_GET(clip_grad);
  QUENCH_GET(seed);
#undef QUENCH_GET
  return c;
}

nlohmann::json to_json(const TextEpoch& e) {
  return {{"epoch", e.epoch},       {"train_loss", e.train_loss}, {"train_acc", e.train_acc},
          {"test_loss", e.test_loss}, {"test_acc", e.test_acc},     {"test_f1", e.test_f1},
          {"lr", e.lr},             {"seconds", e.seconds},       {"seq_per_s", e.seq_per_s}};
}

nlohmann::json to_json(const TextCompressOptions& o) {
  return {{"method", o.method},
          {"calib_batches", o.calib_batches},
          {"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"lr", o.lr},
          {"weight_decay", o.weight_decay},
          {"warmup_ratio", o.warmup_ratio},
          {"hidden_weight", o.hidden_weight},
          {"attn_weight", o.attn_weight},
          {"logits_weight", o.logits_weight},
          {"add_origin_loss", o.add_origin_loss},
          {"freeze_observers_epoch", o.freeze_observers_epoch},
          {"qat_calib_batches", o.qat_calib_batches},
          {"seed", o.seed},
          {"weights", o.weights.to_json()},
          {"data", to_json(o.data)}};
}

namespace {

// A seeded permutation of 0..n-1 (Fisher-Yates on the engine's generator).
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  Generator g(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[g.next_u64() % static_cast<uint64_t>(i + 1)]);
  return p;
}

std::vector<int64_t> batch_rows(const std::vector<int64_t>& order, int64_t step, int64_t batch) {
  const int64_t begin = step * batch, end = std::min<int64_t>(begin + batch, static_cast<int64_t>(order.size()));
  return {order.begin() + begin, order.begin() + end};
}

int64_t steps_per_epoch(int64_t n, int64_t batch) { return (n + batch - 1) / batch; }

void say(const TextHooks& h, const std::string& s) {
  if (h.progress)
    h.progress->message(s);
  else if (h.log)
    h.log(s);
}

void draw(const TextHooks& h, int64_t epoch, int64_t epochs, int64_t step, int64_t steps, double loss, double acc,
          double seq_per_s, double eta) {
  if (!h.progress) return;
  ProgressState ps;
  ps.epoch = epoch;
  ps.epochs = epochs;
  ps.step = step;
  ps.steps = steps;
  ps.loss = loss;
  ps.accuracy = acc;
  ps.images_per_s = seq_per_s;
  ps.rate_unit = "seq/s";
  ps.eta_s = eta;
  h.progress->update(ps, step == steps);
}

std::shared_ptr<nn::BertForSequenceClassification> copy_bert(const nn::BertForSequenceClassification& m) {
  auto c = std::make_shared<nn::BertForSequenceClassification>(m.cfg);
  c->load_state_dict(m.state_dict(), /*strict=*/true);
  return c;
}

quant::QuantizationAwareTrainingConfig text_qat_config(int freeze_epoch, const WeightPrecision& w) {
  quant::QuantizationAwareTrainingConfig q;
  q.quantize_attention_matmuls = true;  // q @ k^T and probs @ v on the int8 grid, as ViT's
  q.freeze_observer_epoch = freeze_epoch;
  if (w.bits == 8 && w.group_size == 0 && w.rules.empty()) return q;  // int8 per channel
  return with_weight_precision(q, q.default_qconfig.value_or(quant::QConfig::default_qat()), w);
}

}  // namespace

EvalResult evaluate_text(nn::Module& model, const EncodedTexts& data, int32_t pad_id, int64_t classes,
                         int64_t batch_size, bool keep_logits) {
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  r.classes = classes;
  r.confusion.assign(classes * classes, 0);
  std::vector<Tensor> all;
  double loss_sum = 0;
  {
    NoGradGuard ng;
    std::vector<int64_t> order(data.size());
    for (int64_t i = 0; i < data.size(); ++i) order[i] = i;
    for (int64_t s = 0; s < steps_per_epoch(data.size(), batch_size); ++s) {
      std::vector<int64_t> rows = batch_rows(order, s, batch_size);
      Tensor y;
      Tensor logits = model(text_batch(data, rows, pad_id, &y));
      loss_sum += static_cast<double>(cross_entropy(logits, y).item<float>()) * static_cast<double>(rows.size());
      accumulate_predictions(r, logits, y);
      if (keep_logits) all.push_back(logits.contiguous());
    }
  }
  model.train(was_training);
  r.loss = r.n ? loss_sum / static_cast<double>(r.n) : 0.0;
  if (keep_logits && !all.empty()) r.logits = cat(all, 0);
  return r;
}

EvalResult evaluate_text_shared(nn::Module& model, const EncodedTexts& data, int32_t pad_id, int64_t classes,
                                dist::ProcessGroup& pg) {
  if (pg.size() == 1) return evaluate_text(model, data, pad_id, classes);
  EncodedTexts part;  // rows rank, rank + R, ...
  for (int64_t i = pg.rank(); i < data.size(); i += pg.size()) {
    part.ids.push_back(data.ids[i]);
    part.types.push_back(data.types[i]);
    part.labels.push_back(data.labels[i]);
  }
  EvalResult r = evaluate_text(model, part, pad_id, classes);
  all_reduce(r, pg);
  return r;
}

TextTrainResult train_text(const TextTrainConfig& cfg, const TextSplits& data, const std::string& out_dir,
                           const TextHooks& hooks_in) {
  QUENCH_CHECK(cfg.epochs >= 1 && cfg.batch_size >= 1 && cfg.lr > 0 && cfg.max_length >= 3,
               "train --task text: need epochs >= 1, batch size >= 1, lr > 0, max length >= 3 (got ", cfg.epochs,
               ", ", cfg.batch_size, ", ", cfg.lr, ", ", cfg.max_length, ")");
  dist::ProcessGroup& pg = hooks_in.process_group ? *hooks_in.process_group : dist::ProcessGroup::world();
  const bool main = pg.is_main();
  const int64_t world = pg.size();
  QUENCH_CHECK(cfg.batch_size % world == 0, "train --task text: the batch size ", cfg.batch_size,
               " (the global batch) must be a multiple of the ", world, " processes");
  TextHooks hooks = hooks_in;  // rank 0 alone logs and draws
  if (!main) hooks.progress = nullptr, hooks.log = nullptr;
  std::filesystem::create_directories(out_dir);
  TextModel tm;
  tm.do_lower_case = cfg.do_lower_case;
  tm.max_length = cfg.max_length;
  tm.classes = data.train.classes;
  if (!cfg.vocab.empty()) {
    tm.vocab = nn::WordPieceTokenizer::from_vocab_file(cfg.vocab).vocab();
  } else {
    nn::WordPieceTrainerOptions vo;
    vo.vocab_size = cfg.vocab_size;
    vo.lowercase = cfg.do_lower_case;
    const auto t0 = Clock::now();
    tm.vocab = nn::train_wordpiece_vocab(data.train.texts, vo);  // the same on every process
    if (main) nn::WordPieceTokenizer(tm.vocab).save_vocab(out_dir + "/vocab.txt");
    say(hooks, "learned a WordPiece vocabulary of " + std::to_string(tm.vocab.size()) + " tokens in " +
                   format_duration(std::chrono::duration<double>(Clock::now() - t0).count()) + " -> " + out_dir +
                   "/vocab.txt");
  }
  nn::WordPieceOptions to;
  to.do_lower_case = cfg.do_lower_case;
  tm.tokenizer = std::make_shared<nn::WordPieceTokenizer>(tm.vocab, to);

  nn::BertConfig bc = nn::BertConfig::small(static_cast<int64_t>(tm.vocab.size()),
                                            static_cast<int64_t>(tm.classes.size()), cfg.max_length);
  bc.num_hidden_layers = cfg.layers;
  bc.hidden_size = cfg.hidden;
  bc.num_attention_heads = cfg.heads;
  bc.intermediate_size = cfg.intermediate;
  bc.hidden_dropout_prob = bc.attention_probs_dropout_prob = cfg.dropout;
  bc.pad_token_id = tm.tokenizer->pad_id();
  bc.id2label = tm.classes;
  bc.validate();
  Generator gen(cfg.seed);
  tm.bert = std::make_shared<nn::BertForSequenceClassification>(bc, gen);

  const auto t0 = Clock::now();
  const EncodedTexts train = encode_texts(data.train, *tm.tokenizer, cfg.max_length);
  const EncodedTexts test = encode_texts(data.test, *tm.tokenizer, cfg.max_length);
  say(hooks, "tokenized " + std::to_string(train.size()) + " train / " + std::to_string(test.size()) +
                 " test texts (" + std::to_string(train.tokens() / std::max<int64_t>(train.size(), 1)) +
                 " tokens per training text on average) in " +
                 format_duration(std::chrono::duration<double>(Clock::now() - t0).count()));

  auto groups = optim::param_groups_weight_decay(tm.bert->named_parameters(), cfg.weight_decay);
  optim::AdamW opt(groups, optim::AdamWOptions(cfg.lr).weight_decay(cfg.weight_decay));
  const int64_t steps = steps_per_epoch(train.size(), cfg.batch_size), total = steps * cfg.epochs;
  optim::LRScheduleOptions so;
  so.base_lr = cfg.lr;
  so.warmup_steps = static_cast<int64_t>(std::llround(cfg.warmup_ratio * static_cast<double>(total)));
  so.total_steps = total;
  so.decay = optim::Decay::linear;
  optim::LRSchedule sched(&opt, so);
  const std::vector<Tensor> params = tm.bert->parameters();
  // Every process starts from rank 0's weights (equal already when seeded alike; this makes it so).
  dist::DataParallel dp(params, pg);
  dp.broadcast_from_main(params);
  // Dropout masks of their own on every process (one process keeps its stream as it was).
  if (world > 1) manual_seed(cfg.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(pg.rank() + 1)));

  const std::string last = out_dir + "/last.safetensors", best = out_dir + "/best.safetensors";
  std::ofstream metrics;
  if (main) {
    metrics.open(out_dir + "/metrics.jsonl", std::ios::trunc);
    QUENCH_CHECK(metrics, "train --task text: cannot write ", out_dir, "/metrics.jsonl");
  }
  const nn::Metadata record = {{"train", to_json(cfg).dump()}};
  TextTrainResult result;
  const auto run_start = Clock::now();
  for (int64_t epoch = 0; epoch < cfg.epochs; ++epoch) {
    const std::vector<int64_t> order = permutation(train.size(), cfg.seed * 1000003 + static_cast<uint64_t>(epoch));
    tm.bert->train();
    const auto epoch_start = Clock::now();
    double loss_sum = 0;
    EvalResult seen;
    seen.classes = bc.num_labels;
    seen.confusion.assign(bc.num_labels * bc.num_labels, 0);
    for (int64_t s = 0; s < steps; ++s) {
      // This process's rows of the global batch: positions rank, rank + R, ...
      const std::vector<int64_t> global_rows = batch_rows(order, s, cfg.batch_size);
      std::vector<int64_t> rows;
      for (size_t i = static_cast<size_t>(pg.rank()); i < global_rows.size(); i += static_cast<size_t>(world))
        rows.push_back(global_rows[i]);
      Tensor y, logits, loss;
      EvalResult step_pred;
      step_pred.classes = bc.num_labels;
      step_pred.confusion.assign(bc.num_labels * bc.num_labels, 0);
      double step_loss_sum = 0;
      if (!rows.empty()) {  // a short last batch may leave a process nothing
        logits = (*tm.bert)(text_batch(train, rows, bc.pad_token_id, &y));
        loss = cross_entropy(logits, y);
        step_loss_sum = static_cast<double>(loss.item<float>()) * static_cast<double>(rows.size());
        accumulate_predictions(step_pred, logits.detach(), y);
      }
      // The whole batch's loss and predictions, summed over the processes.
      const auto n_global = static_cast<double>(global_rows.size());
      float lv = 0;
      if (world > 1) {
        step_pred.loss = step_loss_sum / std::max<double>(static_cast<double>(step_pred.n), 1.0);
        all_reduce(step_pred, pg);
        lv = static_cast<float>(step_pred.loss);
      } else {
        lv = loss.item<float>();
      }
      if (!std::isfinite(lv)) {
        result.status = TextTrainResult::non_finite;
        result.message = "non-finite loss (" + std::to_string(lv) + ") at epoch " + std::to_string(epoch + 1) +
                         ", step " + std::to_string(s + 1) + "; stopped without saving, " +
                         (std::filesystem::exists(last) ? last + " is the last good checkpoint"
                                                        : "no checkpoint was written yet") +
                         " (try a lower --lr)";
        say(hooks, result.message);
        return result;
      }
      opt.zero_grad();
      if (loss.defined()) {
        // The gradient average over R processes is then the whole batch's mean, however its rows
        // fell to the processes.
        if (world > 1) loss = loss * (static_cast<double>(rows.size() * world) / n_global);
        loss.backward();
      }
      dp.synchronize_gradients();
      if (cfg.clip_grad > 0) optim::clip_grad_norm_(params, cfg.clip_grad);
      opt.step();
      sched.step();
      loss_sum += static_cast<double>(lv) * n_global;
      seen.n += step_pred.n;
      seen.correct += step_pred.correct;
      for (size_t i = 0; i < seen.confusion.size(); ++i) seen.confusion[i] += step_pred.confusion[i];
      const double el = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      const double run = std::chrono::duration<double>(Clock::now() - run_start).count();
      const int64_t done = epoch * steps + s + 1;
      draw(hooks, epoch + 1, cfg.epochs, s + 1, steps, loss_sum / static_cast<double>(seen.n), seen.accuracy(),
           static_cast<double>(seen.n) / std::max(el, 1e-9), run / static_cast<double>(done) * (total - done));
      // Ctrl-C reaches the processes one by one: any of them stopping stops all, at the same step.
      std::vector<double> stop{hooks.stop_requested && hooks.stop_requested() ? 1.0 : 0.0};
      dist::all_reduce_sum(pg, stop);
      if (stop[0] > 0) {
        if (main) save_text_fp32(last, tm, opt.state_dict(), record);
        result.status = TextTrainResult::interrupted;
        result.message = "stopped on request at epoch " + std::to_string(epoch + 1) + "; saved " + last;
        say(hooks, result.message);
        return result;
      }
    }
    const double train_s = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    EvalResult ev = evaluate_text_shared(*tm.bert, test, bc.pad_token_id, bc.num_labels, pg);
    TextEpoch e;
    e.epoch = epoch + 1;
    e.train_loss = loss_sum / static_cast<double>(seen.n);
    e.train_acc = seen.accuracy();
    e.test_loss = ev.loss;
    e.test_acc = ev.accuracy();
    e.test_f1 = ev.f1();
    e.lr = sched.current_lr();
    e.seconds = train_s;
    e.seq_per_s = static_cast<double>(seen.n) / std::max(train_s, 1e-9);
    result.epochs.push_back(e);
    if (main) {
      metrics << to_json(e).dump() << "\n" << std::flush;
      save_text_fp32(last, tm, opt.state_dict(), record);
    }
    if (e.test_acc > result.best_acc) {
      result.best_acc = e.test_acc;
      result.best_epoch = e.epoch;
      if (main) save_text_fp32(best, tm, {}, record);
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "epoch %lld/%lld: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% F1 %.4f | %.0f seq/s, %s",
                  static_cast<long long>(e.epoch), static_cast<long long>(cfg.epochs), e.train_loss,
                  100 * e.train_acc, e.test_loss, 100 * e.test_acc, e.test_f1, e.seq_per_s,
                  format_duration(train_s).c_str());
    say(hooks, buf);
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "done: best test accuracy %.2f%% at epoch %lld, saved %s", 100 * result.best_acc,
                static_cast<long long>(result.best_epoch), best.c_str());
  result.message = buf;
  return result;
}

TextCompressResult compress_text(const TextCompressOptions& o, const TextModel& teacher, const TextSplits& data,
                                 const std::string& out_dir, const TextHooks& hooks_in) {
  QUENCH_CHECK(o.method == "ptq" || o.method == "qat" || o.method == "qat+kd",
               "compress --task text: method must be ptq, qat or qat+kd, got '", o.method, "'");
  QUENCH_CHECK(!teacher.int8, "compress --task text: the teacher must be an FP32 checkpoint");
  // Under mpirun each process trains on its rows of every batch; all evaluate the whole test set
  // (the same model everywhere, so the same figures) and rank 0 alone writes, logs and draws.
  dist::ProcessGroup& pg = hooks_in.process_group ? *hooks_in.process_group : dist::ProcessGroup::world();
  const bool main = pg.is_main();
  const int64_t world = pg.size();
  QUENCH_CHECK(o.batch_size % world == 0, "compress --task text: the batch size ", o.batch_size,
               " (the global batch) must be a multiple of the ", world, " processes");
  TextHooks hooks = hooks_in;
  if (!main) hooks.progress = nullptr, hooks.log = nullptr;
  if (main) std::filesystem::create_directories(out_dir);
  const nn::BertConfig& bc = teacher.bert->cfg;
  const int32_t pad = teacher.pad_id();
  const EncodedTexts train = encode_texts(data.train, *teacher.tokenizer, teacher.max_length);
  const EncodedTexts test = encode_texts(data.test, *teacher.tokenizer, teacher.max_length);
  TextCompressResult res;
  res.int8_path = out_dir + "/int8.safetensors";
  res.fp32_acc = evaluate_text(*teacher.bert, test, pad, bc.num_labels).accuracy();
  TextModel out = teacher;  // vocabulary, tokenizer, classes; bert replaced below
  const nn::Metadata record = {{"recipe", to_json(o).dump()}};

  if (o.method == "ptq") {
    out.bert = copy_bert(*teacher.bert);
    quant::prepare_ptq(*out.bert, text_qat_config(-1, o.weights));
    const std::vector<int64_t> order = permutation(train.size(), o.seed);
    const int64_t n = std::min(o.calib_batches, steps_per_epoch(train.size(), o.batch_size));
    quant::calibrate_multi(*out.bert, n, [&](int64_t i) {
      return text_batch(train, batch_rows(order, i, o.batch_size), pad);
    });
    quant::convert(*out.bert);
    EvalResult ev = evaluate_text(*out.bert, test, pad, bc.num_labels);
    res.int8_acc = ev.accuracy();
    res.int8_f1 = ev.f1();
    if (main) save_text_int8(res.int8_path, out, record);
    return res;
  }

  // QAT (+ INC's BERT recipe) through the compression manager's hooks, as a user's loop would.
  auto student = copy_bert(*teacher.bert);
  const quant::QuantizationAwareTrainingConfig qcfg = text_qat_config(o.freeze_observers_epoch, o.weights);
  std::vector<distill::CompressionConfig> configs{qcfg};
  if (o.method == "qat+kd") {
    distill::BertDistillRecipe r;
    r.hidden_weight = o.hidden_weight;
    r.attn_weight = o.attn_weight;
    r.logits_weight = o.logits_weight;
    r.add_origin_loss = o.add_origin_loss;
    configs.emplace_back(distill::bert_distillation_config(teacher.bert, bc, bc, r));
  }
  distill::CompressionManager cm = distill::prepare_compression(student, configs);
  cm.on_train_begin();
  if (o.qat_calib_batches > 0) {  // PTQ's procedure first: observers on the FP32 activations, then training
    const std::vector<int64_t> order = permutation(train.size(), o.seed);
    const int64_t n = std::min(o.qat_calib_batches, steps_per_epoch(train.size(), o.batch_size));
    quant::enable_fake_quant(*cm.model(), false);
    quant::calibrate_multi(*cm.model(), n, [&](int64_t i) {
      return text_batch(train, batch_rows(order, i, o.batch_size), pad);
    });
    quant::enable_fake_quant(*cm.model(), true);
    quant::enable_observers(*cm.model(), true);  // the freeze epoch decides when they stop
  }
  auto groups = optim::param_groups_weight_decay(cm.model()->named_parameters(), o.weight_decay);
  optim::AdamW opt(groups, optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  const int64_t steps = steps_per_epoch(train.size(), o.batch_size), total = steps * o.epochs;
  optim::LRScheduleOptions so;
  so.base_lr = o.lr;
  so.warmup_steps = static_cast<int64_t>(std::llround(o.warmup_ratio * static_cast<double>(total)));
  so.total_steps = total;
  so.decay = optim::Decay::linear;
  optim::LRSchedule sched(&opt, so);
  // Rank 0's start everywhere; the observers' statistics (buffers) follow rank 0's after every step,
  // so every process keeps one model (rank 0's observers see its rows only).
  std::vector<Tensor> params, buffers;
  for (const Tensor& p : cm.model()->parameters())  // module order: backward fills buckets in turn
    if (p.requires_grad()) params.push_back(p);
  for (const auto& [n, b] : cm.model()->named_buffers()) buffers.push_back(b);
  dist::DataParallel dp(params, pg);
  dp.broadcast_from_main(params);
  dp.broadcast_from_main(buffers);
  if (world > 1) manual_seed(o.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(pg.rank() + 1)));
  std::ofstream metrics;
  if (main) {
    metrics.open(out_dir + "/metrics.jsonl", std::ios::trunc);
    QUENCH_CHECK(metrics, "compress --task text: cannot write ", out_dir, "/metrics.jsonl");
  }
  const auto run_start = Clock::now();
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    cm.on_epoch_begin(epoch);
    cm.model()->train();
    const std::vector<int64_t> order = permutation(train.size(), o.seed * 1000003 + static_cast<uint64_t>(epoch));
    const auto epoch_start = Clock::now();
    double loss_sum = 0, task_loss_sum = 0;
    int64_t seen = 0, correct = 0;
    for (int64_t s = 0; s < steps; ++s) {
      cm.on_step_begin(epoch * steps + s);
      const std::vector<int64_t> global_rows = batch_rows(order, s, o.batch_size);
      std::vector<int64_t> rows;  // this process's: positions rank, rank + R, ...
      for (size_t i = static_cast<size_t>(pg.rank()); i < global_rows.size(); i += static_cast<size_t>(world))
        rows.push_back(global_rows[i]);
      const auto n_global = static_cast<double>(global_rows.size());
      Tensor loss;
      // The loss trained on, the labels' cross-entropy and the correct predictions, summed over rows.
      std::vector<double> step_sum{0.0, 0.0, 0.0};
      if (!rows.empty()) {  // a short last batch may leave a process nothing
        Tensor y;
        tensor_list x = text_batch(train, rows, pad, &y);
        Tensor logits = (*cm.model())(x);
        Tensor task = cross_entropy(logits, y);
        loss = cm.on_after_compute_loss(x, logits, task);
        step_sum[0] = static_cast<double>(loss.item<float>()) * static_cast<double>(rows.size());
        step_sum[1] = static_cast<double>(task.item<float>()) * static_cast<double>(rows.size());
        step_sum[2] = static_cast<double>(count_correct(logits.detach(), y));
      }
      dist::all_reduce_sum(pg, step_sum);
      const float lv = world == 1 ? loss.item<float>() : static_cast<float>(step_sum[0] / n_global);
      QUENCH_CHECK(std::isfinite(lv), "compress --task text: non-finite loss (", lv, ") at epoch ", epoch + 1,
                   " step ", s + 1, "; ", std::filesystem::exists(res.int8_path) ? res.int8_path : "nothing",
                   " is the last good output (try a lower --lr)");
      opt.zero_grad();
      if (loss.defined()) {
        // Weighted so that the average over the processes is the whole batch's mean.
        if (world > 1) loss = loss * (static_cast<double>(rows.size() * world) / n_global);
        loss.backward();
      }
      dp.synchronize_gradients();
      cm.on_before_optimizer_step();
      opt.step();
      if (world > 1) dp.broadcast_from_main(buffers);
      sched.step();
      cm.on_step_end();
      loss_sum += static_cast<double>(lv) * n_global;
      task_loss_sum += step_sum[1];
      correct += static_cast<int64_t>(step_sum[2]);
      seen += static_cast<int64_t>(global_rows.size());
      const double el = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      const double run = std::chrono::duration<double>(Clock::now() - run_start).count();
      const int64_t done = epoch * steps + s + 1;
      draw(hooks, epoch + 1, o.epochs, s + 1, steps, loss_sum / static_cast<double>(seen),
           static_cast<double>(correct) / static_cast<double>(seen),
           static_cast<double>(seen) / std::max(el, 1e-9), run / static_cast<double>(done) * (total - done));
    }
    cm.on_epoch_end();
    // The fake-quant student and its int8 conversion (a second model, so training goes on).
    EvalResult fq = evaluate_text(*cm.model(), test, pad, bc.num_labels, 64, /*keep_logits=*/true);
    auto int8 = std::make_shared<nn::BertForSequenceClassification>(bc);
    quant::prepare_qat(*int8, qcfg);
    int8->load_state_dict(cm.model()->state_dict(), /*strict=*/true);
    quant::convert(*int8);
    EvalResult iv = evaluate_text(*int8, test, pad, bc.num_labels, 64, /*keep_logits=*/true);
    const Agreement agree = prediction_agreement(fq.logits, iv.logits);
    // train_loss is what was minimized (with KD, the recipe's MSE terms); train_task_loss the labels'
    // cross-entropy in both, so QAT and QAT + KD curves compare like with like.
    nlohmann::json e = {{"epoch", epoch + 1},          {"train_loss", loss_sum / static_cast<double>(seen)},
                        {"train_task_loss", task_loss_sum / static_cast<double>(seen)},
                        {"train_acc", static_cast<double>(correct) / static_cast<double>(seen)},
                        {"fq_test_acc", fq.accuracy()}, {"int8_test_acc", iv.accuracy()},
                        {"int8_test_f1", iv.f1()},      {"fq_int8_agreement", agree.fraction},
                        {"fq_int8_max_logit_diff", agree.max_abs_diff}};
    res.epochs.push_back(e);
    if (main) metrics << e.dump() << "\n" << std::flush;
    if (iv.accuracy() > res.int8_acc || epoch == 0) {
      res.int8_acc = iv.accuracy();
      res.int8_f1 = iv.f1();
      res.fq_acc = fq.accuracy();
      res.agreement = agree.fraction;
      out.bert = int8;
      if (main) save_text_int8(res.int8_path, out, record);
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "epoch %lld/%lld: train loss %.4f acc %.2f%% | fake-quant acc %.2f%% | int8 acc %.2f%% F1 %.4f | "
                  "agreement %.2f%%",
                  static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs), e["train_loss"].get<double>(),
                  100 * e["train_acc"].get<double>(), 100 * fq.accuracy(), 100 * iv.accuracy(), iv.f1(), 100 * agree.fraction);
    say(hooks, buf);
  }
  cm.on_train_end();  // the manager's own conversion of the last epoch's student
  return res;
}

}  // namespace quench::cli
