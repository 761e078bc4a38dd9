// The u8s4 GEMM: packing (nibbles and per-group column sums), the reference against plain int64
// sums on the raw weights, every ISA path bit-exact against the reference (s32 and the f32
// epilogues, per channel and per group, per-tensor and per-row activation qparams, u8 and s8
// activations, 1 and 2 threads), extreme values up to K = 65536, the one-group epilogue against
// the u8s8 GEMM's, and the argument checks.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "kernels/gemm_u8s4.hpp"
#include "kernels/gemm_u8s8.hpp"
#include "kernels/parallel.hpp"

using namespace quench::kernels;

namespace {

struct IsaGuard {
  Isa saved = active_isa();
  int threads = quench::get_num_threads();
  ~IsaGuard() {
    set_isa(saved);
    quench::set_num_threads(threads);
  }
};

std::vector<Isa> levels() {
  std::vector<Isa> v;
  for (int i = 0; i <= static_cast<int>(cpu_isa()); ++i) v.push_back(static_cast<Isa>(i));
  return v;
}

template <class T>
std::vector<T> random_ints(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}

// A problem: A [M,K] (stride lda), W [N,K] in [-8, 7], C [M,N] (stride ldc), groups of G (0: per
// channel), per-tensor or per-row activation qparams.
struct Problem {
  int64_t M, N, K, G, lda, ldc;
  std::vector<uint8_t> A;
  std::vector<int8_t> W;
  bool a_signed = false, per_row = false;
  int32_t za = 0;
  std::vector<int32_t> zas;
  std::vector<float> w_scale, bias, a_scales, residual;
  int64_t groups() const { return G ? (K + G - 1) / G : 1; }
};

Problem make_problem(int64_t M, int64_t N, int64_t K, int64_t G, uint32_t seed, bool a_signed = false, int32_t za = 0,
                     bool per_row = false) {
  Problem p{M, N, K, G, K + 3, N + 5, {}, {}, a_signed, per_row, za, {}, {}, {}, {}, {}};
  p.A = random_ints<uint8_t>(M * p.lda, 0, 255, seed);
  p.W = random_ints<int8_t>(N * K, -8, 7, seed + 1);
  std::mt19937 g(seed + 2);
  std::uniform_real_distribution<float> ds(0.001f, 0.02f), db(-2.f, 2.f), da(0.01f, 0.1f);
  std::uniform_int_distribution<int> dz(a_signed ? -128 : 0, a_signed ? 127 : 255);
  for (int64_t i = 0; i < N * p.groups(); ++i) p.w_scale.push_back(ds(g));
  for (int64_t n = 0; n < N; ++n) p.bias.push_back(db(g));
  for (int64_t m = 0; m < M; ++m) {
    p.a_scales.push_back(da(g));
    p.zas.push_back(dz(g));
  }
  for (int64_t i = 0; i < M * p.ldc; ++i) p.residual.push_back(db(g));
  return p;
}

struct Variant {
  U8S4Output out = U8S4Output::f32;
  bool bias = true, residual = false;
};

GemmU8S4Args args_for(const Problem& p, const PackedWeightsU8S4& pw, const Variant& v, void* C) {
  GemmU8S4Args a;
  a.M = p.M;
  a.A = p.A.data();
  a.lda = p.lda;
  a.a_signed = p.a_signed;
  a.a_zero_point = p.za;
  if (p.per_row) {
    a.a_zero_points = p.zas.data();
    a.a_scales = p.a_scales.data();
  }
  a.W = &pw;
  a.out = v.out;
  a.C = C;
  a.ldc = p.ldc;
  a.a_scale = 0.05f;
  a.w_scale = p.w_scale.data();
  a.bias = v.bias ? p.bias.data() : nullptr;
  if (v.residual) {
    a.residual = p.residual.data();
    a.ldr = p.ldc;
  }
  return a;
}

// Runs the problem on the given level (packing for it) or the reference; C's bytes, padding included
// (filled with 0xAB first, so writes past N show).
std::vector<uint8_t> run(const Problem& p, const Variant& v, Isa level, bool ref) {
  set_isa(level);
  PackedWeightsU8S4 pw = pack_weights_u8s4(p.W.data(), p.N, p.K, p.K, p.G, level);
  std::vector<uint8_t> C(p.M * p.ldc * 4, 0xAB);
  GemmU8S4Args a = args_for(p, pw, v, C.data());
  if (ref)
    gemm_u8s4_ref(a);
  else
    gemm_u8s4(a);
  return C;
}

// sum over group g of (a - z_a[m]) * W[n,k] in int64 on the raw inputs: [M][N][groups].
std::vector<int64_t> naive(const Problem& p) {
  const int64_t ng = p.groups(), G = p.G ? p.G : p.K;
  std::vector<int64_t> c(p.M * p.N * ng, 0);
  for (int64_t m = 0; m < p.M; ++m) {
    const int64_t za = p.per_row ? p.zas[m] : p.za;
    for (int64_t n = 0; n < p.N; ++n)
      for (int64_t k = 0; k < p.K; ++k) {
        const int64_t a = p.a_signed ? int64_t(int8_t(p.A[m * p.lda + k])) : int64_t(p.A[m * p.lda + k]);
        c[(m * p.N + n) * ng + k / G] += (a - za) * p.W[n * p.K + k];
      }
  }
  return c;
}

template <class T>
T at(const std::vector<uint8_t>& C, const Problem& p, int64_t m, int64_t n) {
  T v;
  std::memcpy(&v, C.data() + (m * p.ldc + n) * 4, 4);
  return v;
}

// Every path (1 and 2 threads) against the reference, byte for byte.
void check_paths(const Problem& p, const Variant& v) {
  const std::vector<uint8_t> want = run(p, v, Isa::ref, true);
  for (int threads : {1, 2}) {
    quench::set_num_threads(threads);
    for (Isa level : levels()) {
      CAPTURE(isa_name(level));
      CAPTURE(threads);
      CHECK(run(p, v, level, false) == want);
    }
  }
}

}  // namespace

