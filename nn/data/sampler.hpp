// Which rows of a data set an epoch visits, and in what order (torch.utils.data's RandomSampler and
// SequentialSampler; DistributedSampler when several processes share the data set).
//
// Every epoch's order is a function of (seed, epoch) alone: shuffled, it is randperm(n) drawn from a
// generator seeded by derive_seed(seed, kShuffleSalt, epoch, 0); unshuffled, 0 .. n-1. With
// num_replicas R > 1 the order is the same for every rank; it is padded by repeating its head until
// its length divides by R (or cut to a multiple of R with drop_last), and rank r takes positions
// r, r + R, r + 2R, ... So batch b of every rank together hold exactly rows [b * B * R, (b + 1) * B * R)
// of the epoch's order: R processes with batch B see the batches one process with batch B * R sees.
#pragma once
#include <cstdint>
#include <vector>

namespace quench::nn {

struct SamplerOptions {
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t num_replicas = 1;  // processes sharing the data set
  int64_t rank = 0;          // this process, in [0, num_replicas)
  bool drop_last = false;    // R > 1: cut the order to a multiple of R instead of padding it
};

// A seed for one purpose (salt) at one place; distinct inputs give unrelated streams.
uint64_t derive_seed(uint64_t seed, uint64_t salt, int64_t epoch, int64_t position);
inline constexpr uint64_t kShuffleSalt = 1, kAugmentSalt = 2;

// How many rows each rank visits per epoch: ceil(n / R), or floor(n / R) with drop_last.
int64_t samples_per_replica(int64_t n, const SamplerOptions& opt);

// This rank's rows of `epoch`, in visiting order (samples_per_replica values in [0, n)). Throws on
// num_replicas < 1, a rank outside [0, num_replicas), or n larger than int32.
std::vector<int32_t> epoch_indices(int64_t n, int64_t epoch, const SamplerOptions& opt);

// The position in the epoch's full order of this rank's `local`-th row (local * R + rank): per-sample
// random draws keyed by it are the same whatever the number of processes.
inline int64_t global_position(int64_t local, const SamplerOptions& opt) {
  return local * opt.num_replicas + opt.rank;
}

}  // namespace quench::nn
