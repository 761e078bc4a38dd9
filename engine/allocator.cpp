#include "engine/allocator.hpp"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define QUENCH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUENCH_ASAN 1
#endif
#endif

namespace quench::alloc {
namespace {

size_t default_limit() {
#ifdef QUENCH_ASAN
  return 0;
#else
  const char* env = std::getenv("QUENCH_ALLOC_CACHE_MB");
  if (!env || !*env) return size_t{1024} << 20;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(env, &end, 10);
  return (end && *end == '\0') ? static_cast<size_t>(mb) << 20 : size_t{1024} << 20;
#endif
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  size_t cached = 0, limit = default_limit(), hits = 0, misses = 0;

  void clear_locked() {
    for (auto& [size, blocks] : free_lists)
      for (void* p : blocks) std::free(p);
    free_lists.clear();
    cached = 0;
  }
};

// Never destroyed: storages released during static destruction still find it.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

size_t round_up(size_t nbytes) {
  return (std::max<size_t>(nbytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
}

void* system_alloc(size_t rounded) {
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* allocate(size_t nbytes) {
  const size_t n = round_up(nbytes);
  if (n < kMinCachedBytes) return system_alloc(n);
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_lists.find(n);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= n;
      ++c.hits;
      return p;
    }
    ++c.misses;
    // A size the cache cannot serve: when it would not have room for this block later, what it
    // holds is for shapes no longer in use.
    if (c.cached + n > c.limit) c.clear_locked();
  }
  return system_alloc(n);
}

void deallocate(void* p, size_t nbytes) {
  if (!p) return;
  const size_t n = round_up(nbytes);
  if (n >= kMinCachedBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cached + n <= c.limit) {
      c.free_lists[n].push_back(p);
      c.cached += n;
      return;
    }
  }
  std::free(p);
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.clear_locked();
}

void set_cache_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  if (c.cached > c.limit) c.clear_locked();
}

size_t cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.limit;
}

CacheStats cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.cached, c.hits, c.misses};
}

}  // namespace quench::alloc
