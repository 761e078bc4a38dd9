// Data parallelism as PyTorch's DistributedDataParallel: every process holds the whole model, reads
// its shard of each batch (nn::DataLoaderOptions::num_replicas / rank), and before each optimizer
// step the gradients are averaged over the processes (summed, then divided by the world size), so
// every process takes the same step and the weights stay identical everywhere.
//
//   dist::DataParallel dp(model->parameters(), dist::ProcessGroup::world());
//   dp.broadcast_from_main(model->state_tensors());   // the same start everywhere
//   for (batch : loader) { loss.backward(); dp.synchronize_gradients(); opt.step(); }
//
// Gradients travel in buckets, the parameters taken in reverse order (the order backward produces
// their gradients): the first bucket holds about first_bucket_cap_mb (PyTorch's 1 MiB, so that
// communication starts early), the others about bucket_cap_mb (PyTorch's 25). With `overlap`, each
// parameter's gradient is copied into its bucket as soon as backward has accumulated it (a
// post-accumulate-grad hook), and a full bucket is all-reduced at once by a communication thread
// while backward goes on; synchronize_gradients() then waits for the last buckets and writes the
// averages back. Buckets are all-reduced in one fixed order on every process, so results do not
// depend on timing. A parameter without a gradient on this process (unused in its forward)
// contributes zeros and receives the average of the others.
//
// Call backward once per synchronize_gradients(): a parameter whose gradient arrives twice before
// it is an error (its bucket may already be on its way).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dist/process_group.hpp"
#include "engine/tensor.hpp"

namespace quench::dist {

struct DataParallelOptions {
  double bucket_cap_mb = 25.0;
  double first_bucket_cap_mb = 1.0;
  // All-reduce buckets during backward. Needs an MPI library that grants MPI_THREAD_MULTIPLE;
  // without it the buckets are all-reduced in synchronize_gradients().
  bool overlap = true;
};

// Where the gradient averaging's time went, summed over the steps since the last reset_stats().
struct CommStats {
  int64_t steps = 0;
  double all_reduce_s = 0;  // the buckets' all-reduces, each from its start to its end
  double exposed_s = 0;     // synchronize_gradients() waiting for them once backward had ended
  // The share of the all-reduce time spent while backward still ran.
  double hidden_fraction() const;
};

class DataParallel {
 public:
  DataParallel(std::vector<Tensor> params, ProcessGroup& pg, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Rank 0's values of `tensors` (parameters, buffers: f32 contiguous) to every process.
  void broadcast_from_main(const std::vector<Tensor>& tensors);
  // After backward, before the optimizer step: every parameter's gradient becomes the average over
  // the processes.
  void synchronize_gradients();

  // The buckets: indices into the parameter list, each parameter in exactly one, in all-reduce order.
  const std::vector<std::vector<int64_t>>& buckets() const { return buckets_; }
  ProcessGroup& process_group() const { return pg_; }
  // Whether buckets are all-reduced during backward (overlap asked for, several processes, and an
  // MPI library that allows it).
  bool overlapping() const { return comm_pg_ != nullptr; }
  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

 private:
  void on_gradient(int64_t param);      // backward's hook: param's gradient is final
  void pack(int64_t param);             // its gradient (or zeros) into its bucket
  void launch_ready_buckets();          // hands full buckets to the thread, in order
  void communicate();                   // the communication thread
  void all_reduce_bucket(int64_t b);    // sum, then divide by the world size
  void unpack(int64_t b);               // the averages back into the gradients

  std::vector<Tensor> params_;
  ProcessGroup& pg_;
  std::vector<std::vector<int64_t>> buckets_;
  std::vector<std::vector<float>> flat_;     // per bucket, its gradients in one buffer
  std::vector<int64_t> bucket_of_, offset_;  // per parameter
  std::vector<char> delivered_;              // per parameter: packed in this step
  std::vector<int64_t> pending_;             // per bucket: parameters not packed yet
  std::vector<int64_t> hooks_;               // per parameter: its hook's handle
  int64_t next_launch_ = 0;                  // buckets [0, next_launch_) are handed over

  std::unique_ptr<ProcessGroup> comm_pg_;    // the thread's own communicator
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t queued_ = 0, done_ = 0;            // buckets handed to / finished by the thread
  bool stop_ = false;
  std::exception_ptr error_;
  double step_all_reduce_s_ = 0;
  CommStats stats_;
};

// Sums of per-process statistics (loss sums, correct counts, sample counts) over the processes.
void all_reduce_sum(ProcessGroup& pg, std::vector<double>& values);

}  // namespace quench::dist
