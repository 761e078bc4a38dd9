// Seedable random number generator (PCG64-DXSM state transition over a 128-bit LCG).
// One stream per Generator; copying a Generator copies its state, so draws can be replayed.
#pragma once
#include <cstdint>

namespace quench {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x853c49e6748fea9bULL) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  uint64_t next_u64();
  uint32_t next_u32() { return static_cast<uint32_t>(next_u64() >> 32); }
  // Uniform in [0, 1) with 24 random bits (exactly representable floats).
  float uniform();
  // Standard normal (Box-Muller; caches the second value).
  float normal();
  // Uniform integer in [0, n) without modulo bias. n >= 1.
  uint64_t below(uint64_t n);
  uint64_t seed() const { return seed_; }

 private:
  unsigned __int128 state_ = 0;
  uint64_t seed_ = 0;
  bool has_spare_ = false;
  float spare_ = 0.f;
};

// The process-wide default generator used by rand/randn/randint/dropout without an explicit one.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace quench
