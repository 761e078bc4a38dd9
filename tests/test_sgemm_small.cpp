// kernels::sgemm_small: every ISA path bit for bit against sgemm_small_ref (one FMA chain per
// element in k order), the ref against a double-accumulating product, strided and transposed A,
// masked column tails, and no write outside C.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/isa.hpp"
#include "kernels/sgemm_small.hpp"

using namespace quench;
using kernels::Isa;

namespace {

std::vector<float> random_vec(size_t n, uint64_t s) {
  std::vector<float> v(n);
  for (auto& x : v) {  // uniform in [-1, 1)
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<int64_t>(s >> 40) - (1 << 23)) / float(1 << 23);
  }
  return v;
}

struct Case {
  int64_t M, N, K;
  bool ta;  // A stored [K, M] and read transposed
};

constexpr float kCanary = 12345.f;

// C (with a canary-filled margin right of every row and below the last) for the active path.
std::vector<float> run_case(const Case& c, const std::vector<float>& a, const std::vector<float>& b, int64_t lda,
                            int64_t ldb, int64_t ldc, bool ref) {
  std::vector<float> out((c.M + 1) * ldc, kCanary);
  const int64_t rs = c.ta ? 1 : lda, ks = c.ta ? lda : 1;
  if (ref)
    kernels::sgemm_small_ref(c.M, c.N, c.K, a.data(), rs, ks, b.data(), ldb, out.data(), ldc);
  else
    kernels::sgemm_small(c.M, c.N, c.K, a.data(), rs, ks, b.data(), ldb, out.data(), ldc);
  return out;
}

}  // namespace

TEST_CASE("sgemm_small: every ISA path equals the reference bit for bit; no write outside C") {
  const Isa saved = kernels::active_isa();
  // attention's shapes (50x50x32, 50x32x50, transposed A), column tails of every width, row remainders
  const Case cases[] = {{50, 50, 32, false}, {50, 32, 50, false}, {50, 32, 50, true}, {1, 1, 1, false},
                        {13, 17, 5, true},   {7, 64, 3, false},   {25, 65, 9, false}, {12, 8, 0, false},
                        {31, 100, 40, true}, {6, 33, 16, false},  {17, 1, 7, true},  {5, 19, 0, false},
                        {9, 35, 4, true}};
  for (const Case& c : cases) {
    CAPTURE(c.M);
    CAPTURE(c.N);
    CAPTURE(c.K);
    CAPTURE(c.ta);
    const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = c.N + 5, ldc = c.N + 2;
    const std::vector<float> a = random_vec((c.ta ? c.K : c.M) * lda, 1 + c.M), b = random_vec(c.K * ldb, 2 + c.N);
    const std::vector<float> want = run_case(c, a, b, lda, ldb, ldc, true);
    // the reference against a double-accumulating product
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) {
        double acc = 0.0, mag = 0.0;
        for (int64_t k = 0; k < c.K; ++k) {
          const double p = double(c.ta ? a[k * lda + i] : a[i * lda + k]) * b[k * ldb + j];
          acc += p;
          mag += std::fabs(p);
        }
        REQUIRE(std::fabs(want[i * ldc + j] - acc) <= (c.K + 2) * 0x1p-23 * mag);
      }
    for (int64_t r = 0; r <= c.M; ++r)
      for (int64_t j = r < c.M ? c.N : 0; j < ldc; ++j) REQUIRE(want[r * ldc + j] == kCanary);
    for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512}) {
      if (static_cast<int>(isa) > static_cast<int>(kernels::cpu_isa())) continue;
      kernels::set_isa(isa);
      CAPTURE(kernels::isa_name(isa));
      CHECK(run_case(c, a, b, lda, ldb, ldc, false) == want);
    }
  }
  kernels::set_isa(saved);
}

TEST_CASE("sgemm_small: equals sgemm's fast paths bit for bit at attention's shapes") {
  // One FMA chain from zero in k order is what sgemm's register tiles compute for K within a K-block,
  // so the fused attention's products round like the composed matmuls.
  const Isa saved = kernels::active_isa();
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(kernels::cpu_isa())) continue;
    kernels::set_isa(isa);
    CAPTURE(kernels::isa_name(isa));
    const int64_t N = 50, hd = 32;
    const std::vector<float> q = random_vec(N * hd, 3), p = random_vec(N * N, 4);
    std::vector<float> want(N * N), got(N * N);
    kernels::sgemm(false, false, N, hd, N, 1.f, p.data(), N, q.data(), hd, 0.f, want.data(), hd);
    kernels::sgemm_small(N, hd, N, p.data(), N, 1, q.data(), hd, got.data(), hd);
    CHECK(std::vector<float>(got.begin(), got.begin() + N * hd) == std::vector<float>(want.begin(), want.begin() + N * hd));
    kernels::sgemm(true, false, N, hd, N, 1.f, p.data(), N, q.data(), hd, 0.f, want.data(), hd);
    kernels::sgemm_small(N, hd, N, p.data(), 1, N, q.data(), hd, got.data(), hd);
    CHECK(std::vector<float>(got.begin(), got.begin() + N * hd) == std::vector<float>(want.begin(), want.begin() + N * hd));
    kernels::sgemm(false, false, N, N, hd, 1.f, q.data(), hd, p.data(), N, 0.f, want.data(), N);
    kernels::sgemm_small(N, N, hd, q.data(), hd, 1, p.data(), N, got.data(), N);
    CHECK(got == want);
  }
  kernels::set_isa(saved);
}
