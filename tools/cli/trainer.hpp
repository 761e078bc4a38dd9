// The training loop of `quench train`, callable from tests: a ViT trained with AdamW, warmup + cosine,
// label smoothing, clipping and optional EMA; evaluation after every epoch; checkpoints and a metrics
// log under out_dir.
//
// Files under out_dir:
//   last.safetensors  after every epoch and on interruption (model, "optim." state, "ema.", progress)
//   best.safetensors  when the test accuracy improves (model weights, the EMA weights with EMA on)
//   metrics.jsonl     one JSON object per finished epoch: epoch, train_loss, train_acc, test_loss,
//                     test_acc, lr, seconds, images_per_s, global_step (appended to on resume)
// Checkpoints are written atomically, so a crash never leaves a torn file.
//
// Data parallel (mpirun -np R): the global batch cfg.batch_size is split over the R processes (it must
// be a multiple of R), gradients are averaged before each step, losses and accuracies are summed over
// the processes, evaluation splits the test set, and rank 0 alone writes; the weights equal one
// process's up to float summation order. Resume works with any R that divides the batch.
//
// Exact resume: model, optimizer state, EMA, schedule step and the data stream (DataLoader::set_epoch
// and skipping the batches already done) are restored, so a run interrupted anywhere and resumed ends
// with the same weights, bit for bit, as an uninterrupted one (see checkpoint.hpp for why nothing else
// is random).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dist/process_group.hpp"
#include "nn/data/loader.hpp"
#include "tools/cli/checkpoint.hpp"
#include "tools/cli/data.hpp"
#include "tools/cli/progress.hpp"

namespace quench::cli {

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, lr = 0, seconds = 0, images_per_s = 0;
  int64_t global_step = 0;
};
nlohmann::json to_json(const EpochMetrics& m);

struct TrainHooks {
  // Polled after every step; true stops the run after saving last.safetensors (Ctrl-C, tests).
  std::function<bool()> stop_requested;
  // Runs before each step on its batch (tests inject NaNs here).
  std::function<void(int64_t global_step, nn::Batch& batch)> before_step;
  ProgressBar* progress = nullptr;              // null: no bar
  std::function<void(const std::string&)> log;  // one-line messages; null: silent
  // The processes training together (data parallel: each reads its shard of every batch of
  // cfg.batch_size, the global batch, and gradients are averaged); null: ProcessGroup::world(), which
  // is one process unless started by mpirun. Only rank 0 writes files and logs.
  dist::ProcessGroup* process_group = nullptr;
};

enum class TrainStatus { finished, interrupted, non_finite };

struct TrainResult {
  TrainStatus status = TrainStatus::finished;
  std::string message;               // why it stopped, for the user
  TrainProgress progress;            // where it stood at the end
  std::vector<EpochMetrics> epochs;  // the epochs finished by this call
};

// Trains per `cfg` on `data` writing into out_dir (created when missing). With `resume` (a
// last.safetensors of a run with the same cfg) training continues where it stopped.
// A non-finite loss stops before that step touches the weights; nothing is written then, so the last
// checkpoint on disk stays the last good one.
TrainResult train(const TrainConfig& cfg, const DataSplits& data, const std::string& out_dir,
                  const TrainHooks& hooks = {}, const Checkpoint* resume = nullptr);

}  // namespace quench::cli
