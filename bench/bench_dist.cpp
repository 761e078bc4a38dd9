// Data-parallel scaling of the reference ViT's training step (batch 128 per rank, one thread per
// rank, random images): images/s over all ranks and the time each step spends averaging gradients.
// Compare one rank against two in the same sitting:
//
//   QUENCH_NUM_THREADS=1 mpirun --allow-run-as-root -np 1 build/bench/bench_dist
//   QUENCH_NUM_THREADS=1 mpirun --allow-run-as-root -np 2 build/bench/bench_dist
//
// Prints one line from rank 0: ranks, images/s, step ms, all-reduce ms per step (median over the
// timed steps; the all-reduce runs after backward, so none of it is hidden).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "dist/data_parallel.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/layers/vit.hpp"
#include "nn/optim/adamw.hpp"

using namespace quench;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 12, warmup = 2;
  const int64_t B = 128;
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  Generator gen(0);
  auto model = std::make_shared<nn::ViT>(nn::ViTConfig{}, gen);
  dist::DataParallel dp(model->parameters(), pg);
  dp.broadcast_from_main(model->parameters());
  optim::AdamW opt(model->parameters(), optim::AdamWOptions(1e-3));
  Generator data(1 + pg.rank());
  Tensor x = randn({B, 1, 28, 28}, data), y = randint(0, 10, {B}, data);
  std::vector<double> step_ms, sync_ms;
  for (int s = 0; s < warmup + steps; ++s) {
    pg.barrier();
    const auto t0 = Clock::now();
    Tensor loss = cross_entropy((*model)(x), y);
    opt.zero_grad();
    loss.backward();
    const auto t1 = Clock::now();
    dp.synchronize_gradients();
    const auto t2 = Clock::now();
    opt.step();
    pg.barrier();
    const auto t3 = Clock::now();
    if (s >= warmup) {
      step_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t0).count());
      sync_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double ms = median(step_ms);
  if (pg.is_main())
    std::printf("ranks %d  threads/rank %d  images/s %.1f  step %.1f ms  all-reduce %.2f ms/step (%zu steps)\n",
                pg.size(), get_num_threads(), 1000.0 * B * pg.size() / ms, ms, median(sync_ms), step_ms.size());
  return 0;
}
