// dist/ under several processes: tools/test.sh runs this program alone (a world of one) and with
// `mpirun -np 2` and `-np 3`. Every rank runs every case; each rank also computes the
// single-process reference itself, so a case checks its own rank's result without another
// collective (a rank that failed a check must not leave the others waiting).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dist/data_parallel.hpp"
#include "dist/process_group.hpp"
#include "engine/ops.hpp"
#include "nn/data/sampler.hpp"
#include "nn/layers/activation.hpp"
#include "nn/layers/linear.hpp"
#include "nn/optim/adamw.hpp"
#include "tests/cli_test_util.hpp"
#include "tests/temp_dir.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/text_train.hpp"
#include "tools/cli/trainer.hpp"

using namespace quench;

namespace {

dist::ProcessGroup& pg() { return dist::ProcessGroup::world(); }

// A two-layer classifier: Linear(8, 16), GELU, Linear(16, 3).
struct Mlp {
  std::shared_ptr<nn::Linear> fc1, fc2;
  explicit Mlp(uint64_t seed) {
    Generator gen(seed);
    fc1 = std::make_shared<nn::Linear>(8, 16, true, gen);
    fc2 = std::make_shared<nn::Linear>(16, 3, true, gen);
  }
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> p = fc1->parameters(), q = fc2->parameters();
    p.insert(p.end(), q.begin(), q.end());
    return p;
  }
  Tensor operator()(const Tensor& x) const { return (*fc2)(gelu((*fc1)(x))); }
};

std::vector<float> flat(const std::vector<Tensor>& ts) {
  std::vector<float> v;
  for (const Tensor& t : ts) {
    auto x = t.contiguous().to_vector<float>();
    v.insert(v.end(), x.begin(), x.end());
  }
  return v;
}

// Trains `steps` AdamW steps on global batches of `global` rows. With dp, this rank takes its shard
// (rows rank, rank + R, ...) of each batch and the gradients are averaged; without, all rows.
std::vector<float> train(Mlp& m, const Tensor& X, const Tensor& Y, int64_t global, int steps, dist::DataParallel* dp) {
  optim::AdamW opt(m.parameters(), optim::AdamWOptions(1e-2));
  const int64_t R = dp ? pg().size() : 1, r = dp ? pg().rank() : 0;
  for (int s = 0; s < steps; ++s) {
    std::vector<int32_t> rows;
    for (int64_t i = r; i < global; i += R) rows.push_back(static_cast<int32_t>(s * global + i));
    Tensor idx = tensor(rows);
    Tensor loss = cross_entropy(m(index_select(X, 0, idx)), index_select(Y, 0, idx));
    opt.zero_grad();
    loss.backward();
    if (dp) dp->synchronize_gradients();
    opt.step();
  }
  return flat(m.parameters());
}

}  // namespace

TEST_CASE("dist: every rank knows its place, and sums reach every rank") {
  const int R = pg().size(), r = pg().rank();
  REQUIRE(R >= 1);
  REQUIRE(r >= 0);
  REQUIRE(r < R);
  std::vector<double> v{static_cast<double>(r), 1.0};
  dist::all_reduce_sum(pg(), v);
  CHECK(v[0] == R * (R - 1) / 2.0);
  CHECK(v[1] == R);
  std::vector<int64_t> c{int64_t(r) << 40};
  pg().all_reduce_sum(c.data(), 1);
  CHECK(c[0] == (int64_t(R) * (R - 1) / 2) << 40);
}

TEST_CASE("dist: broadcast_from_main gives every rank rank 0's weights") {
  Mlp m(100 + pg().rank());  // a different init on every rank
  dist::DataParallel dp(m.parameters(), pg());
  dp.broadcast_from_main(m.parameters());
  CHECK(flat(m.parameters()) == flat(Mlp(100).parameters()));
}

