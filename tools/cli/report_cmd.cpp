// `quench report`: evaluates the teacher and the three int8 models (and optionally a smaller student
// without and with KD, and the same three recipes at fewer weight bits) on the test set, measures size and
// inference time, and writes report.json, report.md and curves.png; prints the table.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "kernels/parallel.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/evaluate.hpp"
#include "tools/cli/report.hpp"
#include "tools/cli/text_cmds.hpp"
#include "tools/cli/text_model.hpp"

namespace quench::cli {

namespace {

struct ReportArgs {
  std::string teacher, ptq, qat_dir, qat_kd_dir, small_dir, small_kd_dir, low_ptq, low_qat_dir, low_qat_kd_dir,
      out = "runs/report",
                                                 fashion_root = "/usr/share/datasets/fashion-mnist/";
  int64_t limit_test = 0;
  int threads = 2;
  std::string task = "auto";
};

int run_report(const ReportArgs& a) {
  if (a.task == "text" || (a.task == "auto" && is_text_checkpoint_file(a.teacher)))
    return run_text_report(a.teacher, a.ptq, a.qat_dir, a.qat_kd_dir, {a.low_ptq, a.low_qat_dir, a.low_qat_kd_dir},
                           a.out, a.threads, a.limit_test);
  LoadedModel teacher = load_model(a.teacher), ptq = load_model(a.ptq);
  LoadedModel qat = load_model(a.qat_dir + "/int8.safetensors"), kd = load_model(a.qat_kd_dir + "/int8.safetensors");
  QUENCH_CHECK(!teacher.int8 && ptq.int8 && qat.int8 && kd.int8,
               "report: need an FP32 teacher and three int8 models");
  TrainConfig cfg;
  cfg.model = teacher.vit->cfg;
  cfg.fashion_root = a.fashion_root;
  cfg.limit_test = a.limit_test;
  cfg.limit_train = 1;  // only the test set is used
  DataSplits data = load_data(cfg);
  const Preprocess& pp = teacher.preprocess;
  const int64_t C = cfg.model.classes;
  Report r;
  r.teacher_fp32_acc = evaluate(*teacher.vit, data.test, pp, C).accuracy();
  r.ptq_int8_acc = evaluate(*ptq.vit, data.test, pp, C).accuracy();
  r.qat_int8_acc = evaluate(*qat.vit, data.test, pp, C).accuracy();
  r.qat_kd_int8_acc = evaluate(*kd.vit, data.test, pp, C).accuracy();
  r.test_images = data.test.size();
  r.fp32_size_bytes = static_cast<int64_t>(std::filesystem::file_size(a.teacher));
  r.int8_size_bytes = static_cast<int64_t>(std::filesystem::file_size(a.qat_kd_dir + "/int8.safetensors"));
  r.infer_threads = a.threads;
  r.fp32_infer_ms = measure_infer_ms(*teacher.vit, r.infer_batch, cfg.model.chans, cfg.model.img, a.threads);
  r.int8_infer_ms = measure_infer_ms(*kd.vit, r.infer_batch, cfg.model.chans, cfg.model.img, a.threads);
  r.fp32_single_ms = measure_infer_ms(*teacher.vit, 1, cfg.model.chans, cfg.model.img, a.threads, 21);
  r.int8_single_ms = measure_infer_ms(*kd.vit, 1, cfg.model.chans, cfg.model.img, a.threads, 21);
  auto meta = [](const std::string& path) { return recipe_of(load_checkpoint(path).metadata, path); };
  Checkpoint tc = load_checkpoint(a.teacher);
  r.recipe = {{"teacher", tc.metadata.count("train") ? nlohmann::json::parse(tc.metadata.at("train"))
                                                      : nlohmann::json(a.teacher)},
              {"ptq", meta(a.ptq)},
              {"qat", meta(a.qat_dir + "/int8.safetensors")},
              {"qat_kd", meta(a.qat_kd_dir + "/int8.safetensors")}};
  r.qat_curve = read_distill_metrics(a.qat_dir + "/metrics.jsonl");
  r.qat_kd_curve = read_distill_metrics(a.qat_kd_dir + "/metrics.jsonl");
  QUENCH_CHECK(a.small_dir.empty() == a.small_kd_dir.empty(),
               "report: give --small and --small-kd together (the small student without and with the teacher)");
  if (!a.small_dir.empty()) {
    LoadedModel sm = load_model(a.small_dir + "/int8.safetensors"),
                skd = load_model(a.small_kd_dir + "/int8.safetensors");
    QUENCH_CHECK(sm.int8 && skd.int8, "report: --small and --small-kd must hold int8.safetensors from quench distill");
    r.has_small = true;
    r.small_int8_acc = evaluate(*sm.vit, data.test, pp, C).accuracy();
    r.small_kd_int8_acc = evaluate(*skd.vit, data.test, pp, C).accuracy();
    r.small_student = skd.vit->cfg;
    r.small_int8_size_bytes =
        static_cast<int64_t>(std::filesystem::file_size(a.small_kd_dir + "/int8.safetensors"));
    r.recipe["small"] = meta(a.small_dir + "/int8.safetensors");
    r.recipe["small_kd"] = meta(a.small_kd_dir + "/int8.safetensors");
    r.small_curve = read_distill_metrics(a.small_dir + "/metrics.jsonl");
    r.small_kd_curve = read_distill_metrics(a.small_kd_dir + "/metrics.jsonl");
  }
  // The optional low-bit rows, each named by the precision its recipe asked for.
  struct LowBit {
    const char *method, *key;
    std::string path;
  };
  const auto in = [](const std::string& dir) { return dir.empty() ? dir : dir + "/int8.safetensors"; };
  for (const LowBit& lb : {LowBit{"PTQ", "low_bit_ptq", a.low_ptq}, LowBit{"QAT", "low_bit_qat", in(a.low_qat_dir)},
                           LowBit{"QAT+KD", "low_bit_qat_kd", in(a.low_qat_kd_dir)}}) {
    if (lb.path.empty()) continue;
    LoadedModel m = load_model(lb.path);
    QUENCH_CHECK(m.int8, "report: ", lb.path, " is not an integer model (quench quantize / distill --weight-bits)");
    QUENCH_CHECK(m.vit->cfg.img == cfg.model.img && m.vit->cfg.chans == cfg.model.chans && m.classes == teacher.classes,
                 "report: ", lb.path, " is not a model of the teacher's images and classes");
    const nlohmann::json recipe = meta(lb.path);
    ReportRow row;
    row.name = std::string(lb.method) + " " + precision_label(recipe);
    row.int8_acc = evaluate(*m.vit, data.test, m.preprocess, C).accuracy();
    row.size_bytes = static_cast<int64_t>(std::filesystem::file_size(lb.path));
    row.infer_ms = measure_infer_ms(*m.vit, r.infer_batch, cfg.model.chans, cfg.model.img, a.threads);
    row.single_ms = measure_infer_ms(*m.vit, 1, cfg.model.chans, cfg.model.img, a.threads, 21);
    if (lb.path != a.low_ptq)
      row.curve = read_distill_metrics((std::filesystem::path(lb.path).parent_path() / "metrics.jsonl").string());
    r.recipe[lb.key] = recipe;
    r.low_bit.push_back(std::move(row));
  }
  write_report(r, a.out);
  std::printf("%s\nwritten: %s/report.json, %s/report.md, %s/curves.png\n", format_report_table(r).c_str(),
              a.out.c_str(), a.out.c_str(), a.out.c_str());
  return 0;
}

}  // namespace

Command add_report_command(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  CLI::App* sub = app.add_subcommand("report", "Compare FP32, PTQ, QAT and QAT+KD models: report.json/.md");
  sub->add_option("--teacher", a->teacher, "FP32 checkpoint")->required()->check(CLI::ExistingFile);
  sub->add_option("--ptq", a->ptq, "int8 checkpoint from quench quantize")->required()->check(CLI::ExistingFile);
  sub->add_option("--qat", a->qat_dir, "output folder of quench distill --no-kd")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--qat-kd", a->qat_kd_dir, "output folder of quench distill")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--small", a->small_dir, "optional: quench distill --no-kd folder of a smaller student")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--small-kd", a->small_kd_dir, "optional: quench distill folder of the same student with KD")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--low-bit-ptq", a->low_ptq, "optional: a low-bit PTQ file, e.g. quantize --weight-bits 4")
      ->check(CLI::ExistingFile);
  sub->add_option("--low-bit-qat", a->low_qat_dir, "optional: its distill --no-kd --weight-bits folder")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--low-bit-qat-kd", a->low_qat_kd_dir, "optional: its distill --weight-bits folder")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--out,-o", a->out, "folder for report.json, report.md, curves.png")->capture_default_str();
  sub->add_option("--fashion-root", a->fashion_root, "Fashion-MNIST folder")->capture_default_str();
  sub->add_option("--limit-test", a->limit_test, "only the first N test images (0: all)");
  sub->add_option("--threads,-j", a->threads, "threads for the inference timing")->capture_default_str();
  sub->add_option("--task", a->task, "image or text (auto: from the teacher checkpoint)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "image", "text"}));
  return {sub, [a] { return run_report(*a); }};
}

}  // namespace quench::cli
