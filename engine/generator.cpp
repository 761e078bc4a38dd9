#include "engine/generator.hpp"

#include <cmath>

namespace quench {

namespace {
constexpr unsigned __int128 kMul = (static_cast<unsigned __int128>(0x2360ed051fc65da4ULL) << 64) |
                                   0x4385df649fccf645ULL;
constexpr unsigned __int128 kInc = (static_cast<unsigned __int128>(0x5851f42d4c957f2dULL) << 64) |
                                   0x14057b7ef767814fULL;
}  // namespace

void Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  state_ = 0;
  has_spare_ = false;
  next_u64();
  state_ += (static_cast<unsigned __int128>(seed) << 64) | (seed ^ 0x9e3779b97f4a7c15ULL);
  next_u64();
}

uint64_t Generator::next_u64() {
  // PCG XSL-RR 128/64.
  state_ = state_ * kMul + kInc;
  uint64_t hi = static_cast<uint64_t>(state_ >> 64), lo = static_cast<uint64_t>(state_);
  uint64_t x = hi ^ lo;
  unsigned rot = static_cast<unsigned>(hi >> 58);
  return (x >> rot) | (x << ((64 - rot) & 63));
}

float Generator::uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }

float Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // u1 in (0, 1] so log(u1) is finite.
  double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
  double r = std::sqrt(-2.0 * std::log(u1)), th = 2.0 * M_PI * u2;
  spare_ = static_cast<float>(r * std::sin(th));
  has_spare_ = true;
  return static_cast<float>(r * std::cos(th));
}

uint64_t Generator::below(uint64_t n) {
  // Lemire's nearly divisionless method.
  unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
  uint64_t l = static_cast<uint64_t>(m);
  if (l < n) {
    uint64_t t = (0 - n) % n;
    while (l < t) {
      m = static_cast<unsigned __int128>(next_u64()) * n;
      l = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace quench