TEST_CASE("dist: buckets hold every parameter once, in reverse order, within the cap") {
  Mlp m(1);
  const auto params = m.parameters();  // fc1 128 + 16, fc2 48 + 3 floats
  dist::DataParallelOptions o;
  o.bucket_cap_mb = o.first_bucket_cap_mb = 100.0 * 4 / (1024 * 1024);  // 100 floats: fc2 and fc1.bias (67) in one, fc1.weight (128) alone
  dist::DataParallel dp(params, pg(), o);
  std::vector<int64_t> order;
  for (const auto& b : dp.buckets()) order.insert(order.end(), b.begin(), b.end());
  CHECK(order == std::vector<int64_t>{3, 2, 1, 0});
  REQUIRE(dp.buckets().size() == 2);
  CHECK(dp.buckets()[0] == std::vector<int64_t>{3, 2, 1});
  CHECK(dp.buckets()[1] == std::vector<int64_t>{0});
  CHECK(dist::DataParallel(params, pg()).buckets().size() == 1);  // 1 MB holds them all
  // The first bucket (the last layer's gradients, ready first) has a cap of its own: 50 floats hold
  // fc2.bias (3) but not fc2.weight (48) too; the rest fit the second cap.
  o.first_bucket_cap_mb = 50.0 * 4 / (1024 * 1024);
  o.bucket_cap_mb = 1000.0 * 4 / (1024 * 1024);
  dist::DataParallel small_first(params, pg(), o);
  REQUIRE(small_first.buckets().size() == 2);
  CHECK(small_first.buckets()[0] == std::vector<int64_t>{3});
  CHECK(small_first.buckets()[1] == std::vector<int64_t>{2, 1, 0});
  CHECK_THROWS_AS(dist::DataParallel(params, pg(), dist::DataParallelOptions{0.0}), Error);
}

TEST_CASE("dist: R ranks with batch B take the steps of one process with batch R*B") {
  const int64_t R = pg().size(), global = 6 * R;
  const int steps = 5;
  Generator gen(7);
  Tensor X = randn({steps * global, 8}, gen), Y = randint(0, 3, {steps * global}, gen);
  Mlp single(3);
  const std::vector<float> want = train(single, X, Y, global, steps, nullptr);
  for (double cap_mb : {25.0, 100.0 * 4 / (1024 * 1024)}) {  // one bucket, two buckets
    CAPTURE(cap_mb);
    Mlp m(3);
    dist::DataParallelOptions o;
    o.bucket_cap_mb = o.first_bucket_cap_mb = cap_mb;
    dist::DataParallel dp(m.parameters(), pg(), o);
    // Several processes: buckets are all-reduced during backward (Open MPI grants threads).
    CHECK(dp.overlapping() == (R > 1));
    dp.broadcast_from_main(m.parameters());
    const std::vector<float> got = train(m, X, Y, global, steps, &dp);
    CHECK(dp.stats().steps == (R > 1 ? steps : 0));
    // All-reduced during backward or after it: the same sums, bit for bit.
    Mlp after(3);
    o.overlap = false;
    dist::DataParallel dp_after(after.parameters(), pg(), o);
    CHECK_FALSE(dp_after.overlapping());
    CHECK(train(after, X, Y, global, steps, &dp_after) == got);
    o.overlap = true;
    REQUIRE(got.size() == want.size());
    // The mean over R*B rows against the mean of R means of B rows: float summation order only.
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::abs(got[i] - want[i])));
    CHECK(worst < 1e-5);
    if (R == 1) CHECK(got == want);  // one process: the same arithmetic, bit for bit
    // Same world size twice: identical bits.
    Mlp again(3);
    dist::DataParallel dp2(again.parameters(), pg(), o);
    CHECK(train(again, X, Y, global, steps, &dp2) == got);
  }
}

TEST_CASE("dist: a second backward before synchronize_gradients is an error, and the next step is whole") {
  if (pg().size() == 1) return;  // one process: nothing is all-reduced, nothing can go stale
  Mlp m(5);
  dist::DataParallel dp(m.parameters(), pg());
  REQUIRE(dp.overlapping());
  Generator gen(9);
  Tensor x = randn({4, 8}, gen);
  Tensor loss = m(x).sum();
  loss.backward(Tensor(), true);
  CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("received a second gradient before synchronize_gradients"),
                       Error);
}

// Stops the job by design, so it is skipped in the normal runs: tools/test.sh runs it alone under
// `mpirun -np 2` and checks that the job ends, non-zero, within seconds, with rank 0's message.
TEST_CASE("dist: a rank that never joins a collective stops the job after the timeout" * doctest::skip()) {
  if (pg().size() == 1) return;
  pg().set_timeout(1.0);
  if (pg().rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(120));  // hangs
  std::vector<double> v{1.0};
  dist::all_reduce_sum(pg(), v);  // rank 0 gives up after 1 s and stops every rank
  FAIL("the all-reduce returned although a rank never joined it");
}

