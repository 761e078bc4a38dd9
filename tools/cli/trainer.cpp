#include "tools/cli/trainer.hpp"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "dist/data_parallel.hpp"
#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "nn/layers/vit.hpp"
#include "nn/optim/adamw.hpp"
#include "nn/optim/clip_grad.hpp"
#include "nn/optim/lr_schedule.hpp"
#include "tools/cli/evaluate.hpp"

namespace quench::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},         {"train_loss", m.train_loss},     {"train_acc", m.train_acc},
          {"test_loss", m.test_loss}, {"test_acc", m.test_acc},         {"lr", m.lr},
          {"seconds", m.seconds},     {"images_per_s", m.images_per_s}, {"global_step", m.global_step}};
}

namespace {

// Exponential moving average of the parameters (timm ModelEmaV2) with the usual warmup of the decay,
// min(decay, (1 + t) / (10 + t)), so early averages are not dominated by the random init.
struct Ema {
  double decay = 0.0;
  std::vector<std::pair<std::string, Tensor>> params;  // live model parameters
  nn::StateDict avg;                                   // the averages, same names

  void init(const nn::Module& model) {
    params = model.named_parameters();
    for (const auto& [n, p] : params) avg.insert(n, p.detach().clone());
  }
  void update(int64_t step) {
    const double d = std::min(decay, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
    const float a = static_cast<float>(d), b = static_cast<float>(1.0 - d);
    for (const auto& [n, p] : params) {
      const Tensor& e = avg.at(n);
      float* ep = e.data_ptr<float>();
      const float* pp = p.data_ptr<float>();
      for (int64_t i = 0, n_el = p.numel(); i < n_el; ++i) ep[i] = a * ep[i] + b * pp[i];
    }
  }
};

// evaluate() over this rank's share of the test set (rows rank, rank + R, ...), the counts summed over
// the ranks: every rank gets the whole set's result.
EvalResult evaluate_shared(nn::Module& model, const nn::LabeledImages& test, const Preprocess& pp,
                           int64_t classes, dist::ProcessGroup& pg) {
  if (pg.size() == 1) return evaluate(model, test, pp, classes);
  std::vector<int32_t> rows;
  for (int64_t i = pg.rank(); i < test.size(); i += pg.size()) rows.push_back(static_cast<int32_t>(i));
  EvalResult r = evaluate(model, select_rows(test, rows), pp, classes);
  all_reduce(r, pg);
  return r;
}

void check_config(const TrainConfig& c) {
  QUENCH_CHECK(c.epochs > 0 && c.batch_size > 0, "train: epochs (", c.epochs, ") and batch size (",
               c.batch_size, ") must be positive");
  QUENCH_CHECK(c.lr > 0 && c.min_lr >= 0 && c.weight_decay >= 0 && c.warmup_epochs >= 0,
               "train: need lr > 0, min_lr >= 0, weight_decay >= 0, warmup_epochs >= 0 (got ", c.lr, ", ",
               c.min_lr, ", ", c.weight_decay, ", ", c.warmup_epochs, ")");
  QUENCH_CHECK(c.label_smoothing >= 0 && c.label_smoothing < 1,
               "train: label smoothing must lie in [0, 1), got ", c.label_smoothing);
  QUENCH_CHECK(c.ema >= 0 && c.ema < 1, "train: EMA decay must lie in [0, 1), got ", c.ema);
  QUENCH_CHECK(c.clip_grad >= 0, "train: clip_grad must be >= 0, got ", c.clip_grad);
}

}  // namespace

TrainResult train(const TrainConfig& cfg, const DataSplits& data, const std::string& out_dir,
                  const TrainHooks& hooks, const Checkpoint* resume) {
  check_config(cfg);
  QUENCH_CHECK(data.train.size() > 0 && data.test.size() > 0, "train: empty data (", data.train.size(),
               " training and ", data.test.size(), " test images)");
  dist::ProcessGroup& pg = hooks.process_group ? *hooks.process_group : dist::ProcessGroup::world();
  const int64_t world = pg.size();
  const bool main = pg.is_main();
  QUENCH_CHECK(cfg.batch_size % world == 0, "train: the batch size ", cfg.batch_size,
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
  const std::string last_path = out_dir + "/last.safetensors", best_path = out_dir + "/best.safetensors";

  // Model, optimizer, schedule: everything random derives from cfg.seed.
  Generator gen(cfg.seed);
  auto model = std::make_shared<nn::ViT>(cfg.model, gen);
  if (cfg.init == "torch") model->init_weights_torch(gen);
  auto groups = optim::param_groups_weight_decay(model->named_parameters(), cfg.weight_decay,
                                                 {"pos_embed", "cls_token"});
  optim::AdamW opt(groups,
                   optim::AdamWOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay));
  const std::vector<Tensor> params = model->parameters();

  nn::DataLoaderOptions lo;
  lo.batch_size = cfg.batch_size / world;
  lo.num_replicas = world;
  lo.rank = pg.rank();
  lo.shuffle = true;
  lo.seed = cfg.seed;
  lo.mean = cfg.preprocess.mean;
  lo.std = cfg.preprocess.std;
  lo.crop_padding = cfg.crop_padding;
  lo.horizontal_flip = cfg.hflip;
  lo.erase_prob = static_cast<float>(cfg.random_erase);
  nn::DataLoader loader(data.train, lo);
  const int64_t steps = loader.size(), total_steps = steps * cfg.epochs;
  optim::LRScheduleOptions so;
  so.base_lr = cfg.lr;
  so.min_lr = cfg.min_lr;
  so.warmup_steps = static_cast<int64_t>(std::llround(cfg.warmup_epochs * static_cast<double>(steps)));
  so.total_steps = total_steps;
  optim::LRSchedule sched(&opt, so);
  if (so.warmup_steps >= total_steps && !resume)
    log("note: the warmup (" + std::to_string(so.warmup_steps) + " steps) spans the whole run of " +
        std::to_string(total_steps) + " steps, so there is no cosine decay (lower --warmup-epochs)");

  Ema ema;
  ema.decay = cfg.ema;
  if (cfg.ema > 0) ema.init(*model);
  std::shared_ptr<nn::ViT> ema_model;  // evaluated in place of the model when EMA is on
  if (cfg.ema > 0) {
    Generator g2(cfg.seed);
    ema_model = std::make_shared<nn::ViT>(cfg.model, g2);
  }

  TrainProgress prog;
  if (resume) {
    model->load_state_dict(resume->model, true);
    opt.load_state_dict(resume->optim);
    if (cfg.ema > 0) {
      QUENCH_CHECK(!resume->ema.empty(), "train: ", resume->path,
                   " has no EMA weights but the run uses --ema");
      ema_model->load_state_dict(resume->ema, true);  // checks names and shapes
      for (const auto& [n, t] : resume->ema)
        Tensor(ema.avg.at(n)).copy_(t);  // a handle to the stored average
    }
    prog = resume->progress();
    QUENCH_CHECK(prog.global_step == prog.epoch * steps + prog.batch && prog.batch <= steps,
                 "train: ", resume->path, " stopped at epoch ", prog.epoch, " batch ", prog.batch, " (step ",
                 prog.global_step, "), which does not fit ", steps, " batches per epoch");
    sched.set_step(prog.global_step);
  }
  // Every process starts from rank 0's weights (equal already when seeded alike; this makes it so).
  dist::DataParallel dp(params, pg);
  dp.broadcast_from_main(params);

  const std::vector<std::string> classes = data.train.classes;
  auto save_last = [&]() {
    if (!main) return;
    save_checkpoint(last_path, model->state_dict(), opt.state_dict(), cfg.ema > 0 ? ema.avg : nn::StateDict(),
                    checkpoint_metadata(cfg, classes, prog));
  };
  std::ofstream metrics;
  if (main) {
    metrics.open(out_dir + "/metrics.jsonl", resume ? std::ios::app : std::ios::trunc);
    QUENCH_CHECK(metrics, "train: cannot open ", out_dir, "/metrics.jsonl for writing");
  }

  TrainResult result;
  const auto run_start = Clock::now();
  int64_t run_steps = 0;  // steps done by this call (for the ETA)
  while (prog.epoch < cfg.epochs) {
    loader.set_epoch(prog.epoch);
    for (int64_t k = 0; k < prog.batch; ++k)
      loader.next();  // resume mid-epoch: same stream, skip what was done
    auto epoch_start = Clock::now();
    const double seconds_before = prog.seconds;
    model->train();
    while (prog.batch < steps) {
      std::optional<nn::Batch> batch = loader.next();
      QUENCH_CHECK(batch.has_value(), "train: the data loader ended epoch ", prog.epoch, " after ",
                   prog.batch, " of ", steps, " batches");
      if (hooks.before_step) hooks.before_step(prog.global_step, *batch);
      // Patch dropout for the first patch_dropout_epochs epochs (0: all), its draws seeded by the
      // step, so a resumed run drops the same tokens.
      const bool drop = cfg.patch_dropout > 0 &&
                        (cfg.patch_dropout_epochs == 0 || prog.epoch < cfg.patch_dropout_epochs);
      model->patch_dropout = drop ? cfg.patch_dropout : 0.0;
      const auto step = static_cast<uint64_t>(prog.global_step);
      model->patch_generator.manual_seed(cfg.seed ^ (0x9e3779b97f4a7c15ULL * (step + 1)));
      Tensor logits = (*model)(batch->images);
      Tensor loss = cross_entropy(logits, batch->labels, -100, cfg.label_smoothing);
      // The step's loss and accuracy over every process (one process: these very numbers).
      const int64_t local_b = batch->labels.size(0);
      std::vector<double> step_sums{static_cast<double>(loss.item<float>()) * static_cast<double>(local_b),
                                    static_cast<double>(count_correct(logits.detach(), batch->labels)),
                                    static_cast<double>(local_b)};
      dist::all_reduce_sum(pg, step_sums);
      const int64_t B = static_cast<int64_t>(step_sums[2]);
      const float lv = world == 1 ? loss.item<float>() : static_cast<float>(step_sums[0] / step_sums[2]);
      if (!std::isfinite(lv)) {
        result.status = TrainStatus::non_finite;
        result.message = "non-finite loss (" + std::to_string(lv) + ") at epoch " +
                         std::to_string(prog.epoch + 1) + ", step " + std::to_string(prog.batch + 1) + "/" +
                         std::to_string(steps) + " (global step " + std::to_string(prog.global_step + 1) +
                         "); stopped without saving, " +
                         (std::filesystem::exists(last_path) ? last_path + " is the last good checkpoint"
                                                             : "no checkpoint was written yet") +
                         " (try a lower --lr or --clip-grad)";
        result.progress = prog;
        log(result.message);
        return result;
      }
      opt.zero_grad();
      loss.backward();
      dp.synchronize_gradients();
      if (cfg.clip_grad > 0) optim::clip_grad_norm_(params, cfg.clip_grad);
      opt.step();
      sched.step();
      if (cfg.ema > 0) ema.update(prog.global_step);

      prog.loss_sum += world == 1 ? static_cast<double>(lv) * static_cast<double>(B) : step_sums[0];
      prog.correct += static_cast<int64_t>(step_sums[1]);
      prog.seen += B;
      ++prog.batch;
      ++prog.global_step;
      ++run_steps;
      const double epoch_s = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      prog.seconds = seconds_before + epoch_s;
      if (hooks.progress && main) {
        const double run_s = std::chrono::duration<double>(Clock::now() - run_start).count();
        ProgressState ps;
        ps.epoch = prog.epoch + 1;
        ps.epochs = cfg.epochs;
        ps.step = prog.batch;
        ps.steps = steps;
        ps.loss = prog.loss_sum / static_cast<double>(prog.seen);
        ps.accuracy = static_cast<double>(prog.correct) / static_cast<double>(prog.seen);
        ps.images_per_s = static_cast<double>(prog.seen) / std::max(prog.seconds, 1e-9);
        ps.eta_s =
            run_s / static_cast<double>(run_steps) * static_cast<double>(total_steps - prog.global_step);
        hooks.progress->update(ps, prog.batch == steps);
      }
      // Ctrl-C reaches the processes one by one: any of them stopping stops all, at the same step.
      std::vector<double> stop{hooks.stop_requested && hooks.stop_requested() ? 1.0 : 0.0};
      dist::all_reduce_sum(pg, stop);
      if (stop[0] > 0) {
        save_last();
        result.status = TrainStatus::interrupted;
        result.progress = prog;
        result.message = "interrupted at epoch " + std::to_string(prog.epoch + 1) + ", step " +
                         std::to_string(prog.batch) + "/" + std::to_string(steps) + ": saved " + last_path +
                         "; continue with --resume " + last_path;
        log(result.message);
        return result;
      }
    }

    // End of epoch: evaluate, log, checkpoint.
    nn::ViT* eval_model = model.get();
    if (cfg.ema > 0) {
      ema_model->load_state_dict(ema.avg, true);
      eval_model = ema_model.get();
    }
    EvalResult ev = evaluate_shared(*eval_model, data.test, cfg.preprocess, cfg.model.classes, pg);
    EpochMetrics m;
    m.epoch = prog.epoch + 1;
    m.train_loss = prog.seen ? prog.loss_sum / static_cast<double>(prog.seen) : 0.0;
    m.train_acc = prog.seen ? static_cast<double>(prog.correct) / static_cast<double>(prog.seen) : 0.0;
    m.test_loss = ev.loss;
    m.test_acc = ev.accuracy();
    m.lr = sched.lr_at(prog.global_step - 1);
    m.seconds = prog.seconds;
    m.images_per_s = prog.seconds > 0 ? static_cast<double>(prog.seen) / prog.seconds : 0.0;
    m.global_step = prog.global_step;
    result.epochs.push_back(m);
    if (main) metrics << to_json(m).dump() << "\n" << std::flush;

    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "epoch %lld/%lld: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.0f img/s, %s",
                  static_cast<long long>(m.epoch), static_cast<long long>(cfg.epochs), m.train_loss,
                  100 * m.train_acc, m.test_loss, 100 * m.test_acc, m.images_per_s,
                  format_duration(m.seconds).c_str());
    std::string line = buf;

    const bool is_best = m.test_acc > prog.best_acc;
    if (is_best) {
      prog.best_acc = m.test_acc;
      prog.best_epoch = m.epoch;
    }
    TrainProgress next = prog;
    next.epoch = prog.epoch + 1;
    next.batch = 0;
    next.loss_sum = 0.0;
    next.correct = next.seen = 0;
    next.seconds = 0.0;
    if (is_best && main) {
      save_checkpoint(best_path, cfg.ema > 0 ? ema.avg : model->state_dict(), {}, {},
                      checkpoint_metadata(cfg, classes, next));
      line += " (best, saved " + best_path + ")";
    }
    prog = next;
    save_last();
    log(line);
  }
  result.status = TrainStatus::finished;
  result.progress = prog;
  char buf[128];
  std::snprintf(buf, sizeof buf, "done: best test accuracy %.2f%% at epoch %lld", 100 * prog.best_acc,
                static_cast<long long>(prog.best_epoch));
  result.message = buf;
  return result;
}

}  // namespace quench::cli
