// Evaluation of a classifier on a labelled image set: loss, accuracy, per-class accuracy, confusion
// matrix and (optionally) the logits in data-set order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/data/dataset.hpp"
#include "nn/module.hpp"
#include "tools/cli/config.hpp"

namespace quench::dist {
class ProcessGroup;
}

namespace quench::cli {

struct EvalResult {
  int64_t n = 0, classes = 0;
  double loss = 0.0;  // mean cross-entropy (no label smoothing)
  int64_t correct = 0;
  std::vector<int64_t> confusion;  // [classes][classes], row = true class, column = predicted
  Tensor logits;                   // f32 [n, classes] in data-set order, when asked for

  double accuracy() const { return n ? static_cast<double>(correct) / static_cast<double>(n) : 0.0; }
  int64_t at(int64_t truth, int64_t pred) const { return confusion[truth * classes + pred]; }
  // correct / count per true class (0 for a class with no samples).
  std::vector<double> per_class_accuracy() const;
  // F1 per class, 2 tp / (2 tp + fp + fn) (0 for a class never present nor predicted).
  std::vector<double> per_class_f1() const;
  // The F1 score as scikit-learn's f1_score reports it: of class 1 (the positive class, e.g. spam)
  // for two classes, the unweighted mean over classes (macro) for more.
  double f1() const;
};

// Adds a batch's predictions to `r` (r.classes set, r.confusion sized). logits f32 [B, classes],
// labels i32 [B]. The prediction is the first maximum of a row (torch.argmax). Labels outside
// [0, classes) throw.
void accumulate_predictions(EvalResult& r, const Tensor& logits, const Tensor& labels);
// The rows of a batch predicted right (accumulate_predictions' rule), e.g. for a training step.
int64_t count_correct(const Tensor& logits, const Tensor& labels);

// Sums each process's part (n, correct, loss, confusion) into the whole; every process gets it.
// Logits are not gathered.
void all_reduce(EvalResult& r, dist::ProcessGroup& pg);

// How two models' logits over the same images agree (e.g. a fake-quant student and its int8
// conversion): the fraction of rows whose predicted class (first maximum) is the same, and the largest
// absolute logit difference. a, b f32 [n, classes] of equal shape.
struct Agreement {
  double fraction = 0.0, max_abs_diff = 0.0;
};
Agreement prediction_agreement(const Tensor& a, const Tensor& b);

// Runs `model` in eval mode without grad over `data` in order (normalized by `pp`), batch by batch.
// The model's training flag is restored afterwards.
EvalResult evaluate(nn::Module& model, const nn::LabeledImages& data, const Preprocess& pp, int64_t classes,
                    int64_t batch_size = 256, bool keep_logits = false);

// Multi-line report: accuracy, per-class accuracy with names, and the confusion matrix.
std::string format_report(const EvalResult& r, const std::vector<std::string>& class_names);

}  // namespace quench::cli
