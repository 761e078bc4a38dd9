// The u8s8 GEMM: every ISA path bit-exact against the reference, the reference against a plain
// int64 loop on the raw weights and against oneDNN's dnnl_gemm_u8s8s32, epilogues, threads, the
// quantizer.
#include <doctest/doctest.h>
#include <oneapi/dnnl/dnnl.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "kernels/gemm_u8s8.hpp"
#include "kernels/parallel.hpp"

using namespace quench::kernels;

namespace {

// Restores the ISA level and thread count a test changed.
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

// A problem: A [M,K] (stride lda), W [N,K], C [M,N] (stride ldc).
struct Problem {
  int64_t M, N, K, lda, ldc;
  std::vector<uint8_t> A;
  std::vector<int8_t> W;
  bool a_signed = false;
  int32_t za = 0;
  std::vector<float> w_scale, bias;
};

Problem make_problem(int64_t M, int64_t N, int64_t K, uint32_t seed, bool a_signed = false,
                     int32_t za = 0) {
  Problem p{M, N, K, K + 3, N + 5, {}, {}, a_signed, za, {}, {}};
  p.A = random_ints<uint8_t>(M * p.lda, 0, 255, seed);
  p.W = random_ints<int8_t>(N * K, -128, 127, seed + 1);
  std::mt19937 g(seed + 2);
  std::uniform_real_distribution<float> ds(0.001f, 0.02f), db(-2.f, 2.f);
  for (int64_t n = 0; n < N; ++n) {
    p.w_scale.push_back(ds(g));
    p.bias.push_back(db(g));
  }
  return p;
}

GemmU8S8Args args_for(const Problem& p, const PackedWeightsU8S8& pw, U8S8Output out, void* C) {
  GemmU8S8Args a;
  a.M = p.M;
  a.A = p.A.data();
  a.lda = p.lda;
  a.a_signed = p.a_signed;
  a.a_zero_point = p.za;
  a.W = &pw;
  a.out = out;
  a.C = C;
  a.ldc = p.ldc;
  a.a_scale = 0.05f;
  a.w_scale = p.w_scale.data();
  a.bias = p.bias.data();
  a.y_scale = 0.7f;
  a.y_zero_point = 77;
  return a;
}

size_t elem_size(U8S8Output out) { return out == U8S8Output::u8 ? 1 : 4; }

// Runs the problem on the given level (packing for it) or the reference; C's bytes, padding
// included (filled with 0xAB first, so writes past N show).
std::vector<uint8_t> run(const Problem& p, U8S8Output out, Isa level, bool ref,
                         bool with_bias = true) {
  set_isa(level);
  PackedWeightsU8S8 pw = pack_weights_u8s8(p.W.data(), p.N, p.K, p.K, level);
  std::vector<uint8_t> C(p.M * p.ldc * elem_size(out), 0xAB);
  GemmU8S8Args a = args_for(p, pw, out, C.data());
  if (!with_bias) a.bias = nullptr;
  if (ref)
    gemm_u8s8_ref(a);
  else
    gemm_u8s8(a);
  return C;
}

// sum_k (a - za) * W[n,k] in int64 on the raw inputs.
std::vector<int64_t> naive(const Problem& p) {
  std::vector<int64_t> c(p.M * p.N);
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t n = 0; n < p.N; ++n) {
      int64_t s = 0;
      for (int64_t k = 0; k < p.K; ++k) {
        int64_t a = p.a_signed ? int64_t(int8_t(p.A[m * p.lda + k])) : int64_t(p.A[m * p.lda + k]);
        s += (a - p.za) * p.W[n * p.K + k];
      }
      c[m * p.N + n] = s;
    }
  return c;
}

int32_t s32_at(const std::vector<uint8_t>& C, const Problem& p, int64_t m, int64_t n) {
  int32_t v;
  std::memcpy(&v, C.data() + (m * p.ldc + n) * 4, 4);
  return v;
}

