// Thread pool and parallel_for: the only source of parallelism in quench.
//
// Work is always split over independent outputs, never over a reduction, so results are bit-identical
// for every thread count. The pool is process-wide; its size comes from QUENCH_NUM_THREADS or
// set_num_threads(), default the hardware concurrency.
#pragma once
#include <cstdint>
#include <utility>

namespace quench {

int get_num_threads();
// n >= 1. Takes effect for the next parallel_for; safe to call between parallel regions only.
void set_num_threads(int n);

namespace kernels {

using RangeFn = void (*)(void* ctx, int64_t begin, int64_t end);

// Runs fn(ctx, b, e) over [0, n) in chunks of at least `grain` items. Blocks until every chunk ran.
// Called from inside a parallel region it runs serially on the calling thread.
void parallel_for_raw(int64_t n, int64_t grain, RangeFn fn, void* ctx);

// True while the calling thread executes a chunk of a parallel_for.
bool in_parallel_region();

template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  using Fn = std::remove_reference_t<F>;
  parallel_for_raw(n, grain,
                   [](void* ctx, int64_t b, int64_t e) { (*static_cast<Fn*>(ctx))(b, e); },
                   const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace kernels
}  // namespace quench
