// kernels::transpose_f32: every ISA path against the plain loops, over shapes with and without whole
// 8 x 8 blocks, strided rows, and no write outside the [cols, rows] result.
#include <doctest/doctest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/isa.hpp"
#include "kernels/transpose.hpp"

using namespace quench;
using kernels::Isa;

TEST_CASE("transpose_f32: every path equals the plain loops, edges and strides included") {
  const Isa prev = kernels::active_isa();
  constexpr float kCanary = -999.f;
  for (auto shape : {std::pair<int64_t, int64_t>{1, 1}, {8, 8}, {50, 32}, {13, 7}, {16, 24}, {3, 40}, {41, 9}}) {
    const int64_t rows = shape.first, cols = shape.second;
    CAPTURE(rows);
    CAPTURE(cols);
    const int64_t ldx = cols + 5, ldt = rows + 3;
    std::vector<float> x(rows * ldx);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.5f - 7.f;
    std::vector<float> want((cols + 1) * ldt, kCanary);
    kernels::transpose_f32_ref(rows, cols, x.data(), ldx, want.data(), ldt);
    bool right = true;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) right = right && want[c * ldt + r] == x[r * ldx + c];
    CHECK(right);
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      const std::string_view isa = kernels::isa_name(kernels::set_isa(static_cast<Isa>(i)));
      CAPTURE(isa);
      std::vector<float> got((cols + 1) * ldt, kCanary);
      kernels::transpose_f32(rows, cols, x.data(), ldx, got.data(), ldt);
      CHECK(got == want);  // the canaries past each row of t and below the last one included
    }
  }
  kernels::set_isa(prev);
}
