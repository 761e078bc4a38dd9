#include "dist/data_parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "engine/error.hpp"

namespace quench::dist {

using Clock = std::chrono::steady_clock;

double CommStats::hidden_fraction() const {
  return all_reduce_s > 0 ? std::clamp(1.0 - exposed_s / all_reduce_s, 0.0, 1.0) : 0.0;
}

DataParallel::DataParallel(std::vector<Tensor> params, ProcessGroup& pg, DataParallelOptions options)
    : params_(std::move(params)), pg_(pg) {
  QUENCH_CHECK(options.bucket_cap_mb > 0 && options.first_bucket_cap_mb > 0,
               "DataParallel: bucket_cap_mb and first_bucket_cap_mb must be positive, got ",
               options.bucket_cap_mb, " and ", options.first_bucket_cap_mb);
  auto elements = [](double mb) { return static_cast<int64_t>(mb * 1024 * 1024 / sizeof(float)); };
  const int64_t n_params = static_cast<int64_t>(params_.size());
  bucket_of_.assign(n_params, 0);
  offset_.assign(n_params, 0);
  int64_t filled = 0;
  for (int64_t i = n_params - 1; i >= 0; --i) {
    const Tensor& p = params_[i];
    QUENCH_CHECK(p.dtype() == kFloat32 && p.is_contiguous(), "DataParallel: parameter ", i,
                 " must be a contiguous float32 tensor, got ", dtype_name(p.dtype()), " ", shape_str(p.sizes()));
    // The cap of the bucket being filled: the first one (the last layers' gradients) is small.
    const int64_t cap = elements(buckets_.size() <= 1 ? options.first_bucket_cap_mb : options.bucket_cap_mb);
    if (buckets_.empty() || (filled > 0 && filled + p.numel() > cap)) {
      buckets_.emplace_back();
      filled = 0;
    }
    bucket_of_[i] = static_cast<int64_t>(buckets_.size()) - 1;
    offset_[i] = filled;
    buckets_.back().push_back(i);
    filled += p.numel();
  }
  flat_.resize(buckets_.size());
  pending_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) {
    int64_t n = 0;
    for (int64_t i : buckets_[b]) n += params_[i].numel();
    flat_[b].resize(n);
    pending_[b] = static_cast<int64_t>(buckets_[b].size());
  }
  delivered_.assign(n_params, 0);
  if (pg_.size() == 1 || !options.overlap) return;
  comm_pg_ = pg_.duplicate();
  if (!comm_pg_) return;  // no MPI_THREAD_MULTIPLE: all-reduce in synchronize_gradients()
  for (int64_t i = 0; i < n_params; ++i)
    hooks_.push_back(params_[i].requires_grad()
                         ? params_[i].register_post_accumulate_grad_hook([this, i](const Tensor&) { on_gradient(i); })
                         : 0);
  thread_ = std::thread([this] { communicate(); });
}

DataParallel::~DataParallel() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  for (size_t i = 0; i < hooks_.size(); ++i)
    if (hooks_[i]) params_[i].remove_post_accumulate_grad_hook(hooks_[i]);
}

void DataParallel::broadcast_from_main(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    QUENCH_CHECK(t.is_contiguous(), "DataParallel::broadcast_from_main: tensor ", shape_str(t.sizes()),
                 " is not contiguous");
    pg_.broadcast(t.raw_data(), static_cast<int64_t>(t.nbytes()), 0);
  }
}

void DataParallel::pack(int64_t i) {
  float* dst = flat_[bucket_of_[i]].data() + offset_[i];
  const Tensor g = params_[i].grad();
  const int64_t k = params_[i].numel();
  if (g.defined())
    std::memcpy(dst, g.contiguous().data_ptr<float>(), k * sizeof(float));
  else
    std::fill_n(dst, k, 0.0f);
  delivered_[i] = 1;
  --pending_[bucket_of_[i]];
}

