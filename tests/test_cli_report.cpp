// The main job's pieces of the quench tool: the report writer, the PNG plotter, PTQ (quench quantize),
// QAT / QAT+KD (quench distill) and int8 checkpoints read back by load_model (eval / classify).
#include <doctest/doctest.h>
#include <stb_image.h>
#include <stb_image_write.h>
#include <sys/wait.h>
#include <zlib.h>

#include <cstdio>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/ops.hpp"
#include "nn/data/idx.hpp"
#include "tests/cli_test_util.hpp"
#include "tests/gradcheck.hpp"
#include "tests/temp_dir.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/evaluate.hpp"
#include "tools/cli/plot.hpp"
#include "tools/cli/report.hpp"

using namespace quench;
using namespace quench::cli;

namespace {

int count_type(nn::Module& m, const std::string& type) {
  int n = 0;
  for (auto& [name, sub] : m.named_modules()) n += sub->type_name() == type;
  return n;
}

Report sample_report() {
  Report r;
  r.teacher_fp32_acc = 0.9;
  r.ptq_int8_acc = 0.85;
  r.qat_int8_acc = 0.88;
  r.qat_kd_int8_acc = 0.89;
  r.fp32_size_bytes = 4000;
  r.int8_size_bytes = 1000;
  r.fp32_infer_ms = 10;
  r.int8_infer_ms = 4;
  r.fp32_single_ms = 0.5;
  r.int8_single_ms = 0.25;
  r.test_images = 100;
  r.recipe = {{"note", "test"}};
  for (int i = 1; i <= 3; ++i) {
    DistillEpoch e;
    e.epoch = i;
    e.train_loss = 1.0 / i;
    e.int8_test_acc = 0.8 + 0.01 * i;
    r.qat_curve.push_back(e);
    e.train_loss = 1.5 / i;
    e.int8_test_acc = 0.82 + 0.02 * i;
    r.qat_kd_curve.push_back(e);
  }
  return r;
}

// A teacher trained briefly on the pattern images, saved as quench train does.
std::string train_teacher(const testing::TempDir& dir, DataSplits& data) {
  TrainConfig cfg = testing::tiny_config();
  data = {testing::pattern_images(48, 1), testing::pattern_images(16, 2)};
  train(cfg, data, dir.file("teacher"));
  return dir.file("teacher/best.safetensors");
}

}  // namespace

TEST_CASE("report: report.json has every key of the main job, report.md the table and the plot") {
  testing::TempDir dir;
  Report r = sample_report();
  write_report(r, dir.path());
  std::ifstream f(dir.file("report.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  for (const char* k : {"teacher_fp32_acc", "ptq_int8_acc", "qat_int8_acc", "qat_kd_int8_acc", "fp32_size_bytes",
                        "int8_size_bytes", "fp32_infer_ms", "int8_infer_ms", "fp32_single_ms", "int8_single_ms",
                        "recipe"})
    CHECK_MESSAGE(j.contains(k), k);
  CHECK(j["int8_single_ms"].get<double>() == doctest::Approx(0.25));
  CHECK(j["qat_kd_int8_acc"].get<double>() == doctest::Approx(0.89));
  CHECK(j["int8_size_bytes"].get<int64_t>() == 1000);
  CHECK(j["curves"]["qat_kd"].size() == 3);
  CHECK(distill_epoch_from_json(j["curves"]["qat"][1]).train_loss == doctest::Approx(0.5));
  const std::string text = testing::read_bytes(dir.file("report.md"));
  CHECK(text.find("| QAT+KD int8 | 89.00% | 0.00 MiB | 4.0 ms | 0.25 ms |") != std::string::npos);
  CHECK(text.find("| FP32 teacher | 90.00% | 0.00 MiB | 10.0 ms | 0.50 ms |") != std::string::npos);
  CHECK(text.find("curves.png") != std::string::npos);
  CHECK(std::filesystem::exists(dir.file("curves.png")));
  CHECK(!j.contains("small_int8_acc"));
}

