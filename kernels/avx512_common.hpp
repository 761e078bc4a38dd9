// Helpers for kernel files compiled with the avx512 flags, included first (and by nothing else: what
// is here has internal linkage, so no copy built with wider instructions can stand in for a baseline
// one). Internal to kernels/, not installed.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
// gcc 12's avx512fintrin.h self-initialises its "undefined" vectors (the pass-through operand of
// vrangeps, vscalefps and the like) and then warns about them.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

namespace quench::kernels {
namespace {

// The first min(left, 16) lanes of a zmm of floats.
inline __mmask16 tail(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

}  // namespace
}  // namespace quench::kernels
