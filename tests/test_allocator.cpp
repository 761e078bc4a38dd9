// The storage allocator: alignment, reuse of released blocks, the bound, concurrent use.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/allocator.hpp"
#include "engine/ops.hpp"

using namespace quench;

namespace {

// Restores the process-wide limit after a test changes it.
struct LimitGuard {
  size_t prev = alloc::cache_limit();
  ~LimitGuard() { alloc::set_cache_limit(prev); }
};

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % alloc::kAlignment == 0; }

}  // namespace

TEST_CASE("allocator: blocks are 64-byte aligned and usable, small and large") {
  for (size_t n : {size_t{1}, size_t{63}, size_t{4096}, size_t{100000}, size_t{3} << 20}) {
    CAPTURE(n);
    void* p = alloc::allocate(n);
    CHECK(aligned(p));
    std::memset(p, 0xab, n);
    alloc::deallocate(p, n);
  }
  Tensor t = Tensor::empty({1000, 7});
  CHECK(aligned(t.raw_data()));
}

TEST_CASE("allocator: a released block is handed out again for the same size; the limit bounds the cache") {
  LimitGuard guard;
  alloc::set_cache_limit(size_t{64} << 20);
  if (alloc::cache_limit() == 0) return;  // caching disabled (sanitizer build)
  alloc::empty_cache();
  const size_t n = 1 << 20;
  void* a = alloc::allocate(n);
  alloc::deallocate(a, n);
  CHECK(alloc::cache_stats().cached_bytes == n);
  const size_t hits = alloc::cache_stats().hits;
  void* b = alloc::allocate(n);
  CHECK(b == a);
  CHECK(alloc::cache_stats().hits == hits + 1);
  CHECK(alloc::cache_stats().cached_bytes == 0);
  // A different size is not served from the cache.
  void* c = alloc::allocate(n + 64);
  CHECK(c != b);
  alloc::deallocate(b, n);
  alloc::deallocate(c, n + 64);
  CHECK(alloc::cache_stats().cached_bytes == 2 * n + 64);
  // Over the limit a release goes back to the system; lowering the limit empties the cache.
  alloc::set_cache_limit(n);
  CHECK(alloc::cache_stats().cached_bytes == 0);
  void* d = alloc::allocate(2 * n);
  alloc::deallocate(d, 2 * n);
  CHECK(alloc::cache_stats().cached_bytes == 0);
  alloc::set_cache_limit(0);
  void* e = alloc::allocate(n);
  alloc::deallocate(e, n);
  CHECK(alloc::cache_stats().cached_bytes == 0);
}

TEST_CASE("allocator: a miss that would overflow the bound empties the cache of stale sizes") {
  LimitGuard guard;
  alloc::set_cache_limit(size_t{3} << 20);
  if (alloc::cache_limit() == 0) return;
  alloc::empty_cache();
  void* a = alloc::allocate(size_t{2} << 20);
  alloc::deallocate(a, size_t{2} << 20);
  CHECK(alloc::cache_stats().cached_bytes == size_t{2} << 20);
  void* b = alloc::allocate(size_t{3} << 19);  // 1.5 MiB: 2 + 1.5 > 3
  CHECK(alloc::cache_stats().cached_bytes == 0);
  alloc::deallocate(b, size_t{3} << 19);
  CHECK(alloc::cache_stats().cached_bytes == size_t{3} << 19);
  alloc::empty_cache();
}

TEST_CASE("allocator: concurrent allocation and release from several threads") {
  auto work = [](int seed, std::vector<int>& ok) {
    for (int i = 0; i < 200; ++i) {
      const size_t n = 4096 * (1 + (seed + i) % 5);
      auto* p = static_cast<unsigned char*>(alloc::allocate(n));
      std::memset(p, seed, n);
      bool same = true;
      for (size_t j = 0; j < n; j += 97) same = same && p[j] == static_cast<unsigned char>(seed);
      ok.push_back(same);
      alloc::deallocate(p, n);
    }
  };
  std::vector<int> ok1, ok2;
  std::thread t1(work, 1, std::ref(ok1)), t2(work, 2, std::ref(ok2));
  t1.join();
  t2.join();
  for (int v : ok1) CHECK(v);
  for (int v : ok2) CHECK(v);
}
