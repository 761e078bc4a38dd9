#include "kernels/isa.hpp"

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace quench::kernels {
namespace {

#if defined(__x86_64__)
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

bool detect_avx_vnni() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  if (!(c & (1u << 27)) || !(c & (1u << 28))) return false;  // OSXSAVE, AVX
  if ((xgetbv0() & 0x6) != 0x6) return false;                 // ymm state
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return a & (1u << 4);
#else
  return false;
#endif
}

Isa detect() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::ref;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28);
  if (!osxsave || !avx) return Isa::ref;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::ref;
  const bool avx2 = b & (1u << 5);
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  if (!(ymm_state && avx2 && fma)) return Isa::ref;
  if (!(zmm_state && f && dq && bw && vl)) return detect_avx_vnni() ? Isa::avx_vnni : Isa::avx2;
  return vnni ? Isa::avx512_vnni : Isa::avx512;
#else
  return Isa::ref;
#endif
}

// The level to run when `want` is asked for: never above the CPU, avx_vnni only with the feature.
Isa clamp_to_cpu(Isa want, Isa cpu) {
  if (static_cast<int>(want) > static_cast<int>(cpu)) return cpu;
  if (want == Isa::avx_vnni && !cpu_has_avx_vnni()) return Isa::avx2;
  return want;
}

Isa from_env(Isa cpu) {
  const char* env = std::getenv("QUENCH_ISA");
  if (!env || !*env) return cpu;
  return clamp_to_cpu(parse_isa(env), cpu);
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(from_env(cpu_isa()))};
  return slot;
}

}  // namespace

Isa cpu_isa() {
  static const Isa isa = detect();
  return isa;
}

bool cpu_has_avx_vnni() {
  static const bool has = detect_avx_vnni();
  return has;
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

Isa set_isa(Isa isa) {
  const Isa v = clamp_to_cpu(isa, cpu_isa());
  active_slot().store(static_cast<int>(v), std::memory_order_relaxed);
  return v;
}

Isa parse_isa(std::string_view name) {
  for (int i = 0; i < kNumIsas; ++i)
    if (kIsaNames[i] == name) return static_cast<Isa>(i);
  throw std::invalid_argument("QUENCH_ISA: unknown instruction set '" + std::string(name) +
                              "'; expected one of ref, avx2, avx_vnni, avx512, avx512_vnni");
}

}  // namespace quench::kernels