// Every path against the reference, byte for byte.
void check_paths(const Problem& p, U8S8Output out, bool with_bias = true) {
  const std::vector<uint8_t> want = run(p, out, Isa::ref, true, with_bias);
  for (Isa level : levels()) {
    CAPTURE(isa_name(level));
    CHECK(run(p, out, level, false, with_bias) == want);
  }
}

}  // namespace

TEST_CASE("gemm_u8s8: packing keeps every weight and the column sums, for every layout") {
  IsaGuard guard;
  auto W = random_ints<int8_t>(70 * 13, -128, 127, 5);
  for (Isa level : {Isa::avx2, Isa::avx_vnni, Isa::avx512_vnni}) {
    PackedWeightsU8S8 pw = pack_weights_u8s8(W.data(), 70, 13, 13, level);
    CHECK(pw.layout == (level == Isa::avx512_vnni ? U8S8Layout::vnni
                        : level == Isa::avx_vnni  ? U8S8Layout::vnni16
                                                  : U8S8Layout::i16));
    CHECK(pw.Kp == 16);
    CHECK(reinterpret_cast<uintptr_t>(pw.buf.get()) % 64 == 0);
    bool same = true;
    for (int64_t n = 0; n < 70; ++n) {
      int32_t s = 0;
      for (int64_t k = 0; k < 13; ++k) {
        same = same && pw.weight(n, k) == W[n * 13 + k];
        s += W[n * 13 + k];
      }
      same = same && pw.colsum(n) == s;
    }
    CHECK(same);
    // Padded channels and padded k are zero.
    CHECK(pw.panel_colsum(pw.num_panels() - 1)[pw.nr - 1] == 0);
    PackedWeightsU8S8 moved = std::move(pw);
    CHECK(moved.weight(69, 12) == W[69 * 13 + 12]);
  }
}

TEST_CASE("gemm_u8s8: packing from W^T [K, N] gives the bytes of packing W, for every layout") {
  for (auto [n_, k_, ld_] : {std::tuple{70, 13, 70}, std::tuple{64, 128, 64}, std::tuple{5, 3, 9}}) {
    const int64_t N = n_, K = k_, ld = ld_;
    CAPTURE(N);
    CAPTURE(K);
    auto W = random_ints<int8_t>(N * K, -128, 127, 7 + N);
    std::vector<int8_t> Wt(K * ld, 99);  // the padding past N in each row must not be read
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) Wt[k * ld + n] = W[n * K + k];
    for (Isa level : {Isa::ref, Isa::avx2, Isa::avx_vnni, Isa::avx512_vnni}) {
      CAPTURE(isa_name(level));
      PackedWeightsU8S8 a = pack_weights_u8s8(W.data(), N, K, K, level);
      PackedWeightsU8S8 b = pack_weights_u8s8_kn(Wt.data(), N, K, ld, level);
      REQUIRE(a.panel_bytes == b.panel_bytes);
      CHECK(b.layout == a.layout);
      const int64_t bytes = a.num_panels() * a.panel_bytes;
      CHECK(std::equal(a.buf.get(), a.buf.get() + bytes, b.buf.get()));
    }
  }
  CHECK_THROWS_AS(pack_weights_u8s8_kn(nullptr, 4, 4, 4), std::invalid_argument);
  std::vector<int8_t> w(16);
  CHECK_THROWS_AS(pack_weights_u8s8_kn(w.data(), 4, 4, 3), std::invalid_argument);
}

TEST_CASE("gemm_u8s8: the reference equals a plain int64 loop on the raw weights") {
  IsaGuard guard;
  for (auto [M, N, K, za, sgn] : {std::tuple{5, 9, 7, 0, false}, std::tuple{3, 70, 33, 131, false},
                                  std::tuple{4, 20, 19, -5, true}}) {
    Problem p = make_problem(M, N, K, 11 + M, sgn, za);
    std::vector<uint8_t> C = run(p, U8S8Output::s32, Isa::ref, true);
    std::vector<int64_t> want = naive(p);
    bool same = true;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) same = same && s32_at(C, p, m, n) == want[m * N + n];
    CHECK(same);
  }
}

