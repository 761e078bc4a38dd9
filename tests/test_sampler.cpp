#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "nn/data/loader.hpp"
#include "nn/data/sampler.hpp"

using namespace quench;
using namespace quench::nn;

namespace {

SamplerOptions shard(int64_t replicas, int64_t rank, bool shuffle = true, uint64_t seed = 7) {
  SamplerOptions o;
  o.shuffle = shuffle;
  o.seed = seed;
  o.num_replicas = replicas;
  o.rank = rank;
  return o;
}

}  // namespace

TEST_CASE("sampler: one replica is a permutation of every row, fixed by (seed, epoch)") {
  const std::vector<int32_t> a = epoch_indices(100, 3, shard(1, 0));
  std::vector<int32_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> iota(100);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(sorted == iota);
  CHECK(a != iota);
  CHECK(epoch_indices(100, 3, shard(1, 0)) == a);
  CHECK(epoch_indices(100, 4, shard(1, 0)) != a);
  CHECK(epoch_indices(100, 3, shard(1, 0, true, 8)) != a);
  CHECK(epoch_indices(100, 3, shard(1, 0, false)) == iota);
}

TEST_CASE("sampler: shards interleave the single-process order, padded by its head (DistributedSampler)") {
  const int64_t n = 10;
  const std::vector<int32_t> full = epoch_indices(n, 2, shard(1, 0));
  for (int64_t R : {2, 3, 4, 7, 12}) {
    CAPTURE(R);
    const int64_t per = (n + R - 1) / R;
    CHECK(samples_per_replica(n, shard(R, 0)) == per);
    std::vector<std::vector<int32_t>> shards;
    for (int64_t r = 0; r < R; ++r) shards.push_back(epoch_indices(n, 2, shard(R, r)));
    for (int64_t j = 0; j < per; ++j)
      for (int64_t r = 0; r < R; ++r) {
        REQUIRE(static_cast<int64_t>(shards[r].size()) == per);
        CHECK(shards[r][j] == full[(j * R + r) % n]);  // position j*R + r of the padded order
      }
    std::set<int32_t> seen;
    for (const auto& s : shards) seen.insert(s.begin(), s.end());
    CHECK(static_cast<int64_t>(seen.size()) == n);  // every row is read by some rank
  }
  SamplerOptions d = shard(3, 1);
  d.drop_last = true;
  CHECK(samples_per_replica(n, d) == 3);
  const std::vector<int32_t> cut = epoch_indices(n, 2, d);
  CHECK(cut == std::vector<int32_t>{full[1], full[4], full[7]});
}

TEST_CASE("sampler: bad replica counts and ranks are rejected") {
  CHECK_THROWS_AS(epoch_indices(10, 0, shard(0, 0)), Error);
  CHECK_THROWS_AS(epoch_indices(10, 0, shard(2, 2)), Error);
  CHECK_THROWS_AS(epoch_indices(10, 0, shard(2, -1)), Error);
  CHECK(epoch_indices(0, 0, shard(3, 2)).empty());
}

TEST_CASE("loader: R ranks with batch B see the batches of one process with batch R*B, augmentation included") {
  Generator gen(3);
  LabeledImages d;
  d.images = randint(0, 256, {24, 1, 6, 6}, gen, kUInt8);
  d.labels = arange(0, 24, 1, kInt32);
  auto options = [](int64_t batch, int64_t replicas, int64_t rank) {
    DataLoaderOptions o;
    o.batch_size = batch;
    o.seed = 11;
    o.crop_padding = 2;
    o.horizontal_flip = true;
    o.num_replicas = replicas;
    o.rank = rank;
    return o;
  };
  DataLoader one(d, options(6, 1, 0));
  DataLoader r0(d, options(3, 2, 0)), r1(d, options(3, 2, 1));
  CHECK(r0.size() == one.size());
  CHECK(r0.samples() == 12);
  one.set_epoch(1);
  r0.set_epoch(1);
  r1.set_epoch(1);
  while (auto g = one.next()) {
    auto a = r0.next(), b = r1.next();
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    // Global batch rows j*2 + r: rank 0 holds the even positions, rank 1 the odd ones.
    const std::vector<int32_t> gi = g->indices.to_vector<int32_t>();
    const std::vector<int32_t> ai = a->indices.to_vector<int32_t>(), bi = b->indices.to_vector<int32_t>();
    const int64_t hw = 36;
    const std::vector<float> gim = g->images.to_vector<float>(), aim = a->images.to_vector<float>(),
                             bim = b->images.to_vector<float>();
    for (int64_t j = 0; j < 3; ++j) {
      CHECK(ai[j] == gi[2 * j]);
      CHECK(bi[j] == gi[2 * j + 1]);
      CHECK(std::equal(aim.begin() + j * hw, aim.begin() + (j + 1) * hw, gim.begin() + 2 * j * hw));
      CHECK(std::equal(bim.begin() + j * hw, bim.begin() + (j + 1) * hw, gim.begin() + (2 * j + 1) * hw));
    }
  }
  CHECK_FALSE(r0.next().has_value());
  DataLoaderOptions bad = options(3, 2, 5);
  CHECK_THROWS_AS(DataLoader(d, bad), Error);
}
