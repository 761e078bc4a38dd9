// Internal to the u8s4 GEMM: the validated job every path receives, the per-ISA entry points and
// the scalar epilogue each path mirrors. Compiled with -ffp-contract=off (meson.build) like
// everything else, so no a*b+c becomes an FMA on one path and not another.
#pragma once
#include <cstdint>

#include "kernels/gemm_u8s4.hpp"

namespace quench::kernels::u8s4 {

struct Job {
  int64_t M, N, K;
  const uint8_t* A;  // bytes; int8 when a_signed
  int64_t lda;
  bool a_signed;
  int32_t za;          // per-tensor zero point
  const int32_t* zas;  // [M] per-row zero points, or null
  const PackedWeightsU8S4* W;
  U8S4Output out;
  void* C;
  int64_t ldc;
  // f32 epilogue. Scales are transposed group-major here ([ng][N], so 16 channels of one group are
  // one vector load): mult[g*N + n] = a_scale * w_scale[n*ng + g] when the activation scale is per
  // tensor; with per-row scales (ass) ws[g*N + n] = w_scale[n*ng + g] and the product is formed per
  // row, the same float multiplication.
  const float* mult;  // [ng][N] or null
  const float* ass;   // [M] or null
  const float* ws;    // [ng][N] (with ass) or null
  const float* bias;  // [N] or null
  const float* res;   // [M,N] row stride ldr, or null
  int64_t ldr;

  int32_t zero_point(int64_t m) const { return zas ? zas[m] : za; }
  // The epilogue multiplier of (m, n, g).
  float multiplier(int64_t m, int64_t n, int64_t g) const { return ass ? ass[m] * ws[g * N + n] : mult[g * N + n]; }
};

void gemm_vnni(const Job& job);  // vnni layout, AVX-512 VNNI
void gemm_avx2(const Job& job);  // avx2 layout, AVX2 (also the avx512 level)
void gemm_ref(const Job& job);

namespace {

// The f32 epilogue of one output from its ng group accumulators (kernels/gemm_u8s4.hpp).
inline float epilogue_scalar(const Job& job, int64_t m, int64_t n, const int32_t* acc, int64_t ng) {
  float y = static_cast<float>(acc[0]) * job.multiplier(m, n, 0);
  for (int64_t g = 1; g < ng; ++g) y = y + static_cast<float>(acc[g]) * job.multiplier(m, n, g);
  if (job.bias) y = y + job.bias[n];
  if (job.res) y = job.res[m * job.ldr + n] + y;
  return y;
}

}  // namespace
}  // namespace quench::kernels::u8s4
