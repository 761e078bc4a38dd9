// Pieces of the quench tool: the .npy writer, evaluation's confusion matrix, config JSON, checkpoint
// loading errors, progress formatting, and the built binary's --help and a whole train/eval/classify run.
#include <doctest/doctest.h>
#include <stb_image_write.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "engine/ops.hpp"
#include "nn/io/safetensors.hpp"
#include "tests/cli_test_util.hpp"
#include "tests/temp_dir.hpp"
#include "tools/cli/checkpoint.hpp"
#include "tools/cli/data.hpp"
#include "tools/cli/evaluate.hpp"
#include "tools/cli/npy.hpp"
#include "tools/cli/progress.hpp"

using namespace quench;
using namespace quench::cli;
using quench::testing::TempDir;

namespace {

// Parses a .npy v1.0 float32 file as NumPy would: returns the header dict and fills `data`.
std::string parse_npy(const std::string& bytes, std::vector<float>& data) {
  REQUIRE(bytes.size() >= 10);
  CHECK(bytes.compare(0, 6, "\x93NUMPY") == 0);
  CHECK(bytes[6] == 1);
  CHECK(bytes[7] == 0);
  const size_t hlen =
      static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
  REQUIRE(bytes.size() >= 10 + hlen);
  CHECK((10 + hlen) % 64 == 0);  // data aligned
  const std::string header = bytes.substr(10, hlen);
  CHECK(header.back() == '\n');
  const size_t n = (bytes.size() - 10 - hlen) / 4;
  CHECK((bytes.size() - 10 - hlen) % 4 == 0);
  data.resize(n);
  std::memcpy(data.data(), bytes.data() + 10 + hlen, n * 4);
  return header;
}

}  // namespace

TEST_CASE("cli npy: writes a v1.0 float32 header and the data row-major") {
  TempDir dir;
  Tensor t = arange(12).reshape({3, 4});
  write_npy(dir.file("a.npy"), t.t().contiguous().t());  // a non-contiguous view is written in logical order
  std::vector<float> data;
  const std::string h = parse_npy(testing::read_bytes(dir.file("a.npy")), data);
  CHECK(h.find("'descr': '<f4'") != std::string::npos);
  CHECK(h.find("'fortran_order': False") != std::string::npos);
  CHECK(h.find("'shape': (3, 4)") != std::string::npos);
  CHECK(data == t.to_vector<float>());

  write_npy(dir.file("b.npy"), tensor({1.5f, -2.f}));
  const std::string h1 = parse_npy(testing::read_bytes(dir.file("b.npy")), data);
  CHECK(h1.find("'shape': (2,)") != std::string::npos);
  CHECK(data == std::vector<float>{1.5f, -2.f});

  CHECK_THROWS_WITH_AS(write_npy(dir.file("c.npy"), tensor({1, 2})), doctest::Contains("float32"), Error);
  CHECK_THROWS_WITH_AS(write_npy(dir.file("no/such/dir.npy"), t), doctest::Contains("no/such/dir.npy"),
                       Error);
}