TEST_CASE("report: the fake-quant / int8 agreement of QAT+KD's best epoch and the small-student rows") {
  testing::TempDir dir;
  Report r = sample_report();
  for (auto& e : r.qat_kd_curve) {
    e.fq_int8_agreement = 0.99 + 0.001 * e.epoch;
    e.fq_int8_max_logit_diff = 0.01 * e.epoch;
  }
  r.qat_kd_curve[2].int8_test_acc = 0.5;  // epoch 2 is the best now
  r.has_small = true;
  r.small_int8_acc = 0.81;
  r.small_kd_int8_acc = 0.83;
  r.small_int8_size_bytes = 500;
  r.small_student.dim = 96;
  r.small_student.depth = 4;
  r.small_curve = r.qat_curve;
  r.small_kd_curve = r.qat_curve;
  write_report(r, dir.path());
  std::ifstream f(dir.file("report.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  CHECK(j["qat_kd_fq_int8_agreement"].get<double>() == doctest::Approx(0.992));
  CHECK(j["qat_kd_fq_int8_max_logit_diff"].get<double>() == doctest::Approx(0.02));
  CHECK(j["small_int8_acc"].get<double>() == doctest::Approx(0.81));
  CHECK(j["small_kd_int8_acc"].get<double>() == doctest::Approx(0.83));
  CHECK(j["small_student"]["dim"].get<int64_t>() == 96);
  CHECK(j["curves"]["small_kd"].size() == 3);
  const std::string text = testing::read_bytes(dir.file("report.md"));
  CHECK(text.find("| small int8 (dim 96, depth 4), KD | 83.00%") != std::string::npos);
  CHECK(text.find("| small int8 (dim 96, depth 4), no teacher | 81.00%") != std::string::npos);
  CHECK(text.find("agree on 99.20%") != std::string::npos);
  CHECK(text.find("small+KD int8 acc") != std::string::npos);
  CHECK(best_epoch(r.qat_kd_curve)->epoch == 2);
  CHECK(best_epoch({}) == nullptr);
}

TEST_CASE("report: low-bit rows in the table and report.json; curves on the labels' cross-entropy") {
  testing::TempDir dir;
  Report r = sample_report();
  for (auto& e : r.qat_kd_curve) e.train_task_loss = 0.25 * e.epoch;  // KD: the task part of the objective
  r.low_bit.push_back({"PTQ W4A8", 0.7, 600, 3.5, 0.14, {}});
  r.low_bit.push_back({"QAT+KD W4A8 g32", 0.86, 650, 3.25, 0.375, r.qat_kd_curve});
  write_report(r, dir.path());
  std::ifstream f(dir.file("report.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  REQUIRE(j["low_bit"].size() == 2);
  CHECK(j["low_bit"][0]["name"] == "PTQ W4A8");
  CHECK(j["low_bit"][1]["int8_acc"].get<double>() == doctest::Approx(0.86));
  CHECK(j["low_bit"][1]["size_bytes"].get<int64_t>() == 650);
  CHECK(j["low_bit"][1]["curve"].size() == 3);
  CHECK(j["low_bit"][1]["single_ms"].get<double>() == doctest::Approx(0.375));
  CHECK(distill_epoch_from_json(j["curves"]["qat_kd"][1]).train_task_loss == doctest::Approx(0.5));
  CHECK(distill_epoch_from_json(j["curves"]["qat"][1]).train_task_loss == -1.0);  // not logged: absent
  const std::string text = testing::read_bytes(dir.file("report.md"));
  CHECK(text.find("| PTQ W4A8 | 70.00% | 0.00 MiB | 3.5 ms | 0.14 ms |") != std::string::npos);
  CHECK(text.find("| QAT+KD W4A8 g32 | 86.00%") != std::string::npos);
  CHECK(text.find("QAT+KD W4A8 g32 task loss") != std::string::npos);
  // Epoch 2: QAT's cross-entropy (its whole loss, 0.5000) beside QAT+KD's task loss (0.5000, not 0.75).
  CHECK(text.find("| 2 | 0.5000 | 82.00% | 0.5000 | 86.00% | 0.5000 | 86.00% |") != std::string::npos);
}

TEST_CASE("report: a model's precision label from its recipe metadata") {
  CHECK(precision_label(recipe_of({}, "a.safetensors")) == "int8");  // no recipe: written before W4A8
  CHECK(precision_label(recipe_of({{"recipe", R"({"weights":{"bits":8,"group_size":0}})"}}, "b")) == "int8");
  CHECK(precision_label(recipe_of({{"recipe", R"({"weights":{"bits":4,"group_size":0}})"}}, "c")) == "W4A8");
  CHECK(precision_label(recipe_of({{"recipe", R"({"weights":{"bits":3,"group_size":64}})"}}, "d")) == "W3A8 g64");
  CHECK_THROWS_WITH_AS(recipe_of({{"recipe", "{not json"}}, "runs/x/int8.safetensors"),
                       doctest::Contains("runs/x/int8.safetensors: its \"recipe\" metadata is not JSON"), Error);
}

TEST_CASE("evaluate: prediction_agreement counts equal argmax rows and the largest logit difference") {
  // Row 0 agrees (class 1), row 1 disagrees (0 vs 2), row 2 ties resolve to the first maximum in both.
  Tensor a = tensor({1.f, 2.f, 0.f, /**/ 3.f, 1.f, 0.f, /**/ 5.f, 5.f, 1.f}, {3, 3});
  Tensor b = tensor({1.f, 2.5f, 0.f, /**/ 0.f, 1.f, 3.f, /**/ 4.f, 4.f, 1.f}, {3, 3});
  Agreement g = prediction_agreement(a, b);
  CHECK(g.fraction == doctest::Approx(2.0 / 3.0));
  CHECK(g.max_abs_diff == doctest::Approx(3.0));
  g = prediction_agreement(a, a);
  CHECK(g.fraction == 1.0);
  CHECK(g.max_abs_diff == 0.0);
  CHECK_THROWS_AS(prediction_agreement(a, zeros({3, 2})), Error);
}

TEST_CASE("plot: the PNG decodes back at its size with both line colors, axes and text") {
  testing::TempDir dir;
  Image img(400, 300);
  Series a{"QAT", {1, 2, 3}, {1.0, 0.5, 0.25}, kBlue}, b{"QAT+KD", {1, 2, 3}, {0.8, 0.6, 0.2}, kOrange};
  draw_panel(img, 0, 0, 400, 300, "LOSS", {a, b});
  CHECK(img.contains_color(kBlue));
  CHECK(img.contains_color(kOrange));
  write_png(dir.file("p.png"), img);
  int w = 0, h = 0, c = 0;
  unsigned char* px = stbi_load(dir.file("p.png").c_str(), &w, &h, &c, 3);
  REQUIRE(px != nullptr);
  CHECK(w == 400);
  CHECK(h == 300);
  int blue = 0, orange = 0, black = 0;
  for (int i = 0; i < w * h; ++i) {
    const Rgb p{px[3 * i], px[3 * i + 1], px[3 * i + 2]};
    blue += p == kBlue, orange += p == kOrange, black += p == Rgb{0, 0, 0};
  }
  stbi_image_free(px);
  CHECK(blue > 100);  // a 3-pixel line across the plot, not just the legend swatch (200 pixels)
  CHECK(orange > 100);
  CHECK(black > 500);  // axes and labels
  // A series with mismatched x / y is an error, not a crash.
  Series bad{"bad", {1, 2}, {1}, kBlue};
  CHECK_THROWS_AS(draw_panel(img, 0, 0, 400, 300, "X", {bad}), Error);
}

TEST_CASE("quantize: PTQ converts every Linear to int8, saves, and load_model reads it back as int8") {
  testing::TempDir dir;
  DataSplits data;
  const std::string teacher_path = train_teacher(dir, data);
  LoadedModel fp32 = load_model(teacher_path);
  CHECK_FALSE(fp32.int8);
  for (const char* obs : {"histogram", "minmax"}) {
    PtqOptions o;
    o.calib_batches = 2;
    o.batch_size = 8;
    o.observer = obs;
    auto int8 = ptq_quantize(*fp32.vit, data.train, fp32.preprocess, o);
    CHECK(count_type(*int8, "Int8Linear") == 5);
    CHECK(count_type(*fp32.vit, "Linear") == 5);  // the FP32 model is untouched
    save_int8_model(dir.file("int8.safetensors"), *int8, fp32.preprocess, fp32.classes, {{"method", "PTQ"}});
    LoadedModel back = load_model(dir.file("int8.safetensors"));
    CHECK(back.int8);
    CHECK(back.classes == fp32.classes);
    CHECK(back.preprocess.mean == fp32.preprocess.mean);
    EvalResult a = evaluate(*int8, data.test, fp32.preprocess, 4, 16, true);
    EvalResult b = evaluate(*back.vit, data.test, back.preprocess, 4, 16, true);
    CHECK(testing::max_abs_diff(a.logits, b.logits) == 0.0);
    // The int8 file is smaller than the FP32 one.
    CHECK(std::filesystem::file_size(dir.file("int8.safetensors")) < std::filesystem::file_size(teacher_path));
  }
  PtqOptions bad;
  bad.observer = "percentile";
  CHECK_THROWS_AS(ptq_quantize(*fp32.vit, data.train, fp32.preprocess, bad), Error);
}

TEST_CASE("distill: QAT and QAT+KD write per-epoch metrics and the best int8 model") {
  testing::TempDir dir;
  DataSplits data;
  LoadedModel t = load_model(train_teacher(dir, data));
  for (bool kd : {false, true}) {
    DistillOptions o;
    o.kd = kd;
    o.epochs = 2;
    o.batch_size = 8;
    o.lr = 1e-3;
    o.freeze_observers_epoch = 1;
    const std::string out = dir.file(kd ? "kd" : "qat");
    std::vector<std::string> lines;
    TrainHooks hooks;
    hooks.log = [&](const std::string& l) { lines.push_back(l); };
    DistillResult r = distill(o, t.vit, t.preprocess, data, out, hooks);
    REQUIRE(r.epochs.size() == 2);
    CHECK(r.best_epoch >= 1);
    for (const auto& e : r.epochs) CHECK(std::isfinite(e.train_loss));
    // Observers frozen from epoch 1 on: the int8 copy agrees with the fake-quant student.
    CHECK(r.epochs[1].int8_test_acc == doctest::Approx(r.epochs[1].fq_test_acc).epsilon(0.07));
    // ... on the same grid: every test image gets the same class, logits nearly equal (issue 5, item 7).
    const DistillEpoch& e1 = r.epochs[1];
    CHECK(e1.fq_int8_agreement == 1.0);
    CHECK(e1.int8_test_acc == e1.fq_test_acc);
    CHECK(e1.fq_int8_max_logit_diff >= 0);
    CHECK(e1.fq_int8_max_logit_diff < 1e-2);
    std::vector<DistillEpoch> back = read_distill_metrics(out + "/metrics.jsonl");
    REQUIRE(back.size() == 2);
    CHECK(back[1].int8_test_acc == doctest::Approx(r.epochs[1].int8_test_acc));
    CHECK(back[1].fq_int8_agreement == doctest::Approx(e1.fq_int8_agreement));
    CHECK(back[1].fq_int8_max_logit_diff == doctest::Approx(e1.fq_int8_max_logit_diff));
    REQUIRE(lines.size() >= 2);
    CHECK(lines[1].find("agree 100.00%") != std::string::npos);
    LoadedModel m = load_model(r.int8_path);
    CHECK(m.int8);
    CHECK(evaluate(*m.vit, data.test, m.preprocess, 4).accuracy() == doctest::Approx(r.best_int8_acc));
  }
  // A smaller student (width differs: projections are created) runs too.
  DistillOptions small;
  small.copy_teacher = false;
  small.student = t.vit->cfg;
  small.student.dim = 8;
  small.student.hidden = 16;
  small.epochs = 1;
  small.batch_size = 16;
  DistillResult r = distill(small, t.vit, t.preprocess, data, dir.file("small"));
  CHECK(r.epochs.size() == 1);
  CHECK(load_model(r.int8_path).vit->cfg.dim == 8);
}

TEST_CASE("quantize and distill: --weight-bits 4 gives packed int4 layers, mixed precision keeps chosen ones at 8") {
  testing::TempDir dir;
  DataSplits data;
  LoadedModel t = load_model(train_teacher(dir, data));
  PtqOptions p;
  p.calib_batches = 2;
  p.batch_size = 8;
  p.weights.bits = 4;
  p.weights.group_size = 8;
  p.weights.rules = "head=8";
  auto w4 = ptq_quantize(*t.vit, data.train, t.preprocess, p);
  CHECK(count_type(*w4, "Int4Linear") == 4);
  CHECK(count_type(*w4, "Int8Linear") == 1);  // the head, by the rule
  save_int8_model(dir.file("w4.safetensors"), *w4, t.preprocess, t.classes, {{"method", "PTQ"}});
  PtqOptions p8 = p;
  p8.weights = {};
  auto w8 = ptq_quantize(*t.vit, data.train, t.preprocess, p8);
  save_int8_model(dir.file("w8.safetensors"), *w8, t.preprocess, t.classes, {{"method", "PTQ"}});
  CHECK(std::filesystem::file_size(dir.file("w4.safetensors")) < std::filesystem::file_size(dir.file("w8.safetensors")));
  LoadedModel back = load_model(dir.file("w4.safetensors"));
  CHECK(count_type(*back.vit, "Int4Linear") == 4);
  EvalResult a = evaluate(*w4, data.test, t.preprocess, 4, 16, true);
  EvalResult b = evaluate(*back.vit, data.test, back.preprocess, 4, 16, true);
  CHECK(testing::max_abs_diff(a.logits, b.logits) == 0.0);

  DistillOptions o;
  o.epochs = 2;
  o.batch_size = 8;
  o.lr = 1e-3;
  o.freeze_observers_epoch = 1;
  o.weights.bits = 4;
  DistillResult r = distill(o, t.vit, t.preprocess, data, dir.file("w4kd"));
  REQUIRE(r.epochs.size() == 2);
  CHECK(r.epochs[1].fq_int8_agreement == 1.0);  // the W4A8 model computes on the fake-quant grid
  LoadedModel m = load_model(r.int8_path);
  CHECK(count_type(*m.vit, "Int4Linear") == 5);
  CHECK(evaluate(*m.vit, data.test, m.preprocess, 4).accuracy() == doctest::Approx(r.best_int8_acc));
  PtqOptions bad = p;
  bad.weights.bits = 9;
  CHECK_THROWS_WITH_AS(ptq_quantize(*t.vit, data.train, t.preprocess, bad), doctest::Contains("--weight-bits"),
                       Error);
}

#ifdef QUENCH_TOOL_PATH
namespace {
void write_idx_gz(const std::string& path, uint32_t magic, const Tensor& t) {
  std::string bytes;
  auto be32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) bytes += static_cast<char>((v >> s) & 0xFF);
  };
  be32(magic);
  for (int64_t d : t.sizes()) be32(static_cast<uint32_t>(d));
  if (t.dtype() == kUInt8) {
    bytes.append(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), static_cast<size_t>(t.numel()));
  } else {
    for (int64_t i = 0; i < t.numel(); ++i) bytes += static_cast<char>(t.data_ptr<int32_t>()[i]);
  }
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

int run_quench(const std::string& args, std::string& out) {
  const std::string cmd = std::string(QUENCH_TOOL_PATH) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  out.clear();
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

TEST_CASE("cli tool: distill --list-taps, classify and eval --help with an int8 checkpoint") {
  testing::TempDir dir;
  DataSplits data;
  const std::string teacher = train_teacher(dir, data);
  std::string out;
  REQUIRE(run_quench("distill --teacher " + teacher + " --list-taps", out) == 0);
  CHECK(out.find("blocks.0.attn:probs") != std::string::npos);
  CHECK(out.find("teacher taps:") != std::string::npos);
  // Text-only distill flags are refused with an image teacher, not ignored.
  CHECK(run_quench("distill --teacher " + teacher + " --calib-batches 4", out) != 0);
  CHECK(out.find("--calib-batches is for text") != std::string::npos);
  CHECK(run_quench("quantize --help", out) == 0);
  CHECK(out.find("--calib-batches") != std::string::npos);
  CHECK(run_quench("report --help", out) == 0);
  CHECK(out.find("--qat-kd") != std::string::npos);

  LoadedModel fp32 = load_model(teacher);
  PtqOptions o;
  o.calib_batches = 2;
  o.batch_size = 8;
  auto int8 = ptq_quantize(*fp32.vit, data.train, fp32.preprocess, o);
  save_int8_model(dir.file("int8.safetensors"), *int8, fp32.preprocess, fp32.classes, {});
  REQUIRE(stbi_write_png(dir.file("x.png").c_str(), 28, 28, 1, data.test.images.data_ptr<uint8_t>(), 28));
  REQUIRE(run_quench("classify " + dir.file("int8.safetensors") + " " + dir.file("x.png") + " -k 2", out) == 0);
  CHECK(out.find("1. ") != std::string::npos);
  // An int8 model is no teacher.
  CHECK(run_quench("distill --teacher " + dir.file("int8.safetensors"), out) != 0);
  CHECK(out.find("FP32") != std::string::npos);
}

TEST_CASE("cli tool: report on images with W4A8 rows named by their recipes, accuracies as evaluated") {
  testing::TempDir dir;
  // A teacher of Fashion-MNIST's 10 classes on the pattern images (labels 0..3), and those images as
  // a Fashion-MNIST folder for the tool to read.
  TrainConfig cfg = testing::tiny_config();
  cfg.model.classes = 10;
  DataSplits data{testing::pattern_images(48, 1), testing::pattern_images(16, 2)};
  for (nn::LabeledImages* d : {&data.train, &data.test}) d->classes = std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  train(cfg, data, dir.file("teacher"));
  const std::string teacher = dir.file("teacher/best.safetensors");
  std::filesystem::create_directories(dir.file("fashion"));
  write_idx_gz(dir.file("fashion/train-images-idx3-ubyte.gz"), nn::kIdxImagesMagic, data.train.images);
  write_idx_gz(dir.file("fashion/train-labels-idx1-ubyte.gz"), nn::kIdxLabelsMagic, data.train.labels);
  write_idx_gz(dir.file("fashion/t10k-images-idx3-ubyte.gz"), nn::kIdxImagesMagic, data.test.images);
  write_idx_gz(dir.file("fashion/t10k-labels-idx1-ubyte.gz"), nn::kIdxLabelsMagic, data.test.labels);
  LoadedModel t = load_model(teacher);
  PtqOptions p;
  p.calib_batches = 2;
  p.batch_size = 8;
  save_int8_model(dir.file("ptq.safetensors"), *ptq_quantize(*t.vit, data.train, t.preprocess, p), t.preprocess,
                  t.classes, {{"method", "PTQ"}, {"weights", p.weights.to_json()}});
  p.weights.bits = 4;
  save_int8_model(dir.file("ptq4.safetensors"), *ptq_quantize(*t.vit, data.train, t.preprocess, p), t.preprocess,
                  t.classes, {{"method", "PTQ"}, {"weights", p.weights.to_json()}});
  DistillOptions o;
  o.epochs = 1;
  o.batch_size = 8;
  o.lr = 1e-3;
  o.freeze_observers_epoch = 1;
  o.kd = false;
  distill(o, t.vit, t.preprocess, data, dir.file("qat"));
  o.weights.bits = 4;
  o.weights.group_size = 8;
  distill(o, t.vit, t.preprocess, data, dir.file("qat4"));
  o.kd = true;
  const DistillResult kd4 = distill(o, t.vit, t.preprocess, data, dir.file("kd4"));
  o.weights = {};
  distill(o, t.vit, t.preprocess, data, dir.file("kd"));
  std::string out;
  const int rc = run_quench("report --teacher " + teacher + " --ptq " + dir.file("ptq.safetensors") + " --qat " +
                         dir.file("qat") + " --qat-kd " + dir.file("kd") + " --low-bit-ptq " +
                         dir.file("ptq4.safetensors") + " --low-bit-qat " + dir.file("qat4") + " --low-bit-qat-kd " +
                         dir.file("kd4") + " --fashion-root " + dir.file("fashion") + " --threads 1 --out " +
                         dir.file("report"),
                     out);
  CAPTURE(out);
  REQUIRE(rc == 0);
  std::ifstream f(dir.file("report/report.json"));
  nlohmann::json j = nlohmann::json::parse(f);
  REQUIRE(j["low_bit"].size() == 3);
  CHECK(j["low_bit"][0]["name"] == "PTQ W4A8");
  CHECK(j["low_bit"][1]["name"] == "QAT W4A8 g8");
  CHECK(j["low_bit"][2]["name"] == "QAT+KD W4A8 g8");
  LoadedModel w4 = load_model(dir.file("ptq4.safetensors"));
  CHECK(j["low_bit"][0]["int8_acc"].get<double>() ==
        doctest::Approx(evaluate(*w4.vit, data.test, w4.preprocess, 10).accuracy()));
  CHECK(j["low_bit"][2]["int8_acc"].get<double>() == doctest::Approx(kd4.best_int8_acc));
  CHECK(j["low_bit"][2]["size_bytes"].get<int64_t>() ==
        static_cast<int64_t>(std::filesystem::file_size(dir.file("kd4/int8.safetensors"))));
  CHECK(j["low_bit"][1]["curve"].size() == 1);
  CHECK(j["low_bit"][2]["curve"][0]["train_task_loss"].get<double>() > 0);
  CHECK(j["recipe"]["low_bit_qat_kd"]["weights"]["bits"] == 4);
  CHECK(out.find("| QAT+KD W4A8 g8 |") != std::string::npos);
  // A low-bit row must be an integer model.
  CHECK(run_quench("report --teacher " + teacher + " --ptq " + dir.file("ptq.safetensors") + " --qat " +
                       dir.file("qat") + " --qat-kd " + dir.file("kd") + " --low-bit-ptq " + teacher +
                       " --fashion-root " + dir.file("fashion") + " --out " + dir.file("report2"),
                   out) != 0);
  CHECK(out.find("is not an integer model") != std::string::npos);
}
#endif
