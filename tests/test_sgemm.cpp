// kernels::sgemm on every ISA path against a double-accumulating reference.
//
// Tolerance: a float dot product of K terms has error at most K * u * sum|a*b| (u = 2^-24), plus a
// couple of roundings for alpha and beta; we allow (K + 4) * 2^-23 * (|alpha| sum|a*b| + |beta c|),
// twice that bound. A wrong index or a dropped k term misses it by orders of magnitude.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/gemm.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"

using namespace quench;
using kernels::Isa;

namespace {

struct Lcg {
  uint64_t s;
  float next() {  // uniform in [-1, 1)
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<int64_t>(s >> 40) - (1 << 23)) / float(1 << 23);
  }
};

std::vector<float> random_vec(size_t n, uint64_t seed) {
  Lcg g{seed};
  std::vector<float> v(n);
  for (auto& x : v) x = g.next();
  return v;
}

// Paths this CPU can run; restores the active ISA when it goes out of scope.
struct IsaRestore {
  Isa saved = kernels::active_isa();
  ~IsaRestore() { kernels::set_isa(saved); }
};
std::vector<Isa> runnable_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(kernels::cpu_isa())) out.push_back(isa);
  return out;
}

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad = 0;  // extra elements per row of A, B and C
  int64_t lda() const { return (ta ? M : K) + pad; }
  int64_t ldb() const { return (tb ? K : N) + pad; }
  int64_t ldc() const { return N + pad; }
  int64_t a_size() const { return (ta ? K : M) * lda() + 1; }
  int64_t b_size() const { return (tb ? N : K) * ldb() + 1; }
  int64_t c_size() const { return M * ldc() + 1; }
};

struct Operands {
  std::vector<float> A, B, C0;
  std::vector<double> ref, bound;  // expected C and its error bound, [M, N]
};

Operands make(const Problem& p, uint64_t seed) {
  Operands o{random_vec(p.a_size(), seed), random_vec(p.b_size(), seed + 1),
             random_vec(p.c_size(), seed + 2), {}, {}};
  o.ref.resize(p.M * p.N);
  o.bound.resize(p.M * p.N);
  for (int64_t i = 0; i < p.M; ++i)
    for (int64_t j = 0; j < p.N; ++j) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < p.K; ++k) {
        double a = p.ta ? o.A[k * p.lda() + i] : o.A[i * p.lda() + k];
        double b = p.tb ? o.B[j * p.ldb() + k] : o.B[k * p.ldb() + j];
        acc += a * b;
        mag += std::fabs(a * b);
      }
      double c = p.beta == 0.f ? 0.0 : double(p.beta) * o.C0[i * p.ldc() + j];
      o.ref[i * p.N + j] = double(p.alpha) * acc + c;
      o.bound[i * p.N + j] =
          double(p.K + 4) * std::ldexp(1.0, -23) * (std::fabs(p.alpha) * mag + std::fabs(c)) + 1e-30;
    }
  return o;
}

std::vector<float> run(const Problem& p, const Operands& o, bool nan_c = false) {
  std::vector<float> C = o.C0;
  if (nan_c) std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
  kernels::sgemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, o.A.data(), p.lda(), o.B.data(), p.ldb(),
                 p.beta, C.data(), p.ldc());
  return C;
}

// Counts elements outside the bound (NaN counts) and checks the padding of C is untouched.
int64_t check(const Problem& p, const Operands& o, const std::vector<float>& C, bool nan_c = false) {
  int64_t bad = 0;
  for (int64_t i = 0; i < p.M; ++i) {
    for (int64_t j = 0; j < p.N; ++j) {
      double err = std::fabs(double(C[i * p.ldc() + j]) - o.ref[i * p.N + j]);
      if (!(err <= o.bound[i * p.N + j])) ++bad;
    }
    for (int64_t j = p.N; j < p.ldc(); ++j) {
      float was = o.C0[i * p.ldc() + j], now = C[i * p.ldc() + j];
      if (nan_c ? !std::isnan(now) : now != was) ++bad;
    }
  }
  return bad;
}

const char* layout(const Problem& p) {
  static const char* names[4] = {"nn", "nt", "tn", "tt"};
  return names[p.ta * 2 + p.tb];
}