TEST_CASE("gemm_u8s4: packing keeps every weight, the nibbles and the per-group column sums, both layouts") {
  IsaGuard guard;
  auto W = random_ints<int8_t>(70 * 45, -8, 7, 5);
  for (Isa level : {Isa::avx2, Isa::avx512_vnni})
    for (int64_t G : {0, 8, 16, 32}) {
      CAPTURE(isa_name(level));
      CAPTURE(G);
      PackedWeightsU8S4 pw = pack_weights_u8s4(W.data(), 70, 45, 45, G, level);
      CHECK(pw.Kp == 48);
      CHECK(pw.num_groups == (G ? (45 + G - 1) / G : 1));
      CHECK(pw.layout == (level == Isa::avx512_vnni ? U8S4Layout::vnni : U8S4Layout::avx2));
      CHECK(reinterpret_cast<uintptr_t>(pw.buf.get()) % 64 == 0);
      CHECK(pw.panel_bytes % 64 == 0);
      bool same = true;
      for (int64_t n = 0; n < 70; ++n) {
        std::vector<int32_t> s(pw.num_groups, 0);
        for (int64_t k = 0; k < 45; ++k) {
          same = same && pw.weight(n, k) == W[n * 45 + k];
          s[G ? k / G : 0] += W[n * 45 + k];
        }
        for (int64_t g = 0; g < pw.num_groups; ++g) same = same && pw.colsum(n, g) == s[g];
        for (int64_t k = 45; k < 48; ++k) same = same && pw.weight(n, k) == 0;  // padded k
      }
      CHECK(same);
      // Padded channels are zero, weights and sums.
      CHECK(pw.colsum(pw.num_panels() * pw.nr - 1, pw.num_groups - 1) == 0);
      CHECK(pw.weight(pw.num_panels() * pw.nr - 1, 3) == 0);
      // Half a byte per weight (plus the sums).
      CHECK(pw.panel_bytes < pw.Kp * pw.nr / 2 + pw.num_groups * pw.nr * 4 + 64);
    }
  // The vnni layout's nibble order, spelled out: byte [j][c][i] of block 0 = W[16j+c, i] | W[16j+c, 4+i] << 4.
  PackedWeightsU8S4 pv = pack_weights_u8s4(W.data(), 70, 45, 45, 0, Isa::avx512_vnni);
  const int n = 16 * 2 + 5, i = 3;
  CHECK(pv.panel(0)[(2 * 16 + 5) * 4 + i] == uint8_t((W[n * 45 + i] & 15) | (W[n * 45 + 4 + i] & 15) << 4));
  const std::vector<int8_t> w8{0, 8};
  CHECK_THROWS_WITH_AS(pack_weights_u8s4(w8.data(), 1, 2, 2), doctest::Contains("outside the s4 range"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(pack_weights_u8s4(W.data(), 70, 45, 45, 12), doctest::Contains("multiple of 8"),
                       std::invalid_argument);
  CHECK_THROWS_AS(pack_weights_u8s4(W.data(), 70, 45, 44), std::invalid_argument);
}

TEST_CASE("gemm_u8s4: the reference equals plain int64 sums on the raw weights (s32 and per-group f32)") {
  IsaGuard guard;
  for (auto [M, N, K, za, sgn] : {std::tuple{5, 9, 7, 0, false}, std::tuple{3, 70, 33, 131, false},
                                  std::tuple{4, 20, 19, -5, true}}) {
    Problem p = make_problem(M, N, K, 0, 11 + M, sgn, za);
    std::vector<uint8_t> C = run(p, {U8S4Output::s32, false, false}, Isa::ref, true);
    std::vector<int64_t> want = naive(p);
    bool same = true;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) same = same && at<int32_t>(C, p, m, n) == want[m * N + n];
    CHECK(same);
  }
  // Per group, per-row qparams: the f32 epilogue written out on the int64 sums.
  for (bool per_row : {false, true}) {
    Problem p = make_problem(6, 21, 100, 32, 41, false, 7, per_row);
    std::vector<uint8_t> C = run(p, {U8S4Output::f32, true, true}, Isa::ref, true);
    std::vector<int64_t> s = naive(p);
    bool same = true;
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t n = 0; n < p.N; ++n) {
        const float sa = per_row ? p.a_scales[m] : 0.05f;
        float y = 0;
        for (int64_t g = 0; g < 4; ++g) {
          const float t = static_cast<float>(s[(m * p.N + n) * 4 + g]) * (sa * p.w_scale[n * 4 + g]);
          y = g == 0 ? t : y + t;
        }
        y = y + p.bias[n];
        y = p.residual[m * p.ldc + n] + y;
        same = same && at<float>(C, p, m, n) == y;
      }
    CHECK(same);
  }
}