TEST_CASE("gemm_u8s8: every path is bit-exact against the reference over a shape sweep") {
  IsaGuard guard;
  uint32_t seed = 100;
  for (int64_t M : {1, 7, 13, 50})
    for (int64_t N : {1, 17, 67, 130})
      for (int64_t K : {1, 3, 5, 31, 128, 259}) {
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        ++seed;
        Problem p = make_problem(M, N, K, seed, false, int32_t(seed % 3 == 0 ? 0 : seed % 256));
        check_paths(p, U8S8Output::s32);
      }
}

TEST_CASE("gemm_u8s8: extreme values (255 x -128 overflows int16 pair sums), K >= 4096") {
  IsaGuard guard;
  for (int32_t za : {0, 255, 3}) {
    Problem p = make_problem(7, 70, 4099, 9, false, za);
    std::fill(p.A.begin(), p.A.end(), 255);
    std::fill(p.W.begin(), p.W.end(), -128);
    const int32_t exact = int32_t((255 - za) * -128 * int64_t(4099));
    for (Isa level : levels()) {
      CAPTURE(isa_name(level));
      std::vector<uint8_t> C = run(p, U8S8Output::s32, level, false);
      bool all = true;
      for (int64_t m = 0; m < p.M; ++m)
        for (int64_t n = 0; n < p.N; ++n) all = all && s32_at(C, p, m, n) == exact;
      CHECK(all);
    }
  }
  // Random full-range values at large K, signed activations too.
  check_paths(make_problem(9, 33, 4096, 21, false, 128), U8S8Output::s32);
  check_paths(make_problem(9, 33, 4097, 22, true, -128), U8S8Output::s32);
  // The most negative s8 activations against the most positive weights.
  Problem q = make_problem(2, 16, 4100, 23, true, 127);
  std::fill(q.A.begin(), q.A.end(), uint8_t(0x80));
  std::fill(q.W.begin(), q.W.end(), 127);
  check_paths(q, U8S8Output::s32);
  CHECK(s32_at(run(q, U8S8Output::s32, Isa::ref, true), q, 1, 15) == (-128 - 127) * 127 * 4100);
}

TEST_CASE("gemm_u8s8: s8 activations with zero points, every path") {
  IsaGuard guard;
  uint32_t seed = 300;
  for (int64_t M : {1, 6, 19})
    for (int64_t N : {5, 64, 100})
      for (int64_t K : {2, 64, 131})
        for (int32_t za : {0, -128, 127, -7}) {
          CAPTURE(M);
          CAPTURE(N);
          CAPTURE(K);
          CAPTURE(za);
          check_paths(make_problem(M, N, K, ++seed, true, za), U8S8Output::s32);
        }
}

