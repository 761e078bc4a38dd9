#include "nn/data/sampler.hpp"

#include <limits>
#include <numeric>

#include "engine/error.hpp"
#include "engine/generator.hpp"
#include "engine/ops/creation.hpp"

namespace quench::nn {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void check_options(int64_t n, const SamplerOptions& opt) {
  QUENCH_CHECK(opt.num_replicas >= 1, "sampler: num_replicas must be >= 1, got ", opt.num_replicas);
  QUENCH_CHECK(opt.rank >= 0 && opt.rank < opt.num_replicas, "sampler: rank ", opt.rank,
               " is outside [0, ", opt.num_replicas, ")");
  QUENCH_CHECK(n >= 0 && n <= std::numeric_limits<int32_t>::max(), "sampler: data set size ", n,
               " is outside [0, 2^31)");
}

}  // namespace

uint64_t derive_seed(uint64_t seed, uint64_t salt, int64_t epoch, int64_t position) {
  uint64_t h = splitmix64(seed ^ splitmix64(salt));
  h = splitmix64(h ^ static_cast<uint64_t>(epoch));
  return splitmix64(h ^ static_cast<uint64_t>(position));
}

int64_t samples_per_replica(int64_t n, const SamplerOptions& opt) {
  check_options(n, opt);
  const int64_t r = opt.num_replicas;
  return opt.drop_last ? n / r : (n + r - 1) / r;
}

std::vector<int32_t> epoch_indices(int64_t n, int64_t epoch, const SamplerOptions& opt) {
  const int64_t per_rank = samples_per_replica(n, opt);
  std::vector<int32_t> order;
  if (opt.shuffle) {
    Generator gen(derive_seed(opt.seed, kShuffleSalt, epoch, 0));
    order = randperm(n, gen).to_vector<int32_t>();
  } else {
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
  }
  if (opt.num_replicas == 1) return order;
  std::vector<int32_t> mine(static_cast<size_t>(per_rank));
  for (int64_t j = 0; j < per_rank; ++j)  // padding repeats the head of the order (n > 0 here)
    mine[j] = order[static_cast<size_t>(global_position(j, opt) % n)];
  return mine;
}

}  // namespace quench::nn
