// kernels::dropout_rows / dropout_backward_rows: every ISA path bit for bit against the _ref loops (the
// keep-mask, the scaled values, the gradient) at every tail length and element offset; the mask keeps
// 1 - p of the elements; dropout() on a tensor is those rows whatever the thread count.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/ops.hpp"
#include "kernels/dropout_rows.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;

TEST_CASE("dropout_rows: every ISA path equals the reference bit for bit at every length and offset") {
  const int64_t n = 4099;
  std::vector<float> x(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i % 97) * 0.37f - 17.f;
    g[i] = static_cast<float>(i % 31) * -0.11f + 1.f;
  }
  const uint64_t key = 0x0123456789abcdefULL;
  const uint32_t keep = 13421773;  // (1 - 0.2) * 2^24, rounded up
  const float scale = 1.25f;
  const kernels::Isa saved = kernels::active_isa();
  for (int64_t first : {int64_t{0}, int64_t{5}, int64_t{1} << 40})
    for (int64_t len : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{63}, int64_t{64}, int64_t{65}, n}) {
      CAPTURE(first);
      CAPTURE(len);
      std::vector<uint8_t> want_m(len);
      std::vector<float> want_y(len), want_dx(len);
      kernels::dropout_rows_ref(x.data(), len, key, first, keep, scale, want_m.data(), want_y.data());
      kernels::dropout_backward_rows_ref(g.data(), want_m.data(), len, scale, want_dx.data());
      for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
        const std::string isa(kernels::isa_name(kernels::set_isa(static_cast<kernels::Isa>(i))));
        CAPTURE(isa);
        std::vector<uint8_t> m(len);
        std::vector<float> y(x.begin(), x.begin() + len), dx(g.begin(), g.begin() + len);
        kernels::dropout_rows(y.data(), len, key, first, keep, scale, m.data(), y.data());  // in place
        kernels::dropout_backward_rows(dx.data(), m.data(), len, scale, dx.data());
        CHECK(m == want_m);
        CHECK(std::memcmp(y.data(), want_y.data(), len * sizeof(float)) == 0);
        CHECK(std::memcmp(dx.data(), want_dx.data(), len * sizeof(float)) == 0);
      }
      kernels::set_isa(saved);
    }
  // Element i's draw is the same whichever row it starts.
  std::vector<uint8_t> whole(100), tail(60);
  std::vector<float> y(100);
  kernels::dropout_rows_ref(x.data(), 100, key, 0, keep, scale, whole.data(), y.data());
  kernels::dropout_rows_ref(x.data() + 40, 60, key, 40, keep, scale, tail.data(), y.data());
  CHECK(std::vector<uint8_t>(whole.begin() + 40, whole.end()) == tail);
}

TEST_CASE("dropout_rows: the mask keeps 1 - p of the elements; dropout() gives the same bits on 1 and 2 threads") {
  const int64_t n = 1 << 20;
  std::vector<float> x(n, 1.f), y(n);
  std::vector<uint8_t> m(n);
  kernels::dropout_rows_ref(x.data(), n, 42, 0, 13421773, 1.25f, m.data(), y.data());
  int64_t kept = 0;
  for (uint8_t v : m) kept += v;
  CHECK(static_cast<double>(kept) / n == doctest::Approx(0.8).epsilon(0.005));  // 5 sigma is 0.2%
  Generator g1(7), g2(7);
  const Tensor t = randn({3, 50000}, g1);
  Generator d1(11), d2(11);
  const int saved = get_num_threads();
  set_num_threads(1);
  const Tensor a = dropout(t, 0.3, true, d1);
  set_num_threads(2);
  const Tensor b = dropout(t, 0.3, true, d2);
  set_num_threads(saved);
  CHECK(testing::max_abs_diff(a, b) == 0.0);
}
