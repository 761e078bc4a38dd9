#include "tools/cli/compress.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "dist/data_parallel.hpp"
#include "distill/compression.hpp"
#include "distill/distillation.hpp"
#include "distill/vit_recipe.hpp"
#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "nn/data/loader.hpp"
#include "nn/optim/adamw.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "quant/convert.hpp"
#include "quant/int8_io.hpp"
#include "quant/prepare.hpp"
#include "tools/cli/evaluate.hpp"

namespace quench::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool is_int8_checkpoint(const Checkpoint& ckpt) {
  auto it = ckpt.metadata.find("format");
  return it != ckpt.metadata.end() && it->second == "quench-int8";
}

LoadedModel load_model(const std::string& path) {
  Checkpoint ckpt = load_checkpoint(path);
  LoadedModel m;
  m.int8 = is_int8_checkpoint(ckpt);
  m.vit = m.int8 ? quant::load_int8_vit(path) : model_from_checkpoint(ckpt);
  m.preprocess = ckpt.preprocess();
  m.classes = ckpt.classes();
  return m;
}

void save_int8_model(const std::string& path, nn::ViT& model, const Preprocess& pp,
                     const std::vector<std::string>& classes, const json& recipe) {
  quant::save_int8_vit(path, model,
                       {{"preprocess", to_json(pp).dump()},
                        {"classes", json(classes).dump()},
                        {"recipe", recipe.dump()}});
}

namespace {

nn::DataLoaderOptions loader_options(int64_t batch_size, bool shuffle, uint64_t seed, const Preprocess& pp) {
  nn::DataLoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = shuffle;
  lo.seed = seed;
  lo.mean = pp.mean;
  lo.std = pp.std;
  return lo;
}

distill::ViTDistillRecipe kd_recipe(const DistillOptions& o) {
  distill::ViTDistillRecipe r;
  r.temperature = o.temperature;
  r.kd_weight = o.kd_weight;
  r.block_weight = o.layer_weight;
  r.attn_weight = o.attn_weight;
  r.layers = o.layers;
  return r;
}

std::shared_ptr<nn::ViT> copy_vit(const nn::ViT& src) {
  Generator gen(0);
  auto m = std::make_shared<nn::ViT>(src.cfg, gen);
  m->load_state_dict(src.state_dict(), true);
  return m;
}

}  // namespace

std::shared_ptr<nn::ViT> ptq_quantize(const nn::ViT& fp32, const nn::LabeledImages& train, const Preprocess& pp,
                                      const PtqOptions& o) {
  QUENCH_CHECK(o.calib_batches > 0 && o.batch_size > 0, "quantize: calibration batches (", o.calib_batches,
               ") and batch size (", o.batch_size, ") must be positive");
  QUENCH_CHECK(o.observer == "histogram" || o.observer == "minmax", "quantize: observer must be 'histogram' or ",
               "'minmax', got '", o.observer, "'");
  auto model = copy_vit(fp32);
  quant::QConfig base = quant::QConfig::default_ptq();
  if (o.observer == "minmax") base.activation_observer = quant::ObserverKind::min_max;
  quant::QuantizationAwareTrainingConfig cfg = with_weight_precision(quant::default_ptq_config(), base, o.weights);
  quant::prepare_ptq(*model, cfg);
  nn::DataLoader loader(train, loader_options(o.batch_size, true, o.seed, pp));
  const int64_t n = std::min(o.calib_batches, loader.size());
  quant::calibrate(*model, n, [&](int64_t) {
    std::optional<nn::Batch> b = loader.next();
    QUENCH_CHECK(b.has_value(), "quantize: the data loader ran out of calibration batches");
    return b->images;
  });
  quant::convert(*model);
  return model;
}

quant::QuantizationAwareTrainingConfig with_weight_precision(quant::QuantizationAwareTrainingConfig cfg,
                                                             const quant::QConfig& base, const WeightPrecision& w) {
  QUENCH_CHECK(w.bits >= 2 && w.bits <= 8, "--weight-bits must be 2..8, got ", w.bits);
  QUENCH_CHECK(w.group_size >= 0, "--group-size must be 0 (per channel) or positive, got ", w.group_size);
  cfg.default_qconfig = quant::QConfig::low_bit(base, w.bits, w.group_size, false);
  if (!w.rules.empty()) quant::add_precision_rules(cfg, w.rules, base);
  return cfg;
}