TEST_CASE("gemm_u8s4: every path is bit-exact against the reference over a shape sweep (s32, per channel)") {
  IsaGuard guard;
  uint32_t seed = 100;
  for (int64_t M : {1, 2, 7, 13, 50})
    for (int64_t N : {1, 17, 67, 130})
      for (int64_t K : {1, 3, 8, 31, 128, 259}) {
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        ++seed;
        Problem p = make_problem(M, N, K, 0, seed, false, int32_t(seed % 3 == 0 ? 0 : seed % 256));
        check_paths(p, {U8S4Output::s32, false, false});
      }
}

TEST_CASE("gemm_u8s4: f32 epilogues per channel and per group (K not a multiple of G), bias, residual, every path") {
  IsaGuard guard;
  uint32_t seed = 500;
  for (auto shape : {std::tuple{1, 1, 1}, std::tuple{7, 67, 129}, std::tuple{13, 130, 100}, std::tuple{3, 8, 768},
                     std::tuple{2, 64, 64}})
    for (int64_t G : {0, 8, 32, 64, 128})
      for (bool sgn : {false, true}) {
        const int64_t M = std::get<0>(shape), N = std::get<1>(shape), K = std::get<2>(shape);
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        CAPTURE(G);
        CAPTURE(sgn);
        Problem p = make_problem(M, N, K, G, ++seed, sgn, sgn ? -3 : 140);
        check_paths(p, {U8S4Output::f32, true, false});
        check_paths(p, {U8S4Output::f32, false, true});
      }
}

TEST_CASE("gemm_u8s4: per-row (dynamic per-token) zero points and scales, every path") {
  IsaGuard guard;
  uint32_t seed = 700;
  for (auto shape : {std::tuple{1, 40, 64}, std::tuple{5, 70, 97}, std::tuple{19, 130, 256}})
    for (int64_t G : {0, 32, 128})
      for (bool sgn : {false, true}) {
        const int64_t M = std::get<0>(shape), N = std::get<1>(shape), K = std::get<2>(shape);
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        CAPTURE(G);
        CAPTURE(sgn);
        Problem p = make_problem(M, N, K, G, ++seed, sgn, 0, true);
        check_paths(p, {U8S4Output::f32, true, true});
        if (G == 0) check_paths(p, {U8S4Output::s32, false, false});
      }
  // Rows with equal zero points among unequal ones (the kernels' uniform shortcut per row group).
  Problem p = make_problem(13, 33, 40, 8, 900, false, 0, true);
  for (int64_t m = 0; m < 6; ++m) p.zas[m] = 9;
  check_paths(p, {U8S4Output::f32, true, false});
}

