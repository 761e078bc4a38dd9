#include "kernels/fake_quant_rows.hpp"

#include "kernels/fake_quant_rows_internal.hpp"
#include "kernels/isa.hpp"

namespace quench::kernels {
void fake_quant_row(const float* x, int64_t n, float scale, int32_t z, int32_t qmin, int32_t qmax, float* qi,
                    float* deq, uint8_t* mask, uint8_t* code) {
  if (active_isa() >= Isa::avx512)
    return fqrows::fake_quant_row_avx512(x, n, scale, z, qmin, qmax, qi, deq, mask, code);
  if (active_isa() >= Isa::avx2)
    return fqrows::fake_quant_row_avx2(x, n, scale, z, qmin, qmax, qi, deq, mask, code);
  fqrows::fake_quant_scalar(x, 0, n, scale, 1.0f / scale, z, qmin, qmax, qi, deq, mask, code);
}

void fake_quant_row_ref(const float* x, int64_t n, float scale, int32_t z, int32_t qmin, int32_t qmax,
                        float* qi, float* deq, uint8_t* mask, uint8_t* code) {
  fqrows::fake_quant_scalar(x, 0, n, scale, 1.0f / scale, z, qmin, qmax, qi, deq, mask, code);
}

void min_max_row(const float* x, int64_t n, float* lo, float* hi) {
  if (active_isa() >= Isa::avx2) return fqrows::min_max_row_avx2(x, n, lo, hi);
  fqrows::min_max_scalar(x, 0, n, lo, hi);
}

void min_max_row_ref(const float* x, int64_t n, float* lo, float* hi) { fqrows::min_max_scalar(x, 0, n, lo, hi); }

void mask_row(float* g, const uint8_t* mask, int64_t n) {
  if (active_isa() >= Isa::avx2) return fqrows::mask_row_avx2(g, mask, n);
  fqrows::mask_scalar(g, mask, 0, n);
}

void mask_row_ref(float* g, const uint8_t* mask, int64_t n) { fqrows::mask_scalar(g, mask, 0, n); }

void scale_bias_row(float* y, const float* mult, const float* bias, int64_t n) {
  if (active_isa() >= Isa::avx2) return fqrows::scale_bias_row_avx2(y, mult, bias, n);
  fqrows::scale_bias_scalar(y, mult, bias, 0, n);
}

void scale_bias_row_ref(float* y, const float* mult, const float* bias, int64_t n) {
  fqrows::scale_bias_scalar(y, mult, bias, 0, n);
}

int32_t sum_row_u8(const uint8_t* x, int64_t n) {
  if (active_isa() >= Isa::avx512) return fqrows::sum_row_u8_avx512(x, n);
  return fqrows::sum_u8_scalar(x, 0, n);
}

int32_t sum_row_u8_ref(const uint8_t* x, int64_t n) { return fqrows::sum_u8_scalar(x, 0, n); }

void dequantize_row_s32(const int32_t* acc, int64_t n, int32_t offset, float mult, float* y) {
  if (active_isa() >= Isa::avx512) return fqrows::dequantize_row_s32_avx512(acc, n, offset, mult, y);
  fqrows::dequantize_s32_scalar(acc, 0, n, offset, mult, y);
}

void dequantize_row_s32_ref(const int32_t* acc, int64_t n, int32_t offset, float mult, float* y) {
  fqrows::dequantize_s32_scalar(acc, 0, n, offset, mult, y);
}

}  // namespace quench::kernels
