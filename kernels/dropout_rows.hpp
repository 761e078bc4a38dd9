// Dropout's keep-mask and scaling over contiguous floats, for engine/ops/dropout.cpp:
//   keep[i] = draw24(key, first + i) < keep_below      (a counter-based draw: any element, any order)
//   y[i]    = keep[i] ? x[i] * scale : 0
//   dx[i]   = keep[i] ? g[i] * scale : 0               (backward)
// draw24 is splitmix64's finalizer on key + (i + 1) * golden ratio, the top 24 bits, so the mask
// depends on the key and the element's index only, never on the thread count or the ISA path. The
// AVX2 and AVX-512 paths are the _ref loops compiled for those ISAs (AVX-512DQ multiplies the 64-bit
// lanes in one instruction, vpmullq); integer math and one float multiply, so every path gives the
// _ref bits (tests/test_dropout_rows.cpp). Single-threaded: callers split the elements over threads.
#pragma once
#include <cstdint>

namespace quench::kernels {

inline __attribute__((always_inline)) uint32_t dropout_draw24(uint64_t key, uint64_t i) {
  uint64_t z = key + (i + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 40);
}

// The element loops, one definition for every path (forced inline into each ISA's unit).
inline __attribute__((always_inline)) void dropout_rows_loop(const float* x, int64_t n, uint64_t key, uint64_t first,
                                                             uint32_t keep_below, float scale, uint8_t* mask,
                                                             float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_draw24(key, first + static_cast<uint64_t>(i)) < keep_below;
    mask[i] = keep;
    y[i] = keep ? x[i] * scale : 0.f;
  }
}
inline __attribute__((always_inline)) void dropout_backward_rows_loop(const float* g, const uint8_t* mask, int64_t n,
                                                                      float scale, float* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = mask[i] ? g[i] * scale : 0.f;
}

// x, y [n] (y may alias x), mask [n]: elements first .. first + n - 1 of the tensor.
void dropout_rows(const float* x, int64_t n, uint64_t key, uint64_t first, uint32_t keep_below, float scale,
                  uint8_t* mask, float* y);
void dropout_rows_ref(const float* x, int64_t n, uint64_t key, uint64_t first, uint32_t keep_below, float scale,
                      uint8_t* mask, float* y);
// g, dx [n] (dx may alias g), mask [n].
void dropout_backward_rows(const float* g, const uint8_t* mask, int64_t n, float scale, float* dx);
void dropout_backward_rows_ref(const float* g, const uint8_t* mask, int64_t n, float scale, float* dx);

}  // namespace quench::kernels
