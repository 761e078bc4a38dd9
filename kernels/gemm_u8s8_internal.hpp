// Internal to the u8s8 GEMM: the validated job every path receives, the per-ISA entry points, and
// the scalar epilogue math each path mirrors. Every .cpp that includes this is compiled with
// -ffp-contract=off so no a*b+c becomes an FMA on one path and not another. The helpers live in an
// anonymous namespace: each ISA's TU gets its own copy, so the linker can never hand the baseline
// code an AVX-512 instantiation.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/gemm_u8s8.hpp"

namespace quench::kernels::u8s8 {

struct Job {
  int64_t M, N, K;
  const uint8_t* A;  // bytes; int8 when a_signed
  int64_t lda;
  bool a_signed;
  int32_t za;
  const PackedWeightsU8S8* W;
  U8S8Output out;
  void* C;
  int64_t ldc;
  const float* mult;  // [N] per-channel multiplier (epilogues), see gemm_u8s8.hpp
  const float* bias;  // [N] or null
  float zy;           // y zero point as float (u8 output)
  const float* res;   // [M,N] row stride ldr, or null (f32 output)
  int64_t ldr;
};

// Where a micro-kernel leaves its mr x NR tile: C's element at the tile's first row and channel
// (int32, float or uint8 by the kernel's output kind), the row stride, and for the epilogues the
// job's mult / bias from the tile's first channel (bias may be null), zy, and the residual's element
// at the tile's first row and channel (null: none) with its row stride.
struct TileOut {
  void* c;
  int64_t ldc;
  const float* mult;
  const float* bias;
  float zy;
  const float* res = nullptr;
  int64_t ldr = 0;
};

void gemm_vnni(const Job& job);      // vnni layout, AVX-512 VNNI
void gemm_avx_vnni(const Job& job);  // vnni16 layout, AVX-VNNI
void gemm_avx2(const Job& job);  // i16 layout, AVX2 (also the avx512 level)
void gemm_ref(const Job& job);
// One vnni panel (64 channels of [Kp/4][64][4] bytes, zero filled beforehand) from nc <= 64
// channels: W rows (ldw bytes apart, K each) or, for the _kn form, Wt rows (one per k, ldwt bytes
// apart, nc channels each). The bytes of the generic loop in gemm_u8s8.cpp; column sums not included.
void pack_panel_vnni_avx512(const int8_t* W, int64_t nc, int64_t K, int64_t ldw, uint8_t* dst);
void pack_panel_vnni_kn_avx512(const int8_t* Wt, int64_t nc, int64_t K, int64_t ldwt, uint8_t* dst);
// q = clamp(nearbyint(x * inv_scale) + zero_point, 0, 255), NaN -> 0; zero_point in [0, 255]
// (check_quant): the AVX-512 path's integer clamp relies on it.
void quantize_row_avx2(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* y);
// The same in zmm (compiled in the VNNI TU, so dispatched at the avx512_vnni level only).
void quantize_row_avx512(const float* x, int64_t n, float inv_scale, int32_t zero_point, uint8_t* y);
// The epilogue of one row segment: acc[0..cnt) are columns n0.. of row m. Used by both SIMD paths.
void epilogue_row_avx2(const Job& job, int64_t m, int64_t n0, int64_t cnt, const int32_t* acc);

namespace {

// PyTorch's clamp order in float: NaN -> lo (what maxps(x, lo) gives), then hi.
inline float clamp_0_255(float t) {
  t = t > 0.f ? t : 0.f;
  return t < 255.f ? t : 255.f;
}

inline uint8_t requant_u8(int32_t acc, float mult, float zy) {
  float f = static_cast<float>(acc) * mult;
  float t = std::nearbyint(f) + zy;
  return static_cast<uint8_t>(static_cast<int32_t>(clamp_0_255(t)));
}

// Cephes expf on [-16, 0] (the only range erf_approx asks for), every step a separate rounding.
inline float exp_neg16(float x) {
  float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float z = r * r;
  float y = 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * z + r;
  y = y + 1.f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return y * scale;
}

// Abramowitz-Stegun 7.1.26 as PyTorch's Vectorized<float>::erf, |x| clamped to 4 (erf(4) rounds to
// 1).
inline float erf_approx(float x) {
  float ax = std::fabs(x);
  ax = ax < 4.f ? ax : 4.f;
  float t = 1.f / (0.3275911f * ax + 1.f);
  float r = 1.061405429f * t + -1.453152027f;
  r = r * t + 1.421413741f;
  r = r * t + -0.284496736f;
  r = r * t + 0.254829592f;
  float e = exp_neg16(-(ax * ax));
  float v = 1.f - (e * r) * t;
  return std::signbit(x) ? -v : v;
}

inline uint8_t quantize_u8(float x, float inv_scale, float zf) {
  float v = x * inv_scale;
  return static_cast<uint8_t>(static_cast<int32_t>(clamp_0_255(std::nearbyint(v) + zf)));
}

inline float gelu_scalar(float x) { return (0.5f * x) * (1.f + erf_approx(x * 0.70710678f)); }

}  // namespace
}  // namespace quench::kernels::u8s8
