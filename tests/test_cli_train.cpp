// The training loop of `quench train`: exact resume, NaN stop, checkpoint contents, metrics log.
#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "nn/io/safetensors.hpp"
#include "tests/cli_test_util.hpp"
#include "tests/temp_dir.hpp"
#include "tools/cli/trainer.hpp"

using namespace quench;
using namespace quench::cli;
using quench::testing::TempDir;

namespace {

DataSplits tiny_data() { return {testing::pattern_images(32, 1), testing::pattern_images(16, 2)}; }

// Every tensor of two safetensors files, bit for bit (names and metadata too).
void check_same_file_tensors(const std::string& a, const std::string& b) {
  nn::SafeTensorsFile fa = nn::load_safetensors(a), fb = nn::load_safetensors(b);
  REQUIRE(fa.names == fb.names);
  for (const auto& n : fa.names) {
    CAPTURE(n);
    const Tensor &ta = fa.at(n), &tb = fb.at(n);
    REQUIRE(ta.sizes() == tb.sizes());
    REQUIRE(ta.dtype() == tb.dtype());
    CHECK(std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()) == 0);
  }
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// Every optional piece of state on: augmentation, smoothing, clipping, EMA, warmup.
TrainConfig full_config() {
  TrainConfig c = testing::tiny_config();
  c.crop_padding = 2;
  c.hflip = true;
  c.random_erase = 0.5;
  c.patch_dropout = 0.5;
  c.patch_dropout_epochs = 1;
  c.label_smoothing = 0.1;
  c.clip_grad = 1.0;
  c.ema = 0.9;
  c.warmup_epochs = 0.5;
  return c;
}

}  // namespace

TEST_CASE("cli train: learns the stripes task and writes checkpoints and a metrics line per epoch") {
  TempDir dir;
  TrainConfig cfg = testing::tiny_config();
  cfg.epochs = 3;
  cfg.lr = 1e-2;
  cfg.warmup_epochs = 0.5;
  TrainResult r = train(cfg, tiny_data(), dir.path());
  REQUIRE(r.status == TrainStatus::finished);
  REQUIRE(r.epochs.size() == 3);
  CHECK(r.epochs.back().test_acc > 0.9);  // chance is 0.25
  CHECK(r.progress.epoch == 3);
  CHECK(r.progress.global_step == 12);

  auto lines = read_lines(dir.file("metrics.jsonl"));
  REQUIRE(lines.size() == 3);
  auto j = nlohmann::json::parse(lines[2]);
  CHECK(j.at("epoch") == 3);
  CHECK(j.at("global_step") == 12);
  CHECK(j.at("test_acc").get<double>() == doctest::Approx(r.epochs[2].test_acc));
  for (const char* k : {"train_loss", "train_acc", "test_loss", "lr", "seconds", "images_per_s"})
    CHECK(j.contains(k));

  Checkpoint last = load_checkpoint(dir.file("last.safetensors"));
  CHECK(last.metadata.at("format") == kCheckpointFormat);
  CHECK(last.model.contains("blocks.0.attn.qkv.weight"));
  CHECK(last.model.contains("head.weight"));
  CHECK(last.optim.contains("state.0.exp_avg"));
  CHECK(last.ema.empty());
  CHECK(last.vit_config().dim == 16);
  CHECK(last.classes() == tiny_data().train.classes);
  CHECK(last.train_config().lr == cfg.lr);
  CHECK(last.progress().epoch == 3);

  Checkpoint best = load_checkpoint(dir.file("best.safetensors"));
  CHECK(best.optim.empty());
  CHECK(best.progress().best_acc == doctest::Approx(best.progress().best_acc));
  auto model = model_from_checkpoint(best);
  CHECK(model->cfg.classes == 4);
}

