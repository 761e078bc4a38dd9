// kernels::attn_softmax_rows(_backward): every ISA path bit for bit against the _ref loops, with and
// without a key mask, rows of every tail width; the ref against double-precision formulas.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/isa.hpp"
#include "kernels/softmax_rows.hpp"

using namespace quench;
using kernels::Isa;

namespace {

std::vector<float> random_vec(size_t n, uint64_t s, float range) {
  std::vector<float> v(n);
  for (auto& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = range * static_cast<float>(static_cast<int64_t>(s >> 40) - (1 << 23)) / float(1 << 23);
  }
  return v;
}

}  // namespace

TEST_CASE("attn_softmax_rows: every ISA path equals the reference bit for bit; the reference is softmax") {
  const Isa saved = kernels::active_isa();
  // range 300: shifted logits far below exp_approx's -87.3 cut-off, where exp is 0 on every path.
  for (float range : {30.f, 300.f})
  for (int64_t n : {1, 2, 15, 16, 17, 50, 64, 77, 128, 129, 200, 256, 300}) {
    for (bool masked : {false, true}) {
      CAPTURE(range);
      CAPTURE(n);
      CAPTURE(masked);
      const int64_t rows = 7;
      const float scale = 0.37f;
      const std::vector<float> x = random_vec(rows * n, n, range), g = random_vec(rows * n, n + 1, 2.f);
      std::vector<uint8_t> mask(n, 0);
      if (masked)
        for (int64_t j = 0; j < n; j += 3) mask[j] = j + 1 < n;  // keeps the last key
      const uint8_t* pm = masked ? mask.data() : nullptr;
      std::vector<float> y(rows * n), dx(rows * n);
      kernels::attn_softmax_rows_ref(x.data(), rows, n, scale, pm, y.data());
      kernels::attn_softmax_rows_backward_ref(y.data(), g.data(), rows, n, scale, dx.data());
      for (int64_t r = 0; r < rows; ++r) {
        double m = -INFINITY, sum = 0.0, dot = 0.0;
        for (int64_t j = 0; j < n; ++j)
          if (!pm || !pm[j]) m = std::fmax(m, double(x[r * n + j] * scale));
        for (int64_t j = 0; j < n; ++j)
          if (!pm || !pm[j]) sum += std::exp(double(x[r * n + j] * scale) - m);
        for (int64_t j = 0; j < n; ++j) {
          const double p = pm && pm[j] ? 0.0 : std::exp(double(x[r * n + j] * scale) - m) / sum;
          // exp_approx (2e-7) of a float difference t - m (|t - m| * 2^-24) and the sum's rounding
          REQUIRE(std::fabs(y[r * n + j] - p) <= 4e-6 * p + 1e-30);
          if (pm && pm[j]) REQUIRE(y[r * n + j] == 0.f);
          dot += double(g[r * n + j]) * y[r * n + j];
        }
        for (int64_t j = 0; j < n; ++j) {
          const double want = double(y[r * n + j]) * (g[r * n + j] - dot) * scale;
          REQUIRE(std::fabs(dx[r * n + j] - want) <= 1e-6 * (std::fabs(y[r * n + j]) * 4.0 + 1e-30));
        }
      }
      for (Isa isa : {Isa::ref, Isa::avx2, Isa::avx512}) {
        if (static_cast<int>(isa) > static_cast<int>(kernels::cpu_isa())) continue;
        kernels::set_isa(isa);
        CAPTURE(kernels::isa_name(isa));
        std::vector<float> y2(rows * n, -1.f), dx2(rows * n, -1.f);
        kernels::attn_softmax_rows(x.data(), rows, n, scale, pm, y2.data());
        kernels::attn_softmax_rows_backward(y.data(), g.data(), rows, n, scale, dx2.data());
        CHECK(y2 == y);
        CHECK(dx2 == dx);
        // in place, as attention runs it
        std::vector<float> z = x, dz = g;
        kernels::attn_softmax_rows(z.data(), rows, n, scale, pm, z.data());
        kernels::attn_softmax_rows_backward(y.data(), dz.data(), rows, n, scale, dz.data());
        CHECK(z == y);
        CHECK(dz == dx);
      }
      kernels::set_isa(saved);
    }
  }
}

TEST_CASE("attn_softmax_rows: every float just above exp's cut-off, the same bits on every path") {
  // Rows [0, v_1 .. v_49] whose v sweep every float in [-87.3, -86.5], where exp_approx's 2^n is
  // 2^-126 or 2^-125 (the AVX-512 path applies it with vscalefps, the others multiply by it) and
  // y = exp(v) / sum lands at the bottom of the normal range.
  std::vector<float> v;
  for (float f = -87.3f; f <= -86.5f; f = std::nextafter(f, 0.f)) v.push_back(f);
  const int64_t n = 50, rows = static_cast<int64_t>(v.size() + n - 2) / (n - 1);
  std::vector<float> x(rows * n, -87.0f);
  for (int64_t r = 0; r < rows; ++r) x[r * n] = 0.f;
  for (size_t i = 0; i < v.size(); ++i) x[(i / (n - 1)) * n + 1 + i % (n - 1)] = v[i];
  std::vector<float> want(rows * n);
  kernels::attn_softmax_rows_ref(x.data(), rows, n, 1.f, nullptr, want.data());
  CHECK(want[1] > 0.f);
  CHECK(want[1] < 2e-38f);
  const Isa saved = kernels::active_isa();
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(kernels::cpu_isa())) continue;
    kernels::set_isa(isa);
    CAPTURE(kernels::isa_name(isa));
    std::vector<float> y(rows * n);
    kernels::attn_softmax_rows(x.data(), rows, n, 1.f, nullptr, y.data());
    CHECK(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)) == 0);
  }
  kernels::set_isa(saved);
}
