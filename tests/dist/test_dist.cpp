// dist/ under several processes: tools/test.sh runs this program alone (a world of one) and with
// `mpirun -np 2` and `-np 3`. Every rank runs every case; each rank also computes the
// single-process reference itself, so a case checks its own rank's result without another
// collective (a rank that failed a check must not leave the others waiting).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
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
  o.bucket_cap_mb = 100.0 * 4 / (1024 * 1024);  // 100 floats: fc2 and fc1.bias (67) in one, fc1.weight (128) alone
  dist::DataParallel dp(params, pg(), o);
  std::vector<int64_t> order;
  for (const auto& b : dp.buckets()) order.insert(order.end(), b.begin(), b.end());
  CHECK(order == std::vector<int64_t>{3, 2, 1, 0});
  REQUIRE(dp.buckets().size() == 2);
  CHECK(dp.buckets()[0] == std::vector<int64_t>{3, 2, 1});
  CHECK(dp.buckets()[1] == std::vector<int64_t>{0});
  CHECK(dist::DataParallel(params, pg()).buckets().size() == 1);  // 25 MB holds them all
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
    o.bucket_cap_mb = cap_mb;
    dist::DataParallel dp(m.parameters(), pg(), o);
    dp.broadcast_from_main(m.parameters());
    const std::vector<float> got = train(m, X, Y, global, steps, &dp);
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
