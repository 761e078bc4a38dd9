// Data-parallel scaling of the reference ViT's training step (batch 128 per rank, one thread per
// rank, random images): images/s over all ranks, the time the gradient all-reduces take and how much
// of it backward hides. Compare one rank against two in the same sitting:
//
//   QUENCH_NUM_THREADS=1 mpirun --allow-run-as-root -x QUENCH_NUM_THREADS -np 1 build/bench/bench_dist
//   QUENCH_NUM_THREADS=1 mpirun --allow-run-as-root -x QUENCH_NUM_THREADS -np 2 build/bench/bench_dist
//
// Options: --steps N (12), --bucket-cap-mb MB (25), --first-bucket-cap-mb MB (1), --no-overlap.
// Prints one line from rank 0: ranks, images/s and step ms (medians over the timed steps), the
// all-reduce time per step (the buckets', start to end), the part of it synchronize_gradients()
// still waited for after backward, and the hidden share.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dist/data_parallel.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/layers/vit.hpp"
#include "nn/optim/adamw.hpp"

using namespace quench;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int steps = 12;
  const int warmup = 2;
  dist::DataParallelOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--steps" && has_value) steps = std::atoi(argv[++i]);
    else if (a == "--bucket-cap-mb" && has_value) options.bucket_cap_mb = std::atof(argv[++i]);
    else if (a == "--first-bucket-cap-mb" && has_value) options.first_bucket_cap_mb = std::atof(argv[++i]);
    else if (a == "--no-overlap") options.overlap = false;
    else {
      std::fprintf(stderr, "usage: bench_dist [--steps N] [--bucket-cap-mb MB] [--first-bucket-cap-mb MB] [--no-overlap]\n");
      return 2;
    }
  }
  const int64_t B = 128;
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  Generator gen(0);
  auto model = std::make_shared<nn::ViT>(nn::ViTConfig{}, gen);
  dist::DataParallel dp(model->parameters(), pg, options);
  dp.broadcast_from_main(model->parameters());
  optim::AdamW opt(model->parameters(), optim::AdamWOptions(1e-3));
  Generator data(1 + pg.rank());
  Tensor x = randn({B, 1, 28, 28}, data), y = randint(0, 10, {B}, data);
  std::vector<double> step_ms, backward_ms;
  for (int s = 0; s < warmup + steps; ++s) {
    if (s == warmup) dp.reset_stats();
    pg.barrier();
    const auto t0 = Clock::now();
    Tensor loss = cross_entropy((*model)(x), y);
    opt.zero_grad();
    const auto tb = Clock::now();
    loss.backward();
    const auto te = Clock::now();
    dp.synchronize_gradients();
    opt.step();
    pg.barrier();
    const auto t1 = Clock::now();
    if (s >= warmup) {
      step_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      backward_ms.push_back(std::chrono::duration<double, std::milli>(te - tb).count());
    }
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double ms = median(step_ms);
  const dist::CommStats& st = dp.stats();
  const double per_step = st.steps ? 1000.0 / static_cast<double>(st.steps) : 0.0;
  if (pg.is_main())
    std::printf("ranks %d  threads/rank %d  images/s %.1f  step %.1f ms  backward %.1f ms  buckets %zu (%s)  all-reduce %.2f ms/step"
                "  exposed %.2f ms/step  hidden %.0f%%  (%zu steps)\n",
                pg.size(), get_num_threads(), 1000.0 * B * pg.size() / ms, ms, median(backward_ms), dp.buckets().size(),
                dp.overlapping() ? "overlapped" : "after backward", st.all_reduce_s * per_step,
                st.exposed_s * per_step, 100.0 * st.hidden_fraction(), step_ms.size());
  return 0;
}
