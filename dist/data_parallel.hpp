// Data parallelism as PyTorch's DistributedDataParallel: every process holds the whole model, reads
// its shard of each batch (nn::DataLoaderOptions::num_replicas / rank), and before each optimizer
// step the gradients are averaged over the processes (summed, then divided by the world size), so
// every process takes the same step and the weights stay identical everywhere.
//
//   dist::DataParallel dp(model->parameters(), dist::ProcessGroup::world());
//   dp.broadcast_from_main(model->state_tensors());   // the same start everywhere
//   for (batch : loader) { loss.backward(); dp.synchronize_gradients(); opt.step(); }
//
// Gradients travel in buckets of about bucket_cap_mb (PyTorch's default 25 MB), the parameters taken
// in reverse order (the order backward produces their gradients): each bucket is packed into one flat
// buffer, all-reduced, divided and unpacked. A parameter without a gradient on this process (unused
// in its forward) contributes zeros and receives the average of the others.
#pragma once
#include <cstdint>
#include <vector>

#include "dist/process_group.hpp"
#include "engine/tensor.hpp"

namespace quench::dist {

struct DataParallelOptions {
  double bucket_cap_mb = 25.0;
};

class DataParallel {
 public:
  DataParallel(std::vector<Tensor> params, ProcessGroup& pg, DataParallelOptions options = {});

  // Rank 0's values of `tensors` (parameters, buffers: f32 contiguous) to every process.
  void broadcast_from_main(const std::vector<Tensor>& tensors);
  // After backward, before the optimizer step: every parameter's gradient becomes the average over
  // the processes.
  void synchronize_gradients();

  // The buckets: indices into the parameter list, each parameter in exactly one.
  const std::vector<std::vector<int64_t>>& buckets() const { return buckets_; }
  ProcessGroup& process_group() const { return pg_; }

 private:
  std::vector<Tensor> params_;
  ProcessGroup& pg_;
  std::vector<std::vector<int64_t>> buckets_;
  std::vector<float> flat_;  // one bucket's gradients, reused
};

// Sums of per-process statistics (loss sums, correct counts, sample counts) over the processes.
void all_reduce_sum(ProcessGroup& pg, std::vector<double>& values);

}  // namespace quench::dist
