#include "tools/cli/report.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "tools/cli/plot.hpp"

namespace quench::cli {

using nlohmann::json;

const DistillEpoch* best_epoch(const std::vector<DistillEpoch>& curve) {
  const DistillEpoch* best = nullptr;
  for (const auto& e : curve)
    if (!best || e.int8_test_acc > best->int8_test_acc) best = &e;
  return best;
}

namespace {

json curve_json(const std::vector<DistillEpoch>& c) {
  json out = json::array();
  for (const auto& e : c) out.push_back(to_json(e));
  return out;
}

}  // namespace

json to_json(const Report& r) {
  const DistillEpoch* kd_best = best_epoch(r.qat_kd_curve);
  json j = {{"teacher_fp32_acc", r.teacher_fp32_acc},
          {"ptq_int8_acc", r.ptq_int8_acc},
          {"qat_int8_acc", r.qat_int8_acc},
          {"qat_kd_int8_acc", r.qat_kd_int8_acc},
          {"fp32_size_bytes", r.fp32_size_bytes},
          {"int8_size_bytes", r.int8_size_bytes},
          {"fp32_infer_ms", r.fp32_infer_ms},
          {"int8_infer_ms", r.int8_infer_ms},
          {"fp32_single_ms", r.fp32_single_ms},
          {"int8_single_ms", r.int8_single_ms},
          {"infer_batch", r.infer_batch},
          {"infer_threads", r.infer_threads},
          {"test_images", r.test_images},
          {"qat_kd_fq_int8_agreement", kd_best ? kd_best->fq_int8_agreement : -1.0},
          {"qat_kd_fq_int8_max_logit_diff", kd_best ? kd_best->fq_int8_max_logit_diff : -1.0},
          {"recipe", r.recipe},
          {"curves", {{"qat", curve_json(r.qat_curve)}, {"qat_kd", curve_json(r.qat_kd_curve)}}}};
  if (r.has_small) {
    j["small_int8_acc"] = r.small_int8_acc;
    j["small_kd_int8_acc"] = r.small_kd_int8_acc;
    j["small_int8_size_bytes"] = r.small_int8_size_bytes;
    j["small_student"] = to_json(r.small_student);
    j["curves"]["small"] = curve_json(r.small_curve);
    j["curves"]["small_kd"] = curve_json(r.small_kd_curve);
  }
  if (!r.low_bit.empty()) {
    j["low_bit"] = json::array();
    for (const ReportRow& row : r.low_bit)
      j["low_bit"].push_back({{"name", row.name}, {"int8_acc", row.int8_acc}, {"size_bytes", row.size_bytes},
                              {"infer_ms", row.infer_ms}, {"single_ms", row.single_ms},
                              {"curve", curve_json(row.curve)}});
  }
  return j;
}

std::string format_report_table(const Report& r) {
  char buf[2048];
  const double mb = 1.0 / (1024.0 * 1024.0);
  std::snprintf(buf, sizeof buf,
                "| model | test accuracy | size | inference (batch %lld, %lld threads) | one image |\n"
                "|---|---|---|---|---|\n"
                "| FP32 teacher | %.2f%% | %.2f MiB | %.1f ms | %.2f ms |\n"
                "| PTQ int8 | %.2f%% | %.2f MiB | %.1f ms | %.2f ms |\n"
                "| QAT int8 | %.2f%% | %.2f MiB | %.1f ms | %.2f ms |\n"
                "| QAT+KD int8 | %.2f%% | %.2f MiB | %.1f ms | %.2f ms |\n",
                static_cast<long long>(r.infer_batch), static_cast<long long>(r.infer_threads),
                100 * r.teacher_fp32_acc, r.fp32_size_bytes * mb, r.fp32_infer_ms, r.fp32_single_ms,
                100 * r.ptq_int8_acc, r.int8_size_bytes * mb, r.int8_infer_ms, r.int8_single_ms,
                100 * r.qat_int8_acc, r.int8_size_bytes * mb, r.int8_infer_ms, r.int8_single_ms,
                100 * r.qat_kd_int8_acc, r.int8_size_bytes * mb, r.int8_infer_ms, r.int8_single_ms);
  std::string out = buf;
  if (r.has_small) {
    const nn::ViTConfig& c = r.small_student;
    std::snprintf(buf, sizeof buf,
                  "| small int8 (dim %lld, depth %lld), no teacher | %.2f%% | %.2f MiB | | |\n"
                  "| small int8 (dim %lld, depth %lld), KD | %.2f%% | %.2f MiB | | |\n",
                  static_cast<long long>(c.dim), static_cast<long long>(c.depth), 100 * r.small_int8_acc,
                  r.small_int8_size_bytes * mb, static_cast<long long>(c.dim), static_cast<long long>(c.depth),
                  100 * r.small_kd_int8_acc, r.small_int8_size_bytes * mb);
    out += buf;
  }
  for (const ReportRow& row : r.low_bit) {
    std::snprintf(buf, sizeof buf, "| %s | %.2f%% | %.2f MiB | %.1f ms | %.2f ms |\n", row.name.c_str(),
                  100 * row.int8_acc, row.size_bytes * mb, row.infer_ms, row.single_ms);
    out += buf;
  }
  if (const DistillEpoch* b = best_epoch(r.qat_kd_curve); b && b->fq_int8_agreement >= 0) {
    std::snprintf(buf, sizeof buf,
                  "\nQAT+KD fake-quant vs int8 (epoch %lld): predictions agree on %.2f%% of the test images, "
                  "largest logit difference %.3g\n",
                  static_cast<long long>(b->epoch), 100 * b->fq_int8_agreement, b->fq_int8_max_logit_diff);
    out += buf;
  }
  return out;
}

namespace {

// The labels' cross-entropy of an epoch, so that QAT and QAT+KD compare like with like; metrics
// written before it was logged fall back to the run's objective.
double task_loss(const DistillEpoch& e) { return e.train_task_loss >= 0 ? e.train_task_loss : e.train_loss; }

Series curve(const std::vector<DistillEpoch>& es, const std::string& name, Rgb color, bool loss) {
  Series s;
  s.name = name;
  s.color = color;
  for (const auto& e : es) {
    s.x.push_back(static_cast<double>(e.epoch));
    s.y.push_back(loss ? task_loss(e) : 100.0 * e.int8_test_acc);
  }
  return s;
}

}  // namespace

void write_report(const Report& r, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  {
    std::ofstream f(out_dir + "/report.json");
    QUENCH_CHECK(f, "report: cannot write ", out_dir, "/report.json");
    f << to_json(r).dump(2) << "\n";
  }
  // Two panels: the training set's cross-entropy on the labels and int8 test accuracy per epoch.
  Image img(1000, 420);
  auto panel = [&](bool loss) {
    std::vector<Series> s{curve(r.qat_curve, "QAT", kBlue, loss), curve(r.qat_kd_curve, "QAT+KD", kOrange, loss)};
    if (r.has_small) {
      s.push_back(curve(r.small_curve, "SMALL", kGreen, loss));
      s.push_back(curve(r.small_kd_curve, "SMALL+KD", kRed, loss));
    }
    return s;
  };
  draw_panel(img, 0, 0, 500, 420, "TRAIN TASK LOSS", panel(true));
  draw_panel(img, 500, 0, 500, 420, "INT8 TEST ACCURACY %", panel(false));
  write_png(out_dir + "/curves.png", img);

  std::ofstream md(out_dir + "/report.md");
  QUENCH_CHECK(md, "report: cannot write ", out_dir, "/report.md");
  md << "# quench report\n\nFashion-MNIST test set (" << r.test_images << " images). Inference: one forward of "
     << r.infer_batch << " images with " << r.infer_threads << " threads, median of 5; one image: median of 21.\n\n"
     << format_report_table(r)
     << "\n## Training curves\n\nLeft: the cross-entropy on the labels over each training epoch (with KD "
        "too: the task part of the objective, not the distillation terms). Right: accuracy of the converted "
        "int8 model on the test set after each epoch. Blue: QAT only; orange: QAT+KD"
     << (r.has_small ? "; green: the small student without a teacher; red: the small student with KD" : "")
     << ".\n\n![curves](curves.png)\n\n";
  auto cell = [](const std::vector<DistillEpoch>& v, size_t i, bool loss) {
    char b[32] = "";
    if (i < v.size()) std::snprintf(b, sizeof b, loss ? "%.4f" : "%.2f%%", loss ? task_loss(v[i]) : 100 * v[i].int8_test_acc);
    return std::string(b);
  };
  std::vector<std::pair<std::string, const std::vector<DistillEpoch>*>> runs{{"QAT", &r.qat_curve},
                                                                           {"QAT+KD", &r.qat_kd_curve}};
  if (r.has_small) {
    runs.emplace_back("small", &r.small_curve);
    runs.emplace_back("small+KD", &r.small_kd_curve);
  }
  for (const ReportRow& row : r.low_bit)
    if (!row.curve.empty()) runs.emplace_back(row.name, &row.curve);
  md << "| epoch |";
  for (const auto& [name, c] : runs) md << " " << name << " task loss | " << name << " int8 acc |";
  md << "\n|---|";
  for (size_t i = 0; i < runs.size(); ++i) md << "---|---|";
  md << "\n";
  size_t n = 0;
  for (const auto& [name, c] : runs) n = std::max(n, c->size());
  for (size_t i = 0; i < n; ++i) {
    md << "| " << i + 1 << " |";
    for (const auto& [name, c] : runs) md << " " << cell(*c, i, true) << " | " << cell(*c, i, false) << " |";
    md << "\n";
  }
  md << "\n## Recipe\n\n```json\n" << r.recipe.dump(2) << "\n```\n";
}

double measure_infer_ms(nn::Module& model, int64_t batch, int64_t chans, int64_t img, int threads, int reps) {
  QUENCH_CHECK(batch > 0 && reps > 0 && threads > 0, "measure_infer_ms: batch (", batch, "), reps (", reps,
               ") and threads (", threads, ") must be positive");
  const int before = get_num_threads();
  set_num_threads(threads);
  Generator gen(1);
  Tensor x = randn({batch, chans, img, img}, gen);
  NoGradGuard ng;
  const bool was_training = model.is_training();
  model.eval();
  (void)model(x);  // warm-up (first-touch, packing caches)
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Tensor y = model(x);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  model.train(was_training);
  set_num_threads(before);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<DistillEpoch> read_distill_metrics(const std::string& path) {
  std::ifstream f(path);
  QUENCH_CHECK(f, "report: cannot read ", path);
  std::vector<DistillEpoch> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      throw Error("report: " + path + ": bad JSON line: " + e.what());
    }
    out.push_back(distill_epoch_from_json(j));
  }
  return out;
}

}  // namespace quench::cli