TEST_CASE("gemm_u8s8: epilogues (f32, f32 + bias, GELU, requantized u8) bit-exact on every path") {
  IsaGuard guard;
  uint32_t seed = 500;
  for (auto shape : {std::tuple{1, 1, 1}, std::tuple{7, 67, 129}, std::tuple{13, 130, 37},
                     std::tuple{3, 8, 768}}) {
    const int64_t M = std::get<0>(shape), N = std::get<1>(shape), K = std::get<2>(shape);
    for (bool sgn : {false, true}) {
      CAPTURE(M);
      CAPTURE(N);
      CAPTURE(K);
      CAPTURE(sgn);
      Problem p = make_problem(M, N, K, ++seed, sgn, sgn ? -3 : 140);
      for (U8S8Output out : {U8S8Output::f32, U8S8Output::f32_gelu, U8S8Output::u8}) {
        CAPTURE(int(out));
        check_paths(p, out, true);
        check_paths(p, out, false);
      }
      // The reference epilogues restated on the s32 result.
      PackedWeightsU8S8 pw = pack_weights_u8s8(p.W.data(), N, K, K, Isa::ref);
      std::vector<uint8_t> acc = run(p, U8S8Output::s32, Isa::ref, true);
      std::vector<uint8_t> f = run(p, U8S8Output::f32, Isa::ref, true);
      std::vector<uint8_t> g = run(p, U8S8Output::f32_gelu, Isa::ref, true);
      std::vector<uint8_t> q = run(p, U8S8Output::u8, Isa::ref, true);
      bool ok = true;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          const float mult = 0.05f * p.w_scale[n];
          float y = float(s32_at(acc, p, m, n)) * mult;
          y = y + p.bias[n];
          float fy, gy;
          std::memcpy(&fy, f.data() + (m * p.ldc + n) * 4, 4);
          std::memcpy(&gy, g.data() + (m * p.ldc + n) * 4, 4);
          float t = std::nearbyint(float(s32_at(acc, p, m, n)) * (mult / 0.7f)) + 77.f;
          t = std::min(std::max(t, 0.f), 255.f);
          ok = ok && fy == y && gy == gelu_erf_approx(y) && q[m * p.ldc + n] == uint8_t(t);
        }
      CHECK(ok);
    }
  }
}

// C = R + f32 epilogue on `level` (or the reference), R [M, N] with row stride ldr. Separate: R is
// read in place with its own stride and C starts as -7 everywhere (writes past N show); in place: C
// starts as R's rows (the columns past N -7) and is its own residual (ldr = ldc). C's bytes.
std::vector<uint8_t> run_residual(const Problem& p, const std::vector<float>& R, int64_t ldr, Isa level, bool ref,
                                  bool in_place, bool with_bias) {
  set_isa(level);
  PackedWeightsU8S8 pw = pack_weights_u8s8(p.W.data(), p.N, p.K, p.K, level);
  std::vector<float> C(p.M * p.ldc, -7.f);
  if (in_place)
    for (int64_t m = 0; m < p.M; ++m) std::copy(&R[m * ldr], &R[m * ldr] + p.N, &C[m * p.ldc]);
  GemmU8S8Args a = args_for(p, pw, U8S8Output::f32, C.data());
  if (!with_bias) a.bias = nullptr;
  a.residual = in_place ? C.data() : R.data();
  a.ldr = in_place ? p.ldc : ldr;
  if (ref)
    gemm_u8s8_ref(a);
  else
    gemm_u8s8(a);
  std::vector<uint8_t> bytes(C.size() * 4);
  std::memcpy(bytes.data(), C.data(), bytes.size());
  return bytes;
}