TEST_CASE("cli train: resume after an interruption gives bit-identical weights to an uninterrupted run") {
  const TrainConfig cfg = full_config();
  const DataSplits data = tiny_data();
  TempDir ref;
  TrainResult full = train(cfg, data, ref.path());
  REQUIRE(full.status == TrainStatus::finished);

  // Mid-epoch (after step 3 of 4), at the very end of epoch 1 before its evaluation (step 4), and in
  // epoch 2 (step 6).
  for (int64_t stop_at : {3, 4, 6}) {
    CAPTURE(stop_at);
    TempDir dir;
    int64_t steps = 0;
    TrainHooks h;
    h.stop_requested = [&] { return ++steps == stop_at; };
    TrainResult part = train(cfg, data, dir.path(), h);
    REQUIRE(part.status == TrainStatus::interrupted);
    CHECK(part.progress.global_step == stop_at);
    CHECK(part.message.find("--resume") != std::string::npos);

    Checkpoint ck = load_checkpoint(dir.file("last.safetensors"));
    CHECK(ck.progress().global_step == stop_at);
    CHECK(nlohmann::json(to_json(ck.train_config())) == to_json(cfg));
    TrainResult rest = train(ck.train_config(), data, dir.path(), {}, &ck);
    REQUIRE(rest.status == TrainStatus::finished);
    CHECK(rest.progress.global_step == full.progress.global_step);

    check_same_file_tensors(ref.file("last.safetensors"), dir.file("last.safetensors"));
    check_same_file_tensors(ref.file("best.safetensors"), dir.file("best.safetensors"));
    // The resumed epochs report what the uninterrupted run reported.
    REQUIRE(!rest.epochs.empty());
    const EpochMetrics &a = full.epochs.back(), &b = rest.epochs.back();
    CHECK(a.train_loss == b.train_loss);
    CHECK(a.train_acc == b.train_acc);
    CHECK(a.test_loss == b.test_loss);
    CHECK(a.test_acc == b.test_acc);
    CHECK(read_lines(dir.file("metrics.jsonl")).size() == 2);
  }
}

TEST_CASE("cli train: a checkpoint of a different run layout is refused on resume") {
  TempDir dir;
  TrainConfig cfg = testing::tiny_config();
  int64_t steps = 0;
  TrainHooks h;
  h.stop_requested = [&] { return ++steps == 3; };
  REQUIRE(train(cfg, tiny_data(), dir.path(), h).status == TrainStatus::interrupted);
  Checkpoint ck = load_checkpoint(dir.file("last.safetensors"));
  cfg.batch_size = 16;  // 2 batches per epoch: step 3 cannot be batch 3 of epoch 0
  CHECK_THROWS_WITH_AS(train(cfg, tiny_data(), dir.path(), {}, &ck), doctest::Contains("does not fit"),
                       Error);
}

TEST_CASE(
    "cli train: a NaN loss stops with epoch and step named and leaves the last good checkpoint untouched") {
  TempDir dir;
  TrainConfig cfg = full_config();
  cfg.epochs = 3;
  std::string saved_before;
  TrainHooks h;
  h.before_step = [&](int64_t step, nn::Batch& b) {
    if (step == 4) saved_before = testing::read_bytes(dir.file("last.safetensors"));  // after epoch 1
    if (step == 5) b.images.fill_(std::numeric_limits<float>::quiet_NaN());           // epoch 2, step 2
  };
  std::vector<std::string> logged;
  h.log = [&](const std::string& s) { logged.push_back(s); };
  TrainResult r = train(cfg, tiny_data(), dir.path(), h);
  REQUIRE(r.status == TrainStatus::non_finite);
  CHECK(r.message.find("non-finite loss") != std::string::npos);
  CHECK(r.message.find("epoch 2, step 2/4") != std::string::npos);
  CHECK(r.message.find("last.safetensors is the last good checkpoint") != std::string::npos);
  REQUIRE(!logged.empty());
  CHECK(logged.back() == r.message);
  REQUIRE(!saved_before.empty());
  CHECK(testing::read_bytes(dir.file("last.safetensors")) == saved_before);
  Checkpoint ck = load_checkpoint(dir.file("last.safetensors"));
  CHECK(ck.progress().global_step == 4);
  for (const auto& [name, t] : ck.model)
    for (float v : t.to_vector<float>()) REQUIRE(std::isfinite(v));
  CHECK(read_lines(dir.file("metrics.jsonl")).size() == 1);
}

TEST_CASE("cli train: a NaN in the very first step names it and writes no checkpoint") {
  TempDir dir;
  TrainHooks h;
  h.before_step = [](int64_t, nn::Batch& b) { b.images.fill_(std::numeric_limits<float>::infinity()); };
  TrainResult r = train(testing::tiny_config(), tiny_data(), dir.path(), h);
  REQUIRE(r.status == TrainStatus::non_finite);
  CHECK(r.message.find("epoch 1, step 1/4") != std::string::npos);
  CHECK(r.message.find("no checkpoint was written yet") != std::string::npos);
  CHECK(!std::filesystem::exists(dir.file("last.safetensors")));
}