void check_all_paths(const Problem& p, uint64_t seed) {
  Operands o = make(p, seed);
  IsaRestore restore;
  for (Isa isa : runnable_isas()) {
    kernels::set_isa(isa);
    CAPTURE(kernels::isa_name(isa));
    CAPTURE(layout(p));
    CAPTURE(p.M);
    CAPTURE(p.N);
    CAPTURE(p.K);
    CAPTURE(p.alpha);
    CAPTURE(p.beta);
    CHECK(check(p, o, run(p, o)) == 0);
  }
}

}  // namespace

TEST_CASE("sgemm: every path matches the double reference over edge shapes and layouts") {
  const int64_t Ms[] = {1, 6, 7, 13, 50};
  const int64_t Ns[] = {1, 15, 16, 17, 50, 64, 65, 130};
  const int64_t Ks[] = {1, 3, 32, 50, 257};
  const float ab[3][2] = {{1.f, 0.f}, {-0.5f, 0.75f}, {2.f, 1.f}};
  int n = 0;
  for (int t = 0; t < 4; ++t)
    for (int64_t M : Ms)
      for (int64_t N : Ns)
        for (int64_t K : Ks) {
          Problem p{t / 2 == 1, t % 2 == 1, M, N, K, ab[n % 3][0], ab[n % 3][1], n % 5 == 0 ? 3 : 0};
          check_all_paths(p, 100 + n++);
        }
}

TEST_CASE("sgemm: blocked shapes cross the KC, NC and MC blocks and the thread split") {
  // K > KC (256), N > NC (512), M > MC (96, A packed when stored transposed), primes; small M with
  // large N and K (B read in place or packed per thread); 8 rows over three K blocks of the one-pass
  // tiles.
  const int64_t shapes[][3] = {{97, 521, 529}, {8, 600, 300}, {32, 130, 770}, {131, 67, 260}, {8, 70, 1700}};
  int n = 0;
  for (auto& s : shapes)
    for (int t = 0; t < 4; ++t) {
      Problem p{t / 2 == 1, t % 2 == 1, s[0], s[1], s[2], n % 2 ? 1.f : 0.5f, n % 3 ? 0.f : -1.f, 1};
      check_all_paths(p, 500 + n++);
    }
  // A stored transposed with a row stride of 64 floats: the micro-panel copy made on the fly.
  check_all_paths(Problem{true, false, 64, 300, 70, 1.f, 0.5f, 0}, 900);
  check_all_paths(Problem{true, true, 61, 260, 33, 1.f, 0.f, 3}, 901);
  // A few micro-panels (up to 6 on AVX-512) read an in-place B unpacked, unless its rows are a
  // multiple of 2 KiB apart. On one thread (one rectangle): ldb 1024 (packed), 500 (in place), 7
  // micro-panels (packed).
  const int saved_threads = get_num_threads();
  set_num_threads(1);
  check_all_paths(Problem{false, false, 30, 1000, 300, 1.f, 0.f, 24}, 902);
  check_all_paths(Problem{true, false, 36, 500, 300, 1.f, 0.5f, 0}, 903);
  check_all_paths(Problem{false, false, 37, 500, 300, -1.f, 0.f, 0}, 904);
  set_num_threads(saved_threads);
}

TEST_CASE("sgemm: beta == 0 never reads C and K == 0 scales C") {
  IsaRestore restore;
  for (Isa isa : runnable_isas()) {
    kernels::set_isa(isa);
    CAPTURE(kernels::isa_name(isa));
    for (int t = 0; t < 4; ++t) {
      Problem p{t / 2 == 1, t % 2 == 1, 19, 37, 40, 1.5f, 0.f, 2};
      Operands o = make(p, 7 + t);
      CHECK(check(p, o, run(p, o, true), true) == 0);
    }
    Problem z{false, false, 5, 9, 0, 1.f, 0.f, 1};  // K == 0, beta == 0: zeros even over NaN
    Operands oz = make(z, 3);
    CHECK(check(z, oz, run(z, oz, true), true) == 0);
    Problem zb{false, true, 5, 9, 0, 1.f, -2.f, 0};  // K == 0: C = beta * C
    Operands ozb = make(zb, 4);
    CHECK(check(zb, ozb, run(zb, ozb)) == 0);
    Problem a0{true, false, 4, 20, 7, 0.f, 0.5f, 0};  // alpha == 0: C = beta * C
    Operands oa0 = make(a0, 5);
    CHECK(check(a0, oa0, run(a0, oa0)) == 0);
    float c = 1.f;  // M == 0 and N == 0 touch nothing
    kernels::sgemm(false, false, 0, 1, 1, 1.f, &c, 1, &c, 1, 0.f, &c, 1);
    kernels::sgemm(false, false, 1, 0, 1, 1.f, &c, 1, &c, 1, 0.f, &c, 1);
    CHECK(c == 1.f);
  }
  CHECK_THROWS_AS(kernels::sgemm(false, false, -1, 2, 2, 1.f, nullptr, 2, nullptr, 2, 0.f, nullptr, 2),
                  std::invalid_argument);
}