TEST_CASE("cli eval: confusion matrix and per-class accuracy of a known case") {
  EvalResult r;
  r.classes = 3;
  r.confusion.assign(9, 0);
  // rows: predicted 0, 2, 1, 1 (a tie between 1 and 2 goes to the first), 0
  Tensor logits = tensor({5.f, 1.f, 0.f, 0.f, 1.f, 3.f, 0.f, 2.f, 1.f, 0.f, 4.f, 4.f, 9.f, 0.f, 0.f}, {5, 3});
  Tensor labels = tensor({0, 2, 1, 2, 1});
  accumulate_predictions(r, logits, labels);
  CHECK(r.n == 5);
  CHECK(r.correct == 3);
  CHECK(r.accuracy() == doctest::Approx(0.6));
  CHECK(r.confusion == std::vector<int64_t>{1, 0, 0, 1, 1, 0, 0, 1, 1});
  CHECK(r.per_class_accuracy() == std::vector<double>{1.0, 0.5, 0.5});
  const std::string rep = format_report(r, {"a", "b", "c"});
  CHECK(rep.find("accuracy 60.00% (3 / 5)") != std::string::npos);
  CHECK(rep.find("b ") != std::string::npos);
  // F1 = 2 tp / (2 tp + fp + fn): a 2/(2+1+0), b 2/(2+1+1), c 2/(2+0+1); macro over three classes.
  const auto f1 = r.per_class_f1();
  CHECK(f1[0] == doctest::Approx(2.0 / 3.0));
  CHECK(f1[1] == doctest::Approx(0.5));
  CHECK(f1[2] == doctest::Approx(2.0 / 3.0));
  CHECK(r.f1() == doctest::Approx((2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 3.0));
  CHECK(rep.find("F1 0.6111 (macro)") != std::string::npos);
  CHECK_THROWS_WITH_AS(accumulate_predictions(r, logits, tensor({0, 1, 3, 0, 0})),
                       doctest::Contains("label 3"), Error);
}

TEST_CASE("cli eval: binary F1 is the positive class's, as scikit-learn's f1_score") {
  EvalResult r;
  r.classes = 2;
  // tn 5, fp 1, fn 2, tp 4: precision 4/5, recall 4/6, F1 = 2*4 / (2*4 + 1 + 2) = 8/11.
  r.confusion = {5, 1, 2, 4};
  r.n = 12;
  r.correct = 9;
  CHECK(r.f1() == doctest::Approx(8.0 / 11.0));
  CHECK(r.per_class_f1()[0] == doctest::Approx(10.0 / 13.0));
  r.confusion = {3, 0, 0, 0};  // no positives at all: 0, as sklearn with zero_division=0
  CHECK(r.f1() == 0.0);
}

TEST_CASE("cli eval: evaluate() keeps the logits in data-set order and matches the model row by row") {
  nn::LabeledImages data = testing::pattern_images(10, 3);
  TrainConfig cfg = testing::tiny_config();
  Generator gen(1);
  nn::ViT model(cfg.model, gen);
  EvalResult r = evaluate(model, data, cfg.preprocess, 4, /*batch_size=*/4, /*keep_logits=*/true);
  REQUIRE(r.n == 10);
  REQUIRE(r.logits.sizes() == Shape{10, 4});
  int64_t total = 0;
  for (int64_t v : r.confusion) total += v;
  CHECK(total == 10);
  // Image 7 alone through the model gives row 7.
  NoGradGuard ng;
  model.eval();
  Tensor x = (data.images.narrow(0, 7, 1).to(kFloat32) / 255.0 - 0.2860) / 0.3530;
  Tensor row = model(x.unsqueeze(1));
  const auto expect = row.to_vector<float>();
  const auto got = r.logits.narrow(0, 7, 1).to_vector<float>();
  for (int i = 0; i < 4; ++i) CHECK(got[i] == doctest::Approx(expect[i]).epsilon(1e-5));
}

TEST_CASE("cli config: TrainConfig survives JSON; wrong types name the key") {
  TrainConfig c = testing::tiny_config();
  c.hflip = true;
  c.random_erase = 0.25;
  c.patch_dropout = 0.5;
  c.patch_dropout_epochs = 3;
  c.ema = 0.99;
  c.preprocess.mean = {0.5f, 0.4f, 0.3f};
  c.train_dir = "/x";
  c.init = "torch";
  TrainConfig d = train_config_from_json(to_json(c));
  CHECK(to_json(d) == to_json(c));
  CHECK(d.init == "torch");
  CHECK(d.model.dim == 16);
  CHECK(d.preprocess.mean.size() == 3);
  nlohmann::json bad = to_json(c);
  bad["lr"] = "fast";
  CHECK_THROWS_WITH_AS(train_config_from_json(bad), doctest::Contains("\"lr\""), Error);
  nlohmann::json bad_init = to_json(c);
  bad_init["init"] = "xavier";
  CHECK_THROWS_WITH_AS(train_config_from_json(bad_init), doctest::Contains("timm or torch"), Error);
}

TEST_CASE("cli checkpoint: split by prefix; a wrong model is refused naming the keys") {
  TempDir dir;
  TrainConfig cfg = testing::tiny_config();
  Generator gen(0);
  nn::ViT model(cfg.model, gen);
  nn::StateDict optim;
  optim.insert("state.0.step", scalar_tensor(3, kInt32));
  save_checkpoint(dir.file("c.safetensors"), model.state_dict(), optim, {},
                  checkpoint_metadata(cfg, {"a", "b", "c", "d"}, TrainProgress{}));
  Checkpoint ck = load_checkpoint(dir.file("c.safetensors"));
  CHECK(ck.model.size() == model.state_dict().size());
  CHECK(ck.optim.keys() == std::vector<std::string>{"state.0.step"});
  CHECK(ck.classes() == std::vector<std::string>{"a", "b", "c", "d"});
  auto m = model_from_checkpoint(ck);
  CHECK(m->state_dict().at("head.weight").to_vector<float>() ==
        model.state_dict().at("head.weight").to_vector<float>());

  // Weights without metadata (e.g. from PyTorch) mean the reference config: shapes disagree here.
  nn::save_safetensors(dir.file("bare.safetensors"), nn::NamedTensors{{"head.weight", zeros({4, 16})}});
  Checkpoint bare = load_checkpoint(dir.file("bare.safetensors"));
  CHECK(bare.classes().size() == 10);
  CHECK_THROWS_WITH_AS(model_from_checkpoint(bare), doctest::Contains("head.weight"), Error);
  CHECK_THROWS_WITH_AS(bare.train_config(), doctest::Contains("\"train\""), Error);
}

TEST_CASE("cli data: seeded hold-out split and first-n subsets") {
  nn::LabeledImages d = testing::pattern_images(20, 4);
  for (int64_t i = 0; i < 20; ++i) d.images.data_ptr<uint8_t>()[i * 784] = static_cast<uint8_t>(i);  // row id
  auto ids = [](const nn::LabeledImages& x) {
    std::vector<int> v;
    for (int64_t i = 0; i < x.size(); ++i) v.push_back(x.images.data_ptr<uint8_t>()[i * 784]);
    return v;
  };
  DataSplits a = split_holdout(d, 0.25, 9), b = split_holdout(d, 0.25, 9), c = split_holdout(d, 0.25, 10);
  CHECK(a.train.size() == 15);
  CHECK(a.test.size() == 5);
  CHECK(ids(a.test) == ids(b.test));
  CHECK(ids(a.test) != ids(c.test));
  const std::vector<int> tr = ids(a.train), te = ids(a.test);
  std::vector<int> all = tr;
  all.insert(all.end(), te.begin(), te.end());
  std::sort(all.begin(), all.end());
  for (int i = 0; i < 20; ++i) CHECK(all[i] == i);  // disjoint and complete
  CHECK(std::is_sorted(tr.begin(), tr.end()));
  for (int64_t i = 0; i < a.test.size(); ++i)  // labels travel with their rows
    CHECK(a.test.labels.data_ptr<int32_t>()[i] == te[i] % 4);
  CHECK(ids(take_first(d, 3)) == std::vector<int>{0, 1, 2});
  CHECK(take_first(d, 0).size() == 20);
  CHECK_THROWS_WITH_AS(split_holdout(d, 1.5, 0), doctest::Contains("fraction"), Error);
}

TEST_CASE("cli progress: the bar line and durations") {
  ProgressState s;
  s.epoch = 2;
  s.epochs = 10;
  s.step = 5;
  s.steps = 10;
  s.loss = 0.61234;
  s.accuracy = 0.78125;
  s.images_per_s = 1534.4;
  s.eta_s = 252;
  CHECK(format_progress(s, 10) == "epoch 2/10 [#####.....] 5/10 loss 0.6123 acc 78.12% 1534 img/s ETA 4m12s");
  CHECK(format_duration(59.4) == "59s");
  CHECK(format_duration(3725) == "1h02m05s");
}

#ifdef QUENCH_TOOL_PATH
namespace {

// Runs the built `quench` with `args`; returns the exit status, output (stdout + stderr) in `out`.
int run_tool(const std::string& args, std::string& out) {
  REQUIRE_MESSAGE(std::filesystem::exists(QUENCH_TOOL_PATH),
                  "build the tool first: ninja -C build tools/quench");
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

TEST_CASE("cli tool: --help on the tool and every subcommand") {
  std::string out;
  CHECK(run_tool("--help", out) == 0);
  for (const char* s : {"train", "eval", "classify"}) CHECK(out.find(s) != std::string::npos);
  CHECK(run_tool("train --help", out) == 0);
  for (const char* s : {"--epochs", "--lr", "--resume", "--hflip", "--crop-padding", "--random-erase",
                        "--patch-dropout", "--patch-dropout-epochs", "--label-smoothing", "--clip-grad", "--ema", "--data-dir", "--out", "--threads", "--dim"})
    CHECK_MESSAGE(out.find(s) != std::string::npos, s);
  CHECK(run_tool("eval --help", out) == 0);
  CHECK(out.find("--logits") != std::string::npos);
  CHECK(run_tool("classify --help", out) == 0);
  CHECK(out.find("--top-k") != std::string::npos);
  CHECK(run_tool("frobnicate", out) != 0);
}

TEST_CASE("cli tool: train on an image folder, then eval with --logits and classify") {
  TempDir dir;
  nn::LabeledImages d = testing::pattern_images(48, 5);
  for (int64_t i = 0; i < d.size(); ++i) {
    const std::string cls = d.classes[d.labels.data_ptr<int32_t>()[i]];
    const std::string sub = (i < 36 ? "train/" : "test/") + cls;
    std::filesystem::create_directories(dir.file(sub));
    REQUIRE(stbi_write_png(dir.file(sub + "/" + std::to_string(i) + ".png").c_str(), 28, 28, 1,
                           d.images.data_ptr<uint8_t>() + i * 784, 28));
  }
  std::string out;
  const std::string run = dir.file("run");
  REQUIRE(run_tool("train --data-dir " + dir.path() + " --patch 4 --dim 16 --depth 1 --heads 2 --hidden 32 " +
                       "--classes 4 --epochs 2 -b 12 --lr 3e-3 -q --out " + run,
                   out) == 0);
  CHECK(std::filesystem::exists(run + "/last.safetensors"));
  CHECK(std::filesystem::exists(run + "/metrics.jsonl"));
  // --resume refuses configuration flags (the checkpoint's configuration is used).
  CHECK(run_tool("train --resume " + run + "/last.safetensors --lr 1", out) != 0);
  CHECK(out.find("drop --lr") != std::string::npos);

  REQUIRE(run_tool("eval " + run + "/best.safetensors --data-dir " + dir.file("test") + " --logits " +
                       dir.file("l.npy"),
                   out) == 0);
  CHECK(out.find("confusion matrix") != std::string::npos);
  CHECK(out.find("checker") != std::string::npos);
  std::vector<float> logits;
  const std::string h = parse_npy(testing::read_bytes(dir.file("l.npy")), logits);
  CHECK(h.find("'shape': (12, 4)") != std::string::npos);

  const std::string img = dir.file("test/vertical/37.png");  // row 37: class 1
  REQUIRE(run_tool("classify " + run + "/best.safetensors " + img + " -k 2", out) == 0);
  CHECK(out.find("1. ") != std::string::npos);
  CHECK(out.find("2. ") != std::string::npos);
  CHECK(out.find("3. ") == std::string::npos);
}
#endif