TEST_CASE("dist: the sampler's shards are disjoint and cover every row each epoch") {
  const int R = pg().size();
  for (int64_t n : {10, 11, 12}) {
    std::multiset<int32_t> all;
    for (int r = 0; r < R; ++r) {
      nn::SamplerOptions o;
      o.num_replicas = R;
      o.rank = r;
      o.seed = 5;
      const auto rows = nn::epoch_indices(n, 3, o);
      CHECK(static_cast<int64_t>(rows.size()) == nn::samples_per_replica(n, o));
      all.insert(rows.begin(), rows.end());
    }
    std::set<int32_t> distinct(all.begin(), all.end());
    CHECK(static_cast<int64_t>(distinct.size()) == n);  // every row
    CHECK(static_cast<int64_t>(all.size()) - n < R);    // padding: fewer than R repeats
  }
}

TEST_CASE("dist: quench train on R processes gives one process's epochs at the same global batch") {
  cli::TrainConfig cfg = testing::tiny_config();
  cfg.batch_size = 12;  // a multiple of 1, 2 and 3 processes
  cfg.warmup_epochs = 0.5;
  cli::DataSplits data{testing::pattern_images(96, 1), testing::pattern_images(40, 2)};
  testing::TempDir alone_dir, shared_dir;  // rank 0 alone writes into shared_dir
  cli::TrainHooks alone, shared;
  alone.process_group = &dist::ProcessGroup::self();
  shared.process_group = &pg();
  const cli::TrainResult want = cli::train(cfg, data, alone_dir.path(), alone);
  const cli::TrainResult got = cli::train(cfg, data, shared_dir.path(), shared);
  REQUIRE(got.epochs.size() == want.epochs.size());
  for (size_t e = 0; e < got.epochs.size(); ++e) {
    CAPTURE(e);
    CHECK(got.epochs[e].global_step == want.epochs[e].global_step);
    CHECK(got.epochs[e].train_acc == want.epochs[e].train_acc);
    CHECK(got.epochs[e].test_acc == want.epochs[e].test_acc);
    CHECK(got.epochs[e].train_loss == doctest::Approx(want.epochs[e].train_loss).epsilon(1e-5));
    CHECK(got.epochs[e].test_loss == doctest::Approx(want.epochs[e].test_loss).epsilon(1e-5));
  }
  CHECK(std::filesystem::exists(shared_dir.path() + "/last.safetensors") == pg().is_main());
  // The global batch must split evenly.
  cfg.batch_size = 12 * pg().size() + (pg().size() > 1 ? 1 : 0);
  if (pg().size() > 1) CHECK_THROWS_WITH_AS(cli::train(cfg, data, shared_dir.path(), shared),
                                            doctest::Contains("multiple of the"), Error);
}

