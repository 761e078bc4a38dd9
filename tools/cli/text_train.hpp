// `--task text`: training a BERT classifier from scratch, evaluating it, and compressing it (PTQ, QAT,
// QAT + INC's BERT distillation recipe) to int8. The text twins of trainer.hpp and compress.hpp.
//
// Training: the WordPiece vocabulary is read (--vocab) or learned from the training texts
// (nn::train_wordpiece_vocab, written to out_dir/vocab.txt); every text is tokenized once
// ([CLS] text [SEP], truncated to max_length); batches are shuffled per epoch (seeded by seed and the
// epoch) and padded to their longest row. AdamW as HF's Trainer (no decay on biases and LayerNorm
// weights), linear warmup over warmup_ratio of the steps then linear decay to 0, global-norm clipping.
// Files under out_dir: best.safetensors (the best test accuracy so far), last.safetensors (after every
// epoch, with the optimizer state), metrics.jsonl (one TextEpoch per line), vocab.txt. A non-finite loss
// stops before it touches the weights, so the files on disk stay the last good ones.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dist/process_group.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/evaluate.hpp"
#include "tools/cli/progress.hpp"
#include "tools/cli/text_data.hpp"
#include "tools/cli/text_model.hpp"

namespace quench::cli {

struct TextTrainConfig {
  TextDataOptions data;
  std::string vocab;           // a vocab.txt; empty: learn one of vocab_size tokens from the training texts
  int64_t vocab_size = 8000;
  bool do_lower_case = true;
  int64_t max_length = 128;
  // BERT sizes (BERT-small by default) and dropout (HF's hidden and attention dropout).
  int64_t layers = 4, hidden = 256, heads = 4, intermediate = 1024;
  double dropout = 0.1;
  int64_t epochs = 4, batch_size = 32;
  double lr = 5e-4, weight_decay = 0.01, warmup_ratio = 0.1, clip_grad = 1.0;
  uint64_t seed = 0;
};
nlohmann::json to_json(const TextTrainConfig& c);
TextTrainConfig text_train_config_from_json(const nlohmann::json& j);

struct TextEpoch {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, test_f1 = 0, lr = 0, seconds = 0,
         seq_per_s = 0;
};
nlohmann::json to_json(const TextEpoch& e);

struct TextHooks {
  std::function<bool()> stop_requested;  // polled after every step: true saves last and stops
  ProgressBar* progress = nullptr;
  std::function<void(const std::string&)> log;
  // The processes training together (default: the job's, dist::ProcessGroup::world()); rank 0
  // alone writes files, logs and draws.
  dist::ProcessGroup* process_group = nullptr;
};

struct TextTrainResult {
  enum Status { finished, interrupted, non_finite } status = finished;
  std::string message;
  std::vector<TextEpoch> epochs;
  double best_acc = -1;
  int64_t best_epoch = -1;
};

TextTrainResult train_text(const TextTrainConfig& cfg, const TextSplits& data, const std::string& out_dir,
                           const TextHooks& hooks = {});

// Runs `model` (eval, no grad) over `data` in order; labels must lie in [0, classes).
EvalResult evaluate_text(nn::Module& model, const EncodedTexts& data, int32_t pad_id, int64_t classes,
                         int64_t batch_size = 64, bool keep_logits = false);

// Compression of a text teacher to int8 (quench quantize / distill --task text).
struct TextCompressOptions {
  std::string method = "qat+kd";  // "ptq", "qat" or "qat+kd" (INC's BERT recipe, distill/bert_recipe.hpp)
  int64_t calib_batches = 16;     // PTQ
  int64_t epochs = 2, batch_size = 32;
  double lr = 5e-5, weight_decay = 0.01, warmup_ratio = 0.0;
  double hidden_weight = 1, attn_weight = 1, logits_weight = 1;  // the recipe's MSE terms
  bool add_origin_loss = false;   // also the cross-entropy on the labels
  int freeze_observers_epoch = 1; // observers freeze at the start of this 0-based epoch (< 0: never)
  int64_t qat_calib_batches = 0;  // QAT: calibrate the observers on this many batches first (0: none)
  uint64_t seed = 0;
  WeightPrecision weights;        // 8 bits per channel; 4 or fewer: packed int4 layers (W4A8)
  TextDataOptions data;           // where the splits came from: recorded, so eval finds them again
};
nlohmann::json to_json(const TextCompressOptions& o);

struct TextCompressResult {
  double fp32_acc = 0, int8_acc = 0, int8_f1 = 0, fq_acc = -1, agreement = -1;
  std::string int8_path;
  std::vector<nlohmann::json> epochs;  // QAT: per epoch train loss, fake-quant and int8 accuracy
};

// Writes out_dir/int8.safetensors (QAT: the best epoch's) and, for QAT, out_dir/metrics.jsonl.
TextCompressResult compress_text(const TextCompressOptions& o, const TextModel& teacher, const TextSplits& data,
                                 const std::string& out_dir, const TextHooks& hooks = {});

}  // namespace quench::cli
