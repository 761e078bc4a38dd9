#include "kernels/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define QUENCH_PAUSE() _mm_pause()
#else
#define QUENCH_PAUSE() ((void)0)
#endif

namespace quench {
namespace {

int default_threads() {
  if (const char* env = std::getenv("QUENCH_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

thread_local bool tl_in_region = false;

// How long an idle worker spins before sleeping: ops arrive microseconds apart during training, so a
// short spin (~0.3 ms) catches them without burning a core that another process could use.
constexpr int kSpinPauses = 20000;

// One parallel_for call. Immutable once published, except the two counters.
struct Job {
  kernels::RangeFn fn;
  void* ctx;
  int64_t n, chunks;
  uint64_t epoch;
  std::atomic<int64_t> next{0}, pending{0};
  std::exception_ptr error;
  std::mutex error_mu;

  // Chunk c covers [c*n/chunks, (c+1)*n/chunks): the split depends only on n and the chunk count.
  void work() {
    bool was = tl_in_region;
    tl_in_region = true;
    for (;;) {
      int64_t c = next.fetch_add(1);
      if (c >= chunks) break;
      try {
        fn(ctx, c * n / chunks, (c + 1) * n / chunks);
      } catch (...) {
        std::lock_guard<std::mutex> lk(error_mu);
        if (!error) error = std::current_exception();
      }
      pending.fetch_sub(1);
    }
    tl_in_region = was;
  }
};

// Workers spin briefly after each job (ops come back to back during training), then sleep.
// A worker touches a Job only between active_++ and active_--, and the caller returns only after it
// has unpublished the job and seen active_ == 0 (all seq_cst), so the Job can live on its stack.
class Pool {
 public:
  ~Pool() { resize(0); }

  int threads() const { return threads_; }

  void set_threads(int n) {
    std::lock_guard<std::mutex> run_lock(run_mu_);
    threads_ = std::max(1, n);
    resize(0);
  }

  void run(int64_t n, int64_t grain, kernels::RangeFn fn, void* ctx) {
    grain = std::max<int64_t>(1, grain);
    int64_t chunks_wanted = (n + grain - 1) / grain;
    if (threads_ == 1 || chunks_wanted == 1 || tl_in_region) {
      bool was = tl_in_region;
      tl_in_region = true;
      try {
        fn(ctx, 0, n);
      } catch (...) {
        tl_in_region = was;
        throw;
      }
      tl_in_region = was;
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mu_);
    if (static_cast<int>(workers_.size()) != threads_ - 1) resize(threads_ - 1);

    Job job;
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    // A few chunks per thread lets a thread that was descheduled catch up.
    job.chunks = std::min<int64_t>(chunks_wanted, int64_t(threads_) * 4);
    job.pending.store(job.chunks);
    {
      std::lock_guard<std::mutex> lk(wake_mu_);
      job.epoch = epoch_.load() + 1;
      current_.store(&job);
      epoch_.store(job.epoch);
    }
    wake_cv_.notify_all();
    job.work();
    while (job.pending.load() != 0) QUENCH_PAUSE();
    current_.store(nullptr);
    while (active_.load() != 0) QUENCH_PAUSE();
    if (job.error) std::rethrow_exception(job.error);
  }

 private:
  void resize(int workers) {
    if (!workers_.empty()) {
      {
        std::lock_guard<std::mutex> lk(wake_mu_);
        stop_.store(true);
        epoch_.fetch_add(1);
      }
      wake_cv_.notify_all();
      for (auto& t : workers_) t.join();
      workers_.clear();
      stop_.store(false);
    }
    // The creator reads the epoch, so a worker that starts late still sees every later job or stop.
    const uint64_t now = epoch_.load();
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this, now] { loop(now); });
  }

  void loop(uint64_t seen) {
    for (;;) {
      for (int spins = 0; epoch_.load() == seen && !stop_.load() && spins < kSpinPauses; ++spins)
        QUENCH_PAUSE();
      {
        std::unique_lock<std::mutex> lk(wake_mu_);
        wake_cv_.wait(lk, [&] { return epoch_.load() != seen || stop_.load(); });
      }
      seen = epoch_.load();
      if (stop_.load()) return;
      active_.fetch_add(1);
      Job* job = current_.load();
      if (job != nullptr && job->epoch == seen) job->work();
      active_.fetch_sub(1);
    }
  }

  int threads_ = default_threads();
  std::vector<std::thread> workers_;
  std::mutex run_mu_, wake_mu_;
  std::condition_variable wake_cv_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> stop_{false};
  std::atomic<Job*> current_{nullptr};
  std::atomic<int> active_{0};
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

int get_num_threads() { return pool().threads(); }
void set_num_threads(int n) { pool().set_threads(n); }

namespace kernels {
void parallel_for_raw(int64_t n, int64_t grain, RangeFn fn, void* ctx) {
  if (n <= 0) return;
  pool().run(n, grain, fn, ctx);
}
bool in_parallel_region() { return tl_in_region; }
}  // namespace kernels
}  // namespace quench