TEST_CASE("dist: quench train and distill --task text on R processes: one process's epochs, one model") {
  testing::TempDir files, alone_dir, shared_dir;  // rank 0 alone writes into shared_dir
  {
    // Two classes told apart by their words; 100 training rows, so the last batch of 12 has 4 rows
    // and falls unevenly to 3 processes.
    Generator g(1);
    std::ofstream train(files.file("train.csv")), test(files.file("test.csv"));
    const char* words[2][4] = {{"free", "cash", "prize", "offer"}, {"meeting", "report", "lunch", "team"}};
    for (std::ofstream* out : {&train, &test}) {
      *out << "text,label\n";
      for (int i = 0; i < (out == &train ? 100 : 30); ++i) {
        std::string t;
        for (int w = 0; w < 4 + static_cast<int>(g.next_u64() % 8); ++w)  // rows of unequal length
          t += std::string(w ? " " : "") + (g.next_u64() % 2 ? words[i % 2][g.next_u64() % 4] : "the");
        *out << t << "," << (i % 2 ? "ham" : "spam") << "\n";
      }
    }
  }
  cli::TextTrainConfig cfg;
  cfg.data.data = files.file("train.csv");
  cfg.data.test_data = files.file("test.csv");
  cfg.vocab_size = 60;
  cfg.max_length = 16;
  cfg.layers = 1;
  cfg.hidden = 16;
  cfg.heads = 2;
  cfg.intermediate = 32;
  cfg.dropout = 0;  // each process draws dropout masks of its own: equality needs none
  cfg.epochs = 2;
  cfg.batch_size = 12;  // a multiple of 1, 2 and 3 processes
  cfg.lr = 3e-3;
  const cli::TextSplits data = cli::load_text_data(cfg.data);
  cli::TextHooks alone, shared;
  alone.process_group = &dist::ProcessGroup::self();
  shared.process_group = &pg();
  const cli::TextTrainResult want = cli::train_text(cfg, data, alone_dir.path(), alone);
  const cli::TextTrainResult got = cli::train_text(cfg, data, shared_dir.path(), shared);
  REQUIRE(got.epochs.size() == want.epochs.size());
  for (size_t e = 0; e < got.epochs.size(); ++e) {
    CAPTURE(e);
    CHECK(got.epochs[e].train_acc == want.epochs[e].train_acc);
    CHECK(got.epochs[e].test_acc == want.epochs[e].test_acc);
    CHECK(got.epochs[e].train_loss == doctest::Approx(want.epochs[e].train_loss).epsilon(1e-5));
    CHECK(got.epochs[e].test_loss == doctest::Approx(want.epochs[e].test_loss).epsilon(1e-5));
  }
  CHECK(std::filesystem::exists(shared_dir.path() + "/best.safetensors") == pg().is_main());

  // QAT + the BERT recipe on R processes: one model everywhere (the observers follow rank 0's), so
  // every process evaluates rank 0's figures to the last bit.
  const cli::TextModel teacher = cli::load_text_model(alone_dir.path() + "/best.safetensors");
  cli::TextCompressOptions o;
  o.method = "qat+kd";
  o.epochs = 2;
  o.batch_size = 12;
  o.lr = 1e-3;
  testing::TempDir kd_dir;
  const cli::TextCompressResult r = cli::compress_text(o, teacher, data, kd_dir.path(), shared);
  REQUIRE(r.epochs.size() == 2);
  for (const auto& e : r.epochs) {
    std::vector<double> mine{e["train_loss"].get<double>(), e["fq_test_acc"].get<double>(),
                             e["int8_test_acc"].get<double>(), e["fq_int8_max_logit_diff"].get<double>()};
    std::vector<double> main_values = mine;
    pg().broadcast(main_values.data(), static_cast<int64_t>(main_values.size() * sizeof(double)), 0);
    CHECK(mine == main_values);
  }
  CHECK(std::filesystem::exists(kd_dir.path() + "/int8.safetensors") == pg().is_main());

  cfg.batch_size = 12 * pg().size() + (pg().size() > 1 ? 1 : 0);
  if (pg().size() > 1) CHECK_THROWS_WITH_AS(cli::train_text(cfg, data, shared_dir.path(), shared),
                                            doctest::Contains("multiple of the"), Error);
}

TEST_CASE("dist: quench distill keeps one model on every process") {
  cli::TrainConfig cfg = testing::tiny_config();
  cli::DataSplits data{testing::pattern_images(72, 3), testing::pattern_images(24, 4)};
  Generator gen(5);
  auto teacher = std::make_shared<nn::ViT>(cfg.model, gen);
  cli::DistillOptions o;
  o.epochs = 2;
  o.batch_size = 12;
  o.lr = 1e-3;
  testing::TempDir dir;
  cli::TrainHooks hooks;
  hooks.process_group = &pg();
  const cli::DistillResult r = cli::distill(o, teacher, cfg.preprocess, data, dir.path(), hooks);
  REQUIRE(r.epochs.size() == 2);
  // Each process evaluated its own model: rank 0's figures must be everyone's, to the last bit.
  for (const cli::DistillEpoch& e : r.epochs) {
    std::vector<double> mine{e.train_loss, e.fq_test_acc, e.int8_test_acc, e.int8_test_loss, e.fq_int8_max_logit_diff};
    std::vector<double> main_values = mine;
    pg().broadcast(main_values.data(), static_cast<int64_t>(main_values.size() * sizeof(double)), 0);
    CHECK(mine == main_values);
    CHECK(e.fq_int8_agreement == 1.0);
  }
  CHECK(std::filesystem::exists(dir.path() + "/int8.safetensors") == pg().is_main());
}

int main(int argc, char** argv) {
  dist::ProcessGroup& world = pg();
  doctest::Context ctx(argc, argv);
  const int rc = ctx.run();
  // Every rank's verdict: the job fails when any rank did.
  std::vector<double> failed{rc != 0 ? 1.0 : 0.0};
  dist::all_reduce_sum(world, failed);
  if (world.is_main())
    std::printf("dist: %d process%s, %d failed\n", world.size(), world.size() == 1 ? "" : "es",
                static_cast<int>(failed[0]));
  return failed[0] > 0 ? 1 : 0;
}
