// The reference u8s4 GEMM: plain loops, int64 sums per group, the scalar epilogue of
// gemm_u8s4_internal.hpp.
#include <algorithm>
#include <vector>

#include "kernels/gemm_u8s4_internal.hpp"

namespace quench::kernels::u8s4 {

void gemm_ref(const Job& job) {
  const PackedWeightsU8S4& W = *job.W;
  const int64_t N = job.N, K = job.K, G = W.group_k, ng = W.num_groups;
  std::vector<int8_t> w(N * K);  // W read back from the packed layout, [N,K]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) w[n * K + k] = W.weight(n, k);
  std::vector<int32_t> acc(ng);
  for (int64_t m = 0; m < job.M; ++m) {
    const uint8_t* a = job.A + m * job.lda;
    const int64_t za = job.zero_point(m);
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t g = 0; g < ng; ++g) {
        int64_t s = 0;
        for (int64_t k = g * G; k < std::min(K, (g + 1) * G); ++k) {
          const int64_t av = job.a_signed ? int64_t(static_cast<int8_t>(a[k])) : int64_t(a[k]);
          s += (av - za) * w[n * K + k];
        }
        acc[g] = static_cast<int32_t>(s);  // |s| <= 255 * 8 * 65536 < 2^31
      }
      if (job.out == U8S4Output::s32)
        static_cast<int32_t*>(job.C)[m * job.ldc + n] = acc[0];
      else
        static_cast<float*>(job.C)[m * job.ldc + n] = epilogue_scalar(job, m, n, acc.data(), ng);
    }
  }
}

}  // namespace quench::kernels::u8s4
