// Storage allocator: 64-byte-aligned blocks, with a bounded cache of released blocks keyed by size.
//
// A training step allocates the same shapes every iteration; without the cache every large buffer
// is a fresh mmap whose pages the kernel faults in and zeroes again (a quarter of a ViT step's time
// was spent there). Blocks of at least kMinCachedBytes go back to a per-size free list on release
// and are handed out again for the next request of that size. Thread-safe. The cache is bounded
// (QUENCH_ALLOC_CACHE_MB, default 1024; 0 disables it): a miss that would push it over the bound
// empties it first, so changing shapes cannot grow memory without limit. Disabled under
// AddressSanitizer so use-after-free stays visible.
#pragma once
#include <cstddef>

namespace quench::alloc {

inline constexpr size_t kAlignment = 64;
inline constexpr size_t kMinCachedBytes = 4096;

// nbytes (> 0) rounded up to kAlignment; throws std::bad_alloc when out of memory.
void* allocate(size_t nbytes);
// p from allocate(nbytes) with the same nbytes.
void deallocate(void* p, size_t nbytes);

// Frees every cached block.
void empty_cache();
// Bound on cached (released, unused) bytes; 0 disables caching. Empties the cache when lowered.
void set_cache_limit(size_t bytes);
size_t cache_limit();

struct CacheStats {
  size_t cached_bytes = 0;  // held in free lists now
  size_t hits = 0, misses = 0;
};
CacheStats cache_stats();

}  // namespace quench::alloc