TEST_CASE("gemm_u8s4: extreme values at K = 65536 stay exact on every path") {
  IsaGuard guard;
  for (auto c : {std::tuple{255, -8, 0, false}, std::tuple{0, 7, 255, false}, std::tuple{-128, -8, 127, true},
                 std::tuple{127, -8, -128, true}}) {
    const int a = std::get<0>(c), w = std::get<1>(c), za = std::get<2>(c);
    const bool sgn = std::get<3>(c);
    CAPTURE(a);
    CAPTURE(w);
    Problem p = make_problem(3, 70, 65536, 0, 9, sgn, za);
    std::fill(p.A.begin(), p.A.end(), static_cast<uint8_t>(a));
    std::fill(p.W.begin(), p.W.end(), static_cast<int8_t>(w));
    const int32_t exact = int32_t(int64_t(a - za) * w * 65536);
    for (Isa level : levels()) {
      CAPTURE(isa_name(level));
      std::vector<uint8_t> C = run(p, {U8S4Output::s32, false, false}, level, false);
      bool all = true;
      for (int64_t m = 0; m < p.M; ++m)
        for (int64_t n = 0; n < p.N; ++n) all = all && at<int32_t>(C, p, m, n) == exact;
      CHECK(all);
    }
  }
  // Random full-range values at large K, per channel and per group.
  check_paths(make_problem(7, 33, 4099, 0, 21, false, 128), {U8S4Output::s32, false, false});
  check_paths(make_problem(7, 33, 4099, 128, 22, true, -128), {U8S4Output::f32, true, false});
}

TEST_CASE("gemm_u8s4: one group's f32 epilogue is the u8s8 GEMM's, bit for bit") {
  IsaGuard guard;
  Problem p = make_problem(9, 70, 200, 0, 31, false, 17);
  std::vector<uint8_t> C4 = run(p, {U8S4Output::f32, true, true}, cpu_isa(), false);
  PackedWeightsU8S8 pw8 = pack_weights_u8s8(p.W.data(), p.N, p.K, p.K);
  std::vector<uint8_t> C8(C4.size(), 0xAB);
  GemmU8S8Args a;
  a.M = p.M;
  a.A = p.A.data();
  a.lda = p.lda;
  a.a_zero_point = p.za;
  a.W = &pw8;
  a.out = U8S8Output::f32;
  a.C = C8.data();
  a.ldc = p.ldc;
  a.a_scale = 0.05f;
  a.w_scale = p.w_scale.data();
  a.bias = p.bias.data();
  a.residual = p.residual.data();
  a.ldr = p.ldc;
  gemm_u8s8(a);
  CHECK(C4 == C8);
}

TEST_CASE("gemm_u8s4: bad arguments are rejected with the reason") {
  IsaGuard guard;
  Problem p = make_problem(4, 20, 64, 32, 3);
  PackedWeightsU8S4 pw = pack_weights_u8s4(p.W.data(), p.N, p.K, p.K, 32);
  std::vector<float> C(p.M * p.ldc);
  GemmU8S4Args a = args_for(p, pw, {U8S4Output::s32, false, false}, C.data());
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("s32 output needs per-channel weights"), std::invalid_argument);
  a.out = U8S4Output::f32;
  std::vector<float> bad = p.w_scale;
  bad[5] = 0.f;
  a.w_scale = bad.data();
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("w_scale[2, 1] must be positive"), std::invalid_argument);
  a.w_scale = p.w_scale.data();
  a.a_zero_point = 256;
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("outside the u8 range"), std::invalid_argument);
  a.a_zero_point = 0;
  std::vector<int32_t> zs(p.M, 0);
  zs[2] = -1;
  a.a_zero_points = zs.data();
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("of row 2"), std::invalid_argument);
  a.a_zero_points = nullptr;
  std::vector<float> as(p.M, 1.f);
  as[1] = NAN;
  a.a_scales = as.data();
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("a_scales[1]"), std::invalid_argument);
  a.a_scales = nullptr;
  a.residual = C.data() + 1;
  a.ldr = p.ldc;
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("overlaps C"), std::invalid_argument);
  a.residual = nullptr;
  a.lda = 10;
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("lda >= K"), std::invalid_argument);
  a.lda = p.lda;
  a.W = nullptr;
  CHECK_THROWS_WITH_AS(gemm_u8s4(a), doctest::Contains("packed weights are null"), std::invalid_argument);
}