void DataParallel::on_gradient(int64_t i) {
  QUENCH_CHECK(!delivered_[i], "DataParallel: parameter ", i, " ", shape_str(params_[i].sizes()),
               " received a second gradient before synchronize_gradients(); its bucket may already be "
               "all-reduced. Call backward once per step (sum the losses first), or build the "
               "DataParallel with overlap = false");
  pack(i);
  launch_ready_buckets();
}

void DataParallel::launch_ready_buckets() {
  const auto n = static_cast<int64_t>(buckets_.size());
  int64_t next = next_launch_;
  while (next < n && pending_[next] == 0) ++next;
  if (next == next_launch_) return;
  next_launch_ = next;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queued_ = next;
  }
  cv_.notify_all();
}

void DataParallel::all_reduce_bucket(int64_t b) {
  ProcessGroup& pg = comm_pg_ ? *comm_pg_ : pg_;
  std::vector<float>& flat = flat_[b];
  pg.all_reduce_sum(flat.data(), static_cast<int64_t>(flat.size()));
  const float inv = 1.0f / static_cast<float>(pg_.size());
  for (float& v : flat) v *= inv;
}

void DataParallel::communicate() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || done_ < queued_; });
    // Every process hands over the same buckets: finish them all, even when stopping, so that no
    // other process is left in an all-reduce this one skipped.
    if (done_ == queued_) return;
    const int64_t b = done_;
    lock.unlock();
    const auto start = Clock::now();
    try {
      all_reduce_bucket(b);
    } catch (...) {
      lock.lock();
      error_ = std::current_exception();
      done_ = static_cast<int64_t>(buckets_.size());  // nothing more will come: release the waiter
      cv_.notify_all();
      return;
    }
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    lock.lock();
    step_all_reduce_s_ += s;
    ++done_;
    cv_.notify_all();
  }
}

void DataParallel::unpack(int64_t b) {
  const std::vector<float>& flat = flat_[b];
  for (int64_t i : buckets_[b]) {
    const Tensor& p = params_[i];
    Tensor g = p.grad();
    if (!g.defined() || !g.is_contiguous()) {
      g = Tensor::empty(p.sizes(), kFloat32);
      p.set_grad(g);
    }
    std::memcpy(g.data_ptr<float>(), flat.data() + offset_[i], p.numel() * sizeof(float));
  }
}

void DataParallel::synchronize_gradients() {
  if (pg_.size() == 1) return;
  const auto n = static_cast<int64_t>(buckets_.size());
  // Whatever backward did not deliver (unused parameters, gradients set by hand, or no overlap).
  for (int64_t b = next_launch_; b < n; ++b)
    for (int64_t i : buckets_[b])
      if (!delivered_[i]) pack(i);
  if (!comm_pg_) {
    for (int64_t b = 0; b < n; ++b) {
      const auto start = Clock::now();
      all_reduce_bucket(b);
      const double s = std::chrono::duration<double>(Clock::now() - start).count();
      stats_.all_reduce_s += s;
      stats_.exposed_s += s;
      unpack(b);
    }
  } else {
    const auto start = Clock::now();
    launch_ready_buckets();
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this, n] { return done_ == n; });
    stats_.exposed_s += std::chrono::duration<double>(Clock::now() - start).count();
    stats_.all_reduce_s += step_all_reduce_s_;
    step_all_reduce_s_ = 0;
    if (error_) std::rethrow_exception(error_);
    queued_ = done_ = 0;
    lock.unlock();
    for (int64_t b = 0; b < n; ++b) unpack(b);
  }
  ++stats_.steps;
  next_launch_ = 0;
  std::fill(delivered_.begin(), delivered_.end(), 0);
  for (int64_t b = 0; b < n; ++b) pending_[b] = static_cast<int64_t>(buckets_[b].size());
}

void all_reduce_sum(ProcessGroup& pg, std::vector<double>& values) {
  pg.all_reduce_sum(values.data(), static_cast<int64_t>(values.size()));
}

}  // namespace quench::dist
