// kernels::gelu_rows / gelu_backward_rows: every ISA path bit for bit against the _ref loops (the
// element functions vgelu / vgelu_backward) over a sweep of the whole float range and the special
// values, in place and with every tail length; gelu() sends contiguous runs there and strided ones
// to the element functions, with the same bits. (Accuracy against PyTorch: tests/test_pointwise.cpp.)
#include <doctest/doctest.h>

#include <cstdint>
#include <bit>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/gelu_rows.hpp"
#include "kernels/isa.hpp"
#include "tests/nn_test_util.hpp"

using namespace quench;

namespace {

// Every 4093rd bit pattern (both signs, every exponent: denormals, infinities and NaNs included),
// then the values where the element functions switch branch or clamp.
std::vector<float> sweep() {
  std::vector<float> v;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4093) v.push_back(std::bit_cast<float>(static_cast<uint32_t>(u)));
  const float inf = std::numeric_limits<float>::infinity();
  for (float s : {1.f, -1.f})
    for (float x : {0.f, 1e-45f, 1e-38f, 0.5f, 1.f, 2.82842712f, 3.67306232f, 3.97778726f, 4.f, 5.65685424f, 5.66f,
                    13.2f, 13.3f, 14.42f, 14.43f, 1e30f, inf, std::numeric_limits<float>::quiet_NaN()})
      v.push_back(std::copysign(x, s));  // (s * NaN would keep the NaN's sign)
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("gelu_rows: every ISA path equals the reference bit for bit, in place and at every tail length") {
  const std::vector<float> x = sweep();
  // Gradients: mostly ordinary numbers, every 7th element one of the special values (the same NaN
  // payload as x's where both are NaN: which NaN operand a multiply keeps is the compiler's choice).
  std::vector<float> g(x.size());
  const float specials[] = {0.f, -0.f, 1e-40f, -std::numeric_limits<float>::infinity(), 3e38f,
                            std::numeric_limits<float>::quiet_NaN()};
  for (size_t i = 0; i < g.size(); ++i)
    g[i] = i % 7 ? 0.25f + static_cast<float>(i % 13) * 0.375f : std::isnan(x[i]) ? x[i] : specials[(i / 7) % 6];
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<float> want(x.size()), want_dx(x.size());
  kernels::gelu_rows_ref(x.data(), n, want.data());
  kernels::gelu_backward_rows_ref(g.data(), x.data(), n, want_dx.data());
  const kernels::Isa saved = kernels::active_isa();
  for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
    const std::string isa(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
    CAPTURE(isa);
    std::vector<float> y(x.size()), dx(x.size());
    kernels::gelu_rows(x.data(), n, y.data());
    kernels::gelu_backward_rows(g.data(), x.data(), n, dx.data());
    CHECK(same_bits(y, want));
    CHECK(same_bits(dx, want_dx));
    std::vector<float> y_in = x, dx_in = g, dx_x = x;  // in place
    kernels::gelu_rows(y_in.data(), n, y_in.data());
    kernels::gelu_backward_rows(dx_in.data(), x.data(), n, dx_in.data());
    kernels::gelu_backward_rows(g.data(), dx_x.data(), n, dx_x.data());
    CHECK(same_bits(y_in, want));
    CHECK(same_bits(dx_in, want_dx));
    CHECK(same_bits(dx_x, want_dx));
    // Tails, on numbers in [-6, 6): nothing past len is written.
    std::vector<float> r(40), r_g(40), r_want(40), r_want_dx(40);
    uint32_t state = 12345;
    for (size_t j = 0; j < r.size(); ++j) {
      state = state * 1664525u + 1013904223u;
      r[j] = static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 12.f - 6.f;
      r_g[j] = 1.f - r[j] / 8.f;
    }
    kernels::gelu_rows_ref(r.data(), 40, r_want.data());
    kernels::gelu_backward_rows_ref(r_g.data(), r.data(), 40, r_want_dx.data());
    for (int64_t len = 0; len <= 33; ++len) {
      CAPTURE(len);
      std::vector<float> t(40, 7.f), td(40, 7.f);
      kernels::gelu_rows(r.data(), len, t.data());
      kernels::gelu_backward_rows(r_g.data(), r.data(), len, td.data());
      bool ok = true;
      for (int64_t j = 0; j < 40; ++j) {
        const float w = j < len ? r_want[j] : 7.f, wd = j < len ? r_want_dx[j] : 7.f;
        ok = ok && std::memcmp(&t[j], &w, 4) == 0 && std::memcmp(&td[j], &wd, 4) == 0;
      }
      CHECK(ok);
    }
  }
  kernels::set_isa(saved);
}

TEST_CASE("gelu: contiguous (gelu_rows) and strided (element function) inputs, the same bits forward and backward") {
  Generator gen(5);
  Tensor x = randn({96, 70}, gen) * 3.0;
  Tensor xt = x.t().contiguous().t();  // the same values, column-major: the strided loop
  REQUIRE_FALSE(xt.is_contiguous());
  Tensor g = randn({96, 70}, gen);
  const kernels::Isa saved = kernels::active_isa();
  for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
    const std::string isa(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
    CAPTURE(isa);
    Tensor a = x.detach().requires_grad_(true), b = xt.detach().requires_grad_(true);
    Tensor ya = gelu(a), yb = gelu(b);
    CHECK(testing::bit_equal(ya, yb.contiguous()));
    ya.backward(g);
    yb.backward(g.t().contiguous().t());
    CHECK(testing::bit_equal(a.grad(), b.grad().contiguous()));
  }
  kernels::set_isa(saved);
}
