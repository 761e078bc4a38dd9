// The reference u8s8 GEMM: plain loops, int64 sums, the scalar epilogue of gemm_u8s8_internal.hpp.
#include <vector>

#include "kernels/gemm_u8s8_internal.hpp"

namespace quench::kernels::u8s8 {

// One output element: acc = sum_k (a - z_a) * w in int64 (fits int32 for K <= 65536), then the
// epilogue.
void gemm_ref(const Job& job) {
  std::vector<int8_t> w(job.N * job.K);  // W read back from the packed layout, [N,K]
  for (int64_t n = 0; n < job.N; ++n)
    for (int64_t k = 0; k < job.K; ++k) w[n * job.K + k] = job.W->weight(n, k);
  for (int64_t m = 0; m < job.M; ++m) {
    const uint8_t* a = job.A + m * job.lda;
    for (int64_t n = 0; n < job.N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < job.K; ++k) {
        int64_t av = job.a_signed ? int64_t(static_cast<int8_t>(a[k])) : int64_t(a[k]);
        acc += (av - job.za) * w[n * job.K + k];
      }
      const int32_t acc32 = static_cast<int32_t>(acc);
      switch (job.out) {
        case U8S8Output::s32:
          static_cast<int32_t*>(job.C)[m * job.ldc + n] = acc32;
          break;
        case U8S8Output::f32:
        case U8S8Output::f32_gelu: {
          float y = static_cast<float>(acc32) * job.mult[n];
          if (job.bias) y = y + job.bias[n];
          if (job.out == U8S8Output::f32_gelu) y = gelu_scalar(y);
          if (job.res) y = job.res[m * job.ldr + n] + y;
          static_cast<float*>(job.C)[m * job.ldc + n] = y;
          break;
        }
        case U8S8Output::u8:
          static_cast<uint8_t*>(job.C)[m * job.ldc + n] = requant_u8(acc32, job.mult[n], job.zy);
          break;
      }
    }
  }
}

}  // namespace quench::kernels::u8s8