std::string precision_label(const json& recipe) {
  const json w = recipe.is_object() ? recipe.value("weights", json()) : json();
  const int bits = w.is_object() ? w.value("bits", 8) : 8;
  const int64_t group = w.is_object() ? w.value("group_size", int64_t{0}) : 0;
  if (bits == 8 && group == 0) return "int8";
  return "W" + std::to_string(bits) + "A8" + (group > 0 ? " g" + std::to_string(group) : "");
}

json recipe_of(const nn::Metadata& metadata, const std::string& file) {
  const auto it = metadata.find("recipe");
  if (it == metadata.end()) return json();
  json j = json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  QUENCH_CHECK(!j.is_discarded(), file, ": its \"recipe\" metadata is not JSON");
  return j;
}

json WeightPrecision::to_json() const {
  return {{"bits", bits}, {"group_size", group_size}, {"rules", rules}};
}

json DistillOptions::to_json() const {
  return {{"student", copy_teacher ? json("copy of the teacher") : cli::to_json(student)},
          {"kd", kd},
          {"loss", kd ? "(1-kd_weight)*CE(labels) + kd_weight*T^2*KL(logits/T) + layer_weight*sum MSE(blocks.i) + "
                      "attn_weight*sum MSE(blocks.i.attn:probs)"
                      : "CE(labels)"},
          {"temperature", temperature},
          {"kd_weight", kd_weight},
          {"layer_weight", layer_weight},
          {"attn_weight", attn_weight},
          {"layers", layers},
          {"epochs", epochs},
          {"batch_size", batch_size},
          {"optimizer", "AdamW, cosine schedule"},
          {"lr", lr},
          {"min_lr", min_lr},
          {"weight_decay", weight_decay},
          {"warmup_epochs", warmup_epochs},
          {"freeze_observers_epoch", freeze_observers_epoch},
          {"qconfig", quant::QConfig::low_bit(weights.bits, weights.group_size).str()},
          {"weights", weights.to_json()},
          {"seed", seed}};
}

json to_json(const DistillEpoch& e) {
  return {{"epoch", e.epoch},           {"train_loss", e.train_loss},         {"train_task_loss", e.train_task_loss},
          {"train_acc", e.train_acc},
          {"fq_test_acc", e.fq_test_acc}, {"int8_test_acc", e.int8_test_acc}, {"int8_test_loss", e.int8_test_loss},
          {"fq_int8_agreement", e.fq_int8_agreement}, {"fq_int8_max_logit_diff", e.fq_int8_max_logit_diff},
          {"seconds", e.seconds}};
}

DistillEpoch distill_epoch_from_json(const json& j) {
  DistillEpoch e;
  try {
    e.epoch = j.at("epoch").get<int64_t>();
    e.train_loss = j.at("train_loss").get<double>();
    e.train_acc = j.at("train_acc").get<double>();
    e.fq_test_acc = j.at("fq_test_acc").get<double>();
    e.int8_test_acc = j.at("int8_test_acc").get<double>();
    e.int8_test_loss = j.at("int8_test_loss").get<double>();
    e.seconds = j.at("seconds").get<double>();
    e.train_task_loss = j.value("train_task_loss", -1.0);
    e.fq_int8_agreement = j.value("fq_int8_agreement", -1.0);
    e.fq_int8_max_logit_diff = j.value("fq_int8_max_logit_diff", -1.0);
  } catch (const json::exception& ex) {
    throw Error(std::string("distill metrics: bad epoch entry ") + j.dump() + ": " + ex.what());
  }
  return e;
}