TEST_CASE("gemm_u8s8: the f32 epilogue's residual add (separate and in place) bit-exact on every path") {
  IsaGuard guard;
  uint32_t seed = 600;
  for (auto shape : {std::tuple{1, 1, 1}, std::tuple{2, 67, 36}, std::tuple{13, 130, 37}, std::tuple{6, 64, 128}}) {
    const int64_t M = std::get<0>(shape), N = std::get<1>(shape), K = std::get<2>(shape);
    for (bool with_bias : {true, false}) {
      CAPTURE(M);
      CAPTURE(N);
      CAPTURE(K);
      CAPTURE(with_bias);
      Problem p = make_problem(M, N, K, ++seed, false, 31);
      const int64_t ldr = p.ldc + 4;  // a stride of its own: the paths must not use ldc for it
      std::mt19937 g(seed);
      std::uniform_real_distribution<float> dr(-3.f, 3.f);
      std::vector<float> R(M * ldr);
      for (float& r : R) r = dr(g);
      // The reference: R + (the f32 epilogue without a residual), element by element; -7 past N.
      const std::vector<uint8_t> want = run_residual(p, R, ldr, Isa::ref, true, false, with_bias);
      const std::vector<uint8_t> f = run(p, U8S8Output::f32, Isa::ref, true, with_bias);
      bool ok = true;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < p.ldc; ++n) {
          float fy, wy;
          std::memcpy(&fy, f.data() + (m * p.ldc + n) * 4, 4);
          std::memcpy(&wy, want.data() + (m * p.ldc + n) * 4, 4);
          ok = ok && wy == (n < N ? R[m * ldr + n] + fy : -7.f);
        }
      CHECK(ok);
      CHECK(run_residual(p, R, ldr, Isa::ref, true, true, with_bias) == want);
      for (Isa level : levels()) {
        CAPTURE(isa_name(level));
        CHECK(run_residual(p, R, ldr, level, false, false, with_bias) == want);
        CHECK(run_residual(p, R, ldr, level, false, true, with_bias) == want);
      }
    }
  }
  // Only the f32 output takes a residual, and its rows must hold N floats.
  Problem p = make_problem(2, 8, 8, 1);
  PackedWeightsU8S8 pw = pack_weights_u8s8(p.W.data(), p.N, p.K, p.K);
  std::vector<float> C(2 * p.ldc), R(2 * p.ldc);
  GemmU8S8Args a = args_for(p, pw, U8S8Output::f32_gelu, C.data());
  a.residual = R.data();
  a.ldr = p.ldc;
  CHECK_THROWS_WITH_AS(gemm_u8s8(a), doctest::Contains("residual"), std::invalid_argument);
  a.out = U8S8Output::f32;
  a.ldr = 7;
  CHECK_THROWS_WITH_AS(gemm_u8s8(a), doctest::Contains("ldr=7"), std::invalid_argument);
  // In place only as C itself: a shifted or differently strided overlap is refused.
  a.residual = C.data() + 1;
  a.ldr = p.ldc;
  CHECK_THROWS_WITH_AS(gemm_u8s8(a), doctest::Contains("overlaps C"), std::invalid_argument);
  a.residual = C.data();
  a.ldr = p.ldc + 1;
  CHECK_THROWS_WITH_AS(gemm_u8s8(a), doctest::Contains("overlaps C"), std::invalid_argument);
  a.ldr = p.ldc;
  gemm_u8s8(a);  // C itself
  a.residual = R.data();
  gemm_u8s8(a);  // apart
}

TEST_CASE("gemm_u8s8: s32 result equals oneDNN dnnl_gemm_u8s8s32") {
  IsaGuard guard;
  for (auto shape :
       {std::tuple{1, 768, 768, 0}, std::tuple{33, 67, 131, 128}, std::tuple{6, 70, 4100, 255}}) {
    const int64_t M = std::get<0>(shape), N = std::get<1>(shape), K = std::get<2>(shape);
    const int32_t za = std::get<3>(shape);
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    Problem p = make_problem(M, N, K, 700 + K, false, za);
    std::vector<int32_t> D(M * N, 0);
    const int32_t co = 0;
    // C = (A - ao) * (B - bo) with B = W^T: W [N,K] row-major read transposed.
    REQUIRE(dnnl_gemm_u8s8s32('N', 'T', 'F', M, N, K, 1.f, p.A.data(), p.lda, uint8_t(za),
                              p.W.data(), K, 0, 0.f, D.data(), N, &co) == dnnl_success);
    for (Isa level : levels()) {
      CAPTURE(isa_name(level));
      std::vector<uint8_t> C = run(p, U8S8Output::s32, level, level == Isa::ref);
      bool same = true;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) same = same && s32_at(C, p, m, n) == D[m * N + n];
      CHECK(same);
    }
  }
}

TEST_CASE("gemm_u8s8: one and two threads give identical results") {
  IsaGuard guard;
  Problem p = make_problem(200, 300, 200, 900, false, 9);
  for (Isa level : levels()) {
    if (level == Isa::ref) continue;
    for (U8S8Output out : {U8S8Output::s32, U8S8Output::f32_gelu, U8S8Output::u8}) {
      CAPTURE(isa_name(level));
      quench::set_num_threads(1);
      std::vector<uint8_t> one = run(p, out, level, false);
      quench::set_num_threads(2);
      std::vector<uint8_t> two = run(p, out, level, false);
      CHECK(one == two);
    }
  }
}