TEST_CASE("sgemm: results are bit-identical for 1 and 2 threads and inside a parallel region") {
  const int saved_threads = get_num_threads();
  IsaRestore restore;
  const int64_t shapes[][3] = {{200, 130, 90}, {8, 770, 400}, {64, 64, 600}, {32, 500, 300}};
  for (Isa isa : runnable_isas()) {
    kernels::set_isa(isa);
    for (auto& s : shapes)
      for (int t = 0; t < 4; ++t) {
        Problem p{t / 2 == 1, t % 2 == 1, s[0], s[1], s[2], 1.f, 0.f, 0};
        CAPTURE(kernels::isa_name(isa));
        CAPTURE(layout(p));
        CAPTURE(p.M);
        Operands o{random_vec(p.a_size(), 11), random_vec(p.b_size(), 12),
                   random_vec(p.c_size(), 13), {}, {}};
        set_num_threads(1);
        std::vector<float> c1 = run(p, o);
        set_num_threads(2);
        std::vector<float> c2 = run(p, o);
        CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
        // Called from a parallel region (batched attention) it runs serially: same bits again.
        std::vector<float> c3[2];
        kernels::parallel_for(2, 1, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) c3[i] = run(p, o);
        });
        CHECK(std::memcmp(c1.data(), c3[0].data(), c1.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(c1.data(), c3[1].data(), c1.size() * sizeof(float)) == 0);
      }
  }
  set_num_threads(saved_threads);
}

TEST_CASE("sgemm: the bias epilogue rounds exactly as C pre-filled with the bias and beta == 1") {
  // Shapes reach every tile kind: NT with few rows (dot tiles), K over several KC blocks (the bias
  // only in the first), ragged N (masked last vectors), K == 0 (C = bias).
  const int64_t shapes[][3] = {{7, 65, 50}, {8, 70, 1600}, {20, 33, 300}, {50, 130, 700}, {97, 17, 3}, {5, 9, 0}};
  IsaRestore restore;
  int n = 0;
  for (Isa isa : runnable_isas()) {
    kernels::set_isa(isa);
    for (auto& s : shapes)
      for (int t = 0; t < 4; ++t) {
        Problem p{t / 2 == 1, t % 2 == 1, s[0], s[1], s[2], 1.f, 1.f, n % 2 ? 3 : 0};
        CAPTURE(kernels::isa_name(isa));
        CAPTURE(layout(p));
        CAPTURE(p.M);
        CAPTURE(p.N);
        CAPTURE(p.K);
        Operands o = make(p, 40 + n++);
        const std::vector<float> bias = random_vec(p.N, 77);
        std::vector<float> prefilled = o.C0, fused = o.C0;
        for (int64_t i = 0; i < p.M; ++i)
          for (int64_t j = 0; j < p.N; ++j) prefilled[i * p.ldc() + j] = bias[j];
        kernels::sgemm(p.ta, p.tb, p.M, p.N, p.K, 1.f, o.A.data(), p.lda(), o.B.data(), p.ldb(), 1.f,
                       prefilled.data(), p.ldc());
        for (int64_t i = 0; i < p.M; ++i)  // beta == 0 never reads C; the padding keeps its values
          for (int64_t j = 0; j < p.N; ++j) fused[i * p.ldc() + j] = std::numeric_limits<float>::quiet_NaN();
        kernels::sgemm(p.ta, p.tb, p.M, p.N, p.K, 1.f, o.A.data(), p.lda(), o.B.data(), p.ldb(), 0.f,
                       fused.data(), p.ldc(), bias.data());
        CHECK(std::memcmp(prefilled.data(), fused.data(), fused.size() * sizeof(float)) == 0);
      }
  }
}