DistillResult distill(const DistillOptions& o, const std::shared_ptr<nn::ViT>& teacher, const Preprocess& pp,
                      const DataSplits& data, const std::string& out_dir, const TrainHooks& hooks) {
  QUENCH_CHECK(teacher != nullptr, "distill: no teacher");
  QUENCH_CHECK(o.epochs > 0 && o.batch_size > 0 && o.lr > 0, "distill: epochs (", o.epochs, "), batch size (",
               o.batch_size, ") and lr (", o.lr, ") must be positive");
  QUENCH_CHECK(data.train.size() > 0 && data.test.size() > 0, "distill: empty data");
  dist::ProcessGroup& pg = hooks.process_group ? *hooks.process_group : dist::ProcessGroup::world();
  const int64_t world = pg.size();
  const bool main = pg.is_main();
  QUENCH_CHECK(o.batch_size % world == 0, "distill: the batch size ", o.batch_size,
               " is the global batch and must be a multiple of the ", world,
               " processes (each reads batch / processes images)");
  auto log = [&](const std::string& s) {
    if (!main) return;
    if (hooks.progress)
      hooks.progress->message(s);
    else if (hooks.log)
      hooks.log(s);
  };
  if (main) std::filesystem::create_directories(out_dir);
  teacher->eval();

  // The student: the teacher's weights, or a fresh init of the requested size.
  Generator gen(o.seed);
  std::shared_ptr<nn::ViT> student;
  if (o.copy_teacher) {
    student = copy_vit(*teacher);
  } else {
    student = std::make_shared<nn::ViT>(o.student, gen);
  }
  const nn::ViTConfig scfg = student->cfg;
  QUENCH_CHECK(scfg.classes == teacher->cfg.classes && scfg.img == teacher->cfg.img &&
                   scfg.chans == teacher->cfg.chans,
               "distill: the student must see the teacher's inputs and classes (img ", teacher->cfg.img,
               ", chans ", teacher->cfg.chans, ", classes ", teacher->cfg.classes, ")");

  quant::QuantizationAwareTrainingConfig qcfg = with_weight_precision({}, quant::QConfig::default_qat(), o.weights);
  qcfg.freeze_observer_epoch = o.freeze_observers_epoch;
  std::vector<distill::CompressionConfig> configs{qcfg};
  if (o.kd) {
    std::string note;
    configs.emplace_back(distill::vit_distillation_config(teacher, scfg, teacher->cfg, kd_recipe(o), &note));
    if (!note.empty()) log("distill: " + note);
  }
  distill::CompressionManager cm = distill::prepare_compression(student, configs);
  cm.on_train_begin();
  const std::vector<Tensor> params = cm.trainable_parameters();
  optim::AdamW opt(params, optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  // Data parallel: rank 0's start everywhere; the observers' statistics (buffers) follow rank 0's
  // after every step, so every process keeps one model (rank 0's observers see its shard only).
  dist::DataParallel dp(params, pg);
  std::vector<Tensor> buffers;
  for (const auto& [n, b] : cm.model()->named_buffers()) buffers.push_back(b);
  dp.broadcast_from_main(params);
  dp.broadcast_from_main(buffers);
  nn::DataLoaderOptions lo = loader_options(o.batch_size / world, true, o.seed, pp);
  lo.num_replicas = world;
  lo.rank = pg.rank();
  nn::DataLoader loader(data.train, lo);
  const int64_t steps = loader.size(), total_steps = steps * o.epochs;
  optim::LRScheduleOptions so;
  so.base_lr = o.lr;
  so.min_lr = o.min_lr;
  so.warmup_steps = static_cast<int64_t>(std::llround(o.warmup_epochs * static_cast<double>(steps)));
  so.total_steps = total_steps;
  optim::LRSchedule sched(&opt, so);

  std::ofstream metrics;
  if (main) {
    metrics.open(out_dir + "/metrics.jsonl", std::ios::trunc);
    QUENCH_CHECK(metrics, "distill: cannot open ", out_dir, "/metrics.jsonl for writing");
  }
  DistillResult result;
  result.int8_path = out_dir + "/int8.safetensors";
  json recipe = o.to_json();
  const auto run_start = Clock::now();
  int64_t global_step = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    cm.on_epoch_begin(epoch);
    loader.set_epoch(epoch);
    cm.model()->train();
    const auto epoch_start = Clock::now();
    double loss_sum = 0, task_loss_sum = 0;
    int64_t correct = 0, seen = 0;
    for (int64_t s = 0; s < steps; ++s) {
      std::optional<nn::Batch> batch = loader.next();
      QUENCH_CHECK(batch.has_value(), "distill: the data loader ended early");
      if (hooks.before_step) hooks.before_step(global_step, *batch);
      cm.on_step_begin(global_step);
      Tensor out = (*cm.model())(batch->images);
      const Tensor task = cross_entropy(out, batch->labels);
      Tensor loss = cm.on_after_compute_loss(batch->images, out, task);
      // The step's loss and accuracy over every process (one process: these very numbers).
      const int64_t local_b = batch->labels.size(0);
      std::vector<double> step_sums{static_cast<double>(loss.item<float>()) * static_cast<double>(local_b),
                                    static_cast<double>(count_correct(out.detach(), batch->labels)),
                                    static_cast<double>(local_b),
                                    static_cast<double>(task.item<float>()) * static_cast<double>(local_b)};
      dist::all_reduce_sum(pg, step_sums);
      const float lv = world == 1 ? loss.item<float>() : static_cast<float>(step_sums[0] / step_sums[2]);
      QUENCH_CHECK(std::isfinite(lv), "distill: non-finite loss (", lv, ") at epoch ", epoch + 1, " step ",
                   s + 1, "; try a lower --lr");
      opt.zero_grad();
      loss.backward();
      dp.synchronize_gradients();
      cm.on_before_optimizer_step();
      opt.step();
      if (world > 1) dp.broadcast_from_main(buffers);
      sched.step();
      cm.on_step_end();
      ++global_step;
      const int64_t B = static_cast<int64_t>(step_sums[2]);
      loss_sum += world == 1 ? static_cast<double>(lv) * static_cast<double>(B) : step_sums[0];
      task_loss_sum += step_sums[3];
      correct += static_cast<int64_t>(step_sums[1]);
      seen += B;
      if (hooks.progress && main) {
        const double el = std::chrono::duration<double>(Clock::now() - epoch_start).count();
        const double run_s = std::chrono::duration<double>(Clock::now() - run_start).count();
        ProgressState ps;
        ps.epoch = epoch + 1;
        ps.epochs = o.epochs;
        ps.step = s + 1;
        ps.steps = steps;
        ps.loss = loss_sum / static_cast<double>(seen);
        ps.accuracy = static_cast<double>(correct) / static_cast<double>(seen);
        ps.images_per_s = static_cast<double>(seen) / std::max(el, 1e-9);
        ps.eta_s = run_s / static_cast<double>(global_step) * static_cast<double>(total_steps - global_step);
        hooks.progress->update(ps, s + 1 == steps);
      }
      std::vector<double> stop{hooks.stop_requested && hooks.stop_requested() ? 1.0 : 0.0};
      dist::all_reduce_sum(pg, stop);
      if (stop[0] > 0) {
        log("distill: stopped on request at epoch " + std::to_string(epoch + 1));
        return result;
      }
    }
    cm.on_epoch_end();
    const double train_s = std::chrono::duration<double>(Clock::now() - epoch_start).count();

    // Evaluate the fake-quant student and its int8 conversion (a second model, so training goes on).
    EvalResult fq = evaluate(*cm.model(), data.test, pp, scfg.classes, 256, /*keep_logits=*/true);
    Generator g2(0);
    auto int8 = std::make_shared<nn::ViT>(scfg, g2);
    quant::prepare_qat(*int8, qcfg);
    int8->load_state_dict(cm.model()->state_dict(), true);
    quant::convert(*int8);
    EvalResult iv = evaluate(*int8, data.test, pp, scfg.classes, 256, /*keep_logits=*/true);
    const Agreement agree = prediction_agreement(fq.logits, iv.logits);

    DistillEpoch e;
    e.epoch = epoch + 1;
    e.train_loss = loss_sum / static_cast<double>(seen);
    e.train_task_loss = task_loss_sum / static_cast<double>(seen);
    e.train_acc = static_cast<double>(correct) / static_cast<double>(seen);
    e.fq_test_acc = fq.accuracy();
    e.int8_test_acc = iv.accuracy();
    e.int8_test_loss = iv.loss;
    e.fq_int8_agreement = agree.fraction;
    e.fq_int8_max_logit_diff = agree.max_abs_diff;
    e.seconds = train_s;
    result.epochs.push_back(e);
    if (main) metrics << to_json(e).dump() << "\n" << std::flush;
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "epoch %lld/%lld: train loss %.4f acc %.2f%% | test fake-quant %.2f%% int8 %.2f%% "
                  "(agree %.2f%%, max logit diff %.2g) | %s",
                  static_cast<long long>(e.epoch), static_cast<long long>(o.epochs), e.train_loss,
                  100 * e.train_acc, 100 * e.fq_test_acc, 100 * e.int8_test_acc, 100 * e.fq_int8_agreement,
                  e.fq_int8_max_logit_diff, format_duration(train_s).c_str());
    std::string line = buf;
    if (e.int8_test_acc > result.best_int8_acc) {
      result.best_int8_acc = e.int8_test_acc;
      result.best_epoch = e.epoch;
      recipe["best_epoch"] = e.epoch;
      if (main) save_int8_model(result.int8_path, *int8, pp, data.train.classes, recipe);
      line += " (best, saved " + result.int8_path + ")";
    }
    log(line);
  }
  return result;
}

}  // namespace quench::cli