TEST_CASE("gemm_u8s8: bad arguments throw and name the shapes") {
  auto W = random_ints<int8_t>(16, -128, 127, 1);
  CHECK_THROWS_AS(pack_weights_u8s8(W.data(), 4, 0, 4), std::invalid_argument);
  CHECK_THROWS_AS(pack_weights_u8s8(W.data(), 1, 65537, 65537), std::invalid_argument);
  PackedWeightsU8S8 pw = pack_weights_u8s8(W.data(), 4, 4, 4);
  std::vector<uint8_t> A(8, 1);
  std::vector<int32_t> C(8);
  GemmU8S8Args a;
  a.M = 2;
  a.A = A.data();
  a.lda = 3;  // < K
  a.W = &pw;
  a.C = C.data();
  a.ldc = 4;
  CHECK_THROWS_WITH_AS(gemm_u8s8(a), doctest::Contains("lda=3"), std::invalid_argument);
  a.lda = 4;
  a.a_zero_point = 256;
  CHECK_THROWS_AS(gemm_u8s8(a), std::invalid_argument);
  a.a_zero_point = 0;
  a.out = U8S8Output::f32;  // no w_scale
  CHECK_THROWS_AS(gemm_u8s8(a), std::invalid_argument);
  a.out = U8S8Output::s32;
  gemm_u8s8(a);
  CHECK(C[0] == W[0] + W[1] + W[2] + W[3]);  // A all ones
}

TEST_CASE(
    "quantize_row_u8: vector equals reference; ties to even, zero point after rounding, "
    "saturation") {
  IsaGuard guard;
  // Ties: x * (1/s) = k + 0.5 exactly (s a power of two).
  std::vector<float> x = {0.25f,  0.75f,   1.25f,    -0.25f,    -0.75f, -1.25f, 100.f, -100.f,
                          1e30f,  -1e30f,  INFINITY, -INFINITY, NAN,    0.f,    -0.f,  63.75f,
                          64.25f, -32.25f, 2.6f,     -2.6f,     123.f,  122.25f};
  std::vector<uint8_t> want = {10, 12, 12, 10, 8,   8,   210, 0,  255, 0,   255,
                               0,  0,  10, 10, 138, 138, 0,   15, 5,   255, 254};
  for (Isa level : levels()) {
    set_isa(level);
    CAPTURE(isa_name(level));
    std::vector<uint8_t> y(x.size()), r(x.size());
    quantize_row_u8(x.data(), int64_t(x.size()), 0.5f, 10, y.data());
    quantize_row_u8_ref(x.data(), int64_t(x.size()), 0.5f, 10, r.data());
    CHECK(y == want);
    CHECK(r == want);
    // The same values, shifted by one place per copy, through the 64-wide blocks (two of them) and
    // the 16-wide and masked tail steps.
    std::vector<float> xl;
    std::vector<uint8_t> wl;
    for (int rep = 0; rep < 7; ++rep) {
      for (size_t i = 0; i < x.size(); ++i) xl.push_back(x[(i + rep) % x.size()]);
      for (size_t i = 0; i < x.size(); ++i) wl.push_back(want[(i + rep) % x.size()]);
    }
    std::vector<uint8_t> yl(xl.size());
    quantize_row_u8(xl.data(), int64_t(xl.size()), 0.5f, 10, yl.data());
    CHECK(yl == wl);
    // The ends of the zero-point range, and values between int16 and int32 saturation.
    for (float v : {1e5f, -1e5f, 1.1e9f, -1.1e9f, 3e9f, -3e9f}) xl.push_back(v);
    for (int32_t z : {0, 255}) {
      CAPTURE(z);
      std::vector<uint8_t> yz(xl.size()), rz(xl.size());
      quantize_row_u8(xl.data(), int64_t(xl.size()), 0.5f, z, yz.data());
      quantize_row_u8_ref(xl.data(), int64_t(xl.size()), 0.5f, z, rz.data());
      CHECK(yz == rz);
    }
  }
  // Random rows with scales that are not powers of two, lengths around the vector width.
  std::mt19937 g(3);
  std::uniform_real_distribution<float> d(-40.f, 40.f);
  for (int64_t n : {0, 1, 7, 8, 9, 33, 1000}) {
    std::vector<float> v(n);
    for (auto& e : v) e = d(g);
    for (float s : {0.1f, 0.3f, 0.0173f}) {
      for (int32_t z : {0, 128, 255}) {
        std::vector<uint8_t> r(n);
        quantize_row_u8_ref(v.data(), n, s, z, r.data());
        for (Isa level : levels()) {
          set_isa(level);
          std::vector<uint8_t> y(n);
          quantize_row_u8(v.data(), n, s, z, y.data());
          CHECK(y == r);
        }
        bool ok = true;  // the definition, in int64 as PyTorch adds the zero point
        const float inv = 1.0f / s;
        for (int64_t i = 0; i < n; ++i) {
          int64_t q = int64_t(std::nearbyint(v[i] * inv)) + z;
          ok = ok && r[i] == uint8_t(std::min<int64_t>(255, std::max<int64_t>(0, q)));
        }
        CHECK(ok);
      }
    }
  }
  CHECK_THROWS_AS(quantize_row_u8(x.data(), 1, 0.f, 0, want.data()), std::invalid_argument);
}

