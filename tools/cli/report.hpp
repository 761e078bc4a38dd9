// The main job's report: FP32 teacher vs PTQ int8 vs QAT int8 vs QAT+KD int8 (accuracy, size, speed),
// the recipe, and the training curves, as report.json, report.md and curves.png.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/module.hpp"
#include "tools/cli/compress.hpp"

namespace quench::cli {

// A further integer model of the teacher's size, e.g. W4A8: its name ("PTQ W4A8", "QAT+KD W4A8 g64"),
// accuracy, file size, inference time and, for a QAT run, its per-epoch metrics.
struct ReportRow {
  std::string name;
  double int8_acc = 0;
  int64_t size_bytes = 0;
  double infer_ms = 0, single_ms = 0;  // a batch of infer_batch images; one image
  std::vector<DistillEpoch> curve;
};

struct Report {
  double teacher_fp32_acc = 0, ptq_int8_acc = 0, qat_int8_acc = 0, qat_kd_int8_acc = 0;  // fractions
  int64_t fp32_size_bytes = 0, int8_size_bytes = 0;
  double fp32_infer_ms = 0, int8_infer_ms = 0;  // one batch of infer_batch images, infer_threads threads
  double fp32_single_ms = 0, int8_single_ms = 0;  // one image (median of 21)
  int64_t infer_batch = 128, infer_threads = 2, test_images = 0;
  nlohmann::json recipe;                              // free-form: how each model was made
  std::vector<DistillEpoch> qat_curve, qat_kd_curve;  // per-epoch metrics of the two QAT runs
  // Optional (has_small): a smaller student trained without (small) and with (small_kd) the teacher.
  bool has_small = false;
  double small_int8_acc = 0, small_kd_int8_acc = 0;
  int64_t small_int8_size_bytes = 0;
  nn::ViTConfig small_student;
  std::vector<DistillEpoch> small_curve, small_kd_curve;
  std::vector<ReportRow> low_bit;  // optional: the same recipes at fewer weight bits
};

// The epoch distill() kept (the first with the highest int8 test accuracy), or null when none.
const DistillEpoch* best_epoch(const std::vector<DistillEpoch>& curve);

// Keys: teacher_fp32_acc, ptq_int8_acc, qat_int8_acc, qat_kd_int8_acc, fp32_size_bytes,
// int8_size_bytes, fp32_infer_ms, int8_infer_ms, fp32_single_ms, int8_single_ms, infer_batch,
// infer_threads, test_images,
// qat_kd_fq_int8_agreement and qat_kd_fq_int8_max_logit_diff (the QAT+KD run's best epoch), recipe,
// curves {qat, qat_kd} (lists of DistillEpoch JSON); with has_small also small_int8_acc,
// small_kd_int8_acc, small_int8_size_bytes, small_student (its ViTConfig) and curves {small, small_kd};
// with low_bit rows a list low_bit of {name, int8_acc, size_bytes, infer_ms, single_ms, curve}.
nlohmann::json to_json(const Report& r);
// The table printed by the tool and shown in report.md (Markdown).
std::string format_report_table(const Report& r);
// Writes out_dir/report.json, out_dir/curves.png (the labels' cross-entropy on the training set and
// int8 test accuracy per epoch, QAT against QAT+KD, and the small students when present) and
// out_dir/report.md (the table, a per-epoch table of every QAT run, low-bit ones included, the recipe,
// the plot).
void write_report(const Report& r, const std::string& out_dir);

// Milliseconds of one eval forward of `model` on a random [batch, chans, img, img] input with
// `threads` threads: the median of `reps` runs after one warm-up (the thread count is restored).
double measure_infer_ms(nn::Module& model, int64_t batch, int64_t chans, int64_t img, int threads,
                        int reps = 5);

// Per-epoch metrics back from a metrics.jsonl written by distill().
std::vector<DistillEpoch> read_distill_metrics(const std::string& path);

}  // namespace quench::cli
