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

json to_json(const Report& r) {
  json qat = json::array(), qat_kd = json::array();
  for (const auto& e : r.qat_curve) qat.push_back(to_json(e));
  for (const auto& e : r.qat_kd_curve) qat_kd.push_back(to_json(e));
  return {{"teacher_fp32_acc", r.teacher_fp32_acc},
          {"ptq_int8_acc", r.ptq_int8_acc},
          {"qat_int8_acc", r.qat_int8_acc},
          {"qat_kd_int8_acc", r.qat_kd_int8_acc},
          {"fp32_size_bytes", r.fp32_size_bytes},
          {"int8_size_bytes", r.int8_size_bytes},
          {"fp32_infer_ms", r.fp32_infer_ms},
          {"int8_infer_ms", r.int8_infer_ms},
          {"infer_batch", r.infer_batch},
          {"infer_threads", r.infer_threads},
          {"test_images", r.test_images},
          {"recipe", r.recipe},
          {"curves", {{"qat", qat}, {"qat_kd", qat_kd}}}};
}

std::string format_report_table(const Report& r) {
  char buf[2048];
  const double mb = 1.0 / (1024.0 * 1024.0);
  std::snprintf(buf, sizeof buf,
                "| model | test accuracy | size | inference (batch %lld, %lld threads) |\n"
                "|---|---|---|---|\n"
                "| FP32 teacher | %.2f%% | %.2f MiB | %.1f ms |\n"
                "| PTQ int8 | %.2f%% | %.2f MiB | %.1f ms |\n"
                "| QAT int8 | %.2f%% | %.2f MiB | %.1f ms |\n"
                "| QAT+KD int8 | %.2f%% | %.2f MiB | %.1f ms |\n",
                static_cast<long long>(r.infer_batch), static_cast<long long>(r.infer_threads),
                100 * r.teacher_fp32_acc, r.fp32_size_bytes * mb, r.fp32_infer_ms, 100 * r.ptq_int8_acc,
                r.int8_size_bytes * mb, r.int8_infer_ms, 100 * r.qat_int8_acc, r.int8_size_bytes * mb,
                r.int8_infer_ms, 100 * r.qat_kd_int8_acc, r.int8_size_bytes * mb, r.int8_infer_ms);
  return buf;
}

namespace {

Series curve(const std::vector<DistillEpoch>& es, const std::string& name, Rgb color, bool loss) {
  Series s;
  s.name = name;
  s.color = color;
  for (const auto& e : es) {
    s.x.push_back(static_cast<double>(e.epoch));
    s.y.push_back(loss ? e.train_loss : 100.0 * e.int8_test_acc);
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
  // Two panels: training loss (the runs' own objectives: QAT+KD's includes the distillation terms)
  // and int8 test accuracy per epoch.
  Image img(1000, 420);
  draw_panel(img, 0, 0, 500, 420, "TRAIN LOSS",
             {curve(r.qat_curve, "QAT", kBlue, true), curve(r.qat_kd_curve, "QAT+KD", kOrange, true)});
  draw_panel(img, 500, 0, 500, 420, "INT8 TEST ACCURACY %",
             {curve(r.qat_curve, "QAT", kBlue, false), curve(r.qat_kd_curve, "QAT+KD", kOrange, false)});
  write_png(out_dir + "/curves.png", img);

  std::ofstream md(out_dir + "/report.md");
  QUENCH_CHECK(md, "report: cannot write ", out_dir, "/report.md");
  md << "# quench report\n\nFashion-MNIST test set (" << r.test_images << " images). Inference: one forward of "
     << r.infer_batch << " images with " << r.infer_threads << " threads, median of 5.\n\n"
     << format_report_table(r)
     << "\n## Training curves\n\nLeft: training loss per epoch (QAT: cross-entropy; QAT+KD: its whole "
        "objective, distillation terms included). Right: accuracy of the converted int8 model on the test "
        "set after each epoch. Blue: QAT only; orange: QAT+KD.\n\n![curves](curves.png)\n\n"
     << "| epoch | QAT loss | QAT int8 acc | QAT+KD loss | QAT+KD int8 acc |\n|---|---|---|---|---|\n";
  const size_t n = std::max(r.qat_curve.size(), r.qat_kd_curve.size());
  for (size_t i = 0; i < n; ++i) {
    char row[256];
    auto cell = [](const std::vector<DistillEpoch>& v, size_t i, bool loss) {
      char b[32] = "";
      if (i < v.size()) std::snprintf(b, sizeof b, loss ? "%.4f" : "%.2f%%", loss ? v[i].train_loss : 100 * v[i].int8_test_acc);
      return std::string(b);
    };
    std::snprintf(row, sizeof row, "| %zu | %s | %s | %s | %s |\n", i + 1, cell(r.qat_curve, i, true).c_str(),
                  cell(r.qat_curve, i, false).c_str(), cell(r.qat_kd_curve, i, true).c_str(),
                  cell(r.qat_kd_curve, i, false).c_str());
    md << row;
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