TEST_CASE("quantize_row_u8: x * (1/s) as PyTorch, not x / s, on every path") {
  IsaGuard guard;
  // PyTorch 1.13 quantize_per_tensor(-11.15f, 0.1, 128, quint8) gives 16: x * (1/s) = -111.5 is a
  // tie to even -112; x / s = -111.49999 would round to -111 (17).
  const float x = -11.149999618530273f;
  uint8_t q = 0;
  quantize_row_u8_ref(&x, 1, 0.1f, 128, &q);
  CHECK(q == 16);
  std::mt19937 g(4);
  std::uniform_real_distribution<float> d(-40.f, 40.f);
  for (int64_t n : {1, 8, 13, 1000}) {
    std::vector<float> v(n);
    for (auto& e : v) e = d(g);
    v[0] = x;
    for (float s : {0.1f, 0.3f, 0.0173f}) {
      std::vector<uint8_t> r(n);
      quantize_row_u8_ref(v.data(), n, s, 128, r.data());
      for (Isa level : levels()) {
        set_isa(level);
        std::vector<uint8_t> y(n);
        quantize_row_u8(v.data(), n, s, 128, y.data());
        CHECK(y == r);
      }
      bool ok = true;
      const float inv = 1.0f / s;
      for (int64_t i = 0; i < n; ++i) {
        int64_t qi = int64_t(std::nearbyint(v[i] * inv)) + 128;
        ok = ok && r[i] == uint8_t(std::min<int64_t>(255, std::max<int64_t>(0, qi)));
      }
      CHECK(ok);
    }
  }
}

TEST_CASE("gelu_erf_approx: within 1e-6 * max(1, |x|) of the exact erf GELU") {
  double worst = 0;
  for (float x = -12.f; x <= 12.f; x += 0.0007f) {
    double exact = 0.5 * double(x) * (1.0 + std::erf(double(x) / std::sqrt(2.0)));
    double err =
        std::fabs(double(gelu_erf_approx(x)) - exact) / std::max(1.0, double(std::fabs(x)));
    worst = std::max(worst, err);
  }
  MESSAGE("gelu_erf_approx worst relative-to-max(1,|x|) error: " << worst);
  CHECK(worst <= 1e-6);
}
