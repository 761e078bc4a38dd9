// Shared between fake_quant_rows.cpp (dispatch, reference) and the ISA files. The scalar helpers are
// forced inline: compiled into both the baseline and the -mavx2 unit, an out-of-line copy could be
// the AVX2 one the linker keeps for the baseline path.
#pragma once
#include <cmath>
#include <cstdint>

namespace quench::kernels::fqrows {

// The scalar rule of kernels/fake_quant_rows.hpp, used by the reference and the vector tails.
inline __attribute__((always_inline)) void fake_quant_scalar(const float* x, int64_t b, int64_t e, float scale,
                                                             float inv, int32_t z, int32_t qmin, int32_t qmax,
                                                             float* qi, float* deq, uint8_t* mask,
                                                             uint8_t* code) {
  const float lo = static_cast<float>(qmin - z), hi = static_cast<float>(qmax - z);
  const float zf = static_cast<float>(z), qminf = static_cast<float>(qmin), qmaxf = static_cast<float>(qmax);
  for (int64_t i = b; i < e; ++i) {
    const float r = std::nearbyint(x[i] * inv);
    float rc = r;
    if (!(rc >= lo)) rc = lo;
    if (rc > hi) rc = hi;
    const int32_t iv = static_cast<int32_t>(rc);
    const float v = static_cast<float>(iv);  // -0 -> +0, as int q - z
    if (qi) qi[i] = v;
    if (code) code[i] = static_cast<uint8_t>(iv + z);
    if (deq) deq[i] = v * scale;
    if (mask) {
      const float u = r + zf;
      mask[i] = u >= qminf && u <= qmaxf;
    }
  }
}

inline __attribute__((always_inline)) void min_max_scalar(const float* x, int64_t b, int64_t e, float* lo, float* hi) {
  float a = *lo, c = *hi;
  for (int64_t i = b; i < e; ++i) {
    if (x[i] < a) a = x[i];
    if (x[i] > c) c = x[i];
  }
  *lo = a;
  *hi = c;
}

inline __attribute__((always_inline)) void mask_scalar(float* g, const uint8_t* mask, int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) g[i] = mask[i] ? g[i] : 0.f;
}

inline __attribute__((always_inline)) void scale_bias_scalar(float* y, const float* mult, const float* bias,
                                                             int64_t b, int64_t e) {
  for (int64_t i = b; i < e; ++i) {
    float v = y[i] * mult[i];
    if (bias) v = v + bias[i];
    y[i] = v;
  }
}

inline __attribute__((always_inline)) int32_t sum_u8_scalar(const uint8_t* x, int64_t b, int64_t e) {
  int32_t s = 0;
  for (int64_t i = b; i < e; ++i) s += x[i];
  return s;
}

inline __attribute__((always_inline)) void dequantize_s32_scalar(const int32_t* acc, int64_t b, int64_t e,
                                                                 int32_t offset, float mult, float* y) {
  for (int64_t i = b; i < e; ++i) y[i] = static_cast<float>(acc[i] + offset) * mult;
}

void mask_row_avx2(float* g, const uint8_t* mask, int64_t n);
void scale_bias_row_avx2(float* y, const float* mult, const float* bias, int64_t n);
void fake_quant_row_avx2(const float* x, int64_t n, float scale, int32_t z, int32_t qmin, int32_t qmax, float* qi,
                         float* deq, uint8_t* mask, uint8_t* code);
void min_max_row_avx2(const float* x, int64_t n, float* lo, float* hi);
void fake_quant_row_avx512(const float* x, int64_t n, float scale, int32_t z, int32_t qmin, int32_t qmax, float* qi,
                           float* deq, uint8_t* mask, uint8_t* code);
int32_t sum_row_u8_avx512(const uint8_t* x, int64_t n);
void dequantize_row_s32_avx512(const int32_t* acc, int64_t n, int32_t offset, float mult, float* y);

}  // namespace quench::kernels::fqrows
