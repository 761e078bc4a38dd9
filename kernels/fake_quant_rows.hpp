// The row passes of fake quantization (quant/fake_quantize, quant/qat_linear_op, quant/observer):
// fake-quantize a row, and a row's min / max. Both run once per activation element per Linear in a
// QAT step (and fake_quant_row on every operand of a quantized attention's products, in cache), so
// they are vectorized; the _ref twins are plain loops and every path is bit-exact with
// them (tests/test_fake_quant_rows.cpp). Single-threaded: callers split rows / chunks over threads.
#pragma once
#include <cstdint>

namespace quench::kernels {

// One row of n values under (scale, zero_point, [qmin, qmax]), the project's one rounding rule
// (quant/qparams.hpp, PyTorch's arithmetic): inv = 1.0f / scale, r = nearbyint(x * inv) (ties to
// even), rc = clamp(r, qmin - z, qmax - z) with NaN -> qmin - z. Writes (each output may be null):
//   qi[i]   = float(q - z) = rc, an exact small integer (+0, never -0), an fp32 GEMM's operand
//   deq[i]  = qi[i] * scale, fake_quantize's value
//   mask[i] = 1 when the unclamped r + z (in float) lies in [qmin, qmax], else 0 (the STE mask)
//   code[i] = the low byte of the integer code q = rc + z: the u8 value, or the s8 value in two's
//             complement (meaningful when [qmin, qmax] lies in [-128, 255]), the int8 GEMM's operand
// Defined for any arguments (callers validate scales and zero points); n >= 0.
void fake_quant_row(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin, int32_t qmax,
                    float* qi, float* deq, uint8_t* mask, uint8_t* code = nullptr);
void fake_quant_row_ref(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmin,
                        int32_t qmax, float* qi, float* deq, uint8_t* mask, uint8_t* code = nullptr);

// Folds x[0, n) into the running *lo / *hi as the loop `if (x < lo) lo = x; if (x > hi) hi = x;`
// does: NaN is skipped, and among equal values (+0 / -0) the first one seen is kept.
void min_max_row(const float* x, int64_t n, float* lo, float* hi);
void min_max_row_ref(const float* x, int64_t n, float* lo, float* hi);

// The QAT Linear's other row passes (quant/qat_linear_op.cpp), bit-exact with their _ref twins:
// g[i] = mask[i] ? g[i] : 0, the STE's clamp mask on a gradient row (NaN kept where the mask is 1);
void mask_row(float* g, const uint8_t* mask, int64_t n);
void mask_row_ref(float* g, const uint8_t* mask, int64_t n);
// y[i] = y[i] * mult[i], then + bias[i] when bias is given: the int8 GEMM's f32 epilogue on a float
// row, the same two roundings.
void scale_bias_row(float* y, const float* mult, const float* bias, int64_t n);
void scale_bias_row_ref(float* y, const float* mult, const float* bias, int64_t n);

// The integer-grid product's row passes (quant/grid_product.cpp): the exact sum of a row of codes
// (n < 2^23), and y[i] = float(acc[i] + offset) * mult (one conversion, one rounding product).
int32_t sum_row_u8(const uint8_t* x, int64_t n);
int32_t sum_row_u8_ref(const uint8_t* x, int64_t n);
void dequantize_row_s32(const int32_t* acc, int64_t n, int32_t offset, float mult, float* y);
void dequantize_row_s32_ref(const int32_t* acc, int64_t n, int32_t offset, float mult, float* y);

}  // namespace quench::kernels
