#include <doctest/doctest.h>

#include "engine/ops.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;

TEST_CASE("tensor: storage is 64-byte aligned and shapes are contiguous") {
  Tensor t = zeros({3, 5});
  CHECK(reinterpret_cast<uintptr_t>(t.raw_data()) % 64 == 0);
  CHECK(t.sizes() == Shape{3, 5});
  CHECK(t.strides() == Shape{5, 1});
  CHECK(t.numel() == 15);
  CHECK(t.is_contiguous());
  CHECK(t.at({2, 4}) == 0.0);
}

TEST_CASE("tensor: views share storage and compute the right strides") {
  Tensor a = arange(24).reshape({2, 3, 4});
  CHECK(a.strides() == Shape{12, 4, 1});
  Tensor p = a.permute({2, 0, 1});
  CHECK(p.sizes() == Shape{4, 2, 3});
  CHECK(p.at({3, 1, 2}) == a.at({1, 2, 3}));
  CHECK_FALSE(p.is_contiguous());
  Tensor n = a.narrow(2, 1, 2);
  CHECK(n.sizes() == Shape{2, 3, 2});
  CHECK(n.at({1, 2, 0}) == 21.0);
  Tensor s = a.slice(1, 0, 3, 2);
  CHECK(s.sizes() == Shape{2, 2, 4});
  CHECK(s.at({1, 1, 3}) == 23.0);
  Tensor sel = a.select(0, 1);
  CHECK(sel.sizes() == Shape{3, 4});
  CHECK(sel.at({0, 0}) == 12.0);
  Tensor e = tensor({1.f, 2.f, 3.f}).unsqueeze(0).expand({4, 3});
  CHECK(e.strides() == Shape{0, 1});
  CHECK(e.at({3, 2}) == 3.0);
  CHECK(a.unsqueeze(1).sizes() == Shape{2, 1, 3, 4});
  CHECK(a.unsqueeze(1).squeeze(1).sizes() == Shape{2, 3, 4});
  CHECK(a.flatten(1).sizes() == Shape{2, 12});
  // writes through a view are visible in the base
  n.fill_(-1.0);
  CHECK(a.at({0, 0, 1}) == -1.0);
  CHECK(a.at({0, 0, 0}) == 0.0);
}

TEST_CASE("tensor: view refuses incompatible strides, reshape copies") {
  Tensor a = arange(6).reshape({2, 3});
  Tensor t = a.t();
  CHECK_THROWS_WITH_AS(t.view({6}), doctest::Contains("use reshape() instead"), Error);
  Tensor r = t.reshape({6});
  CHECK(r.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(a.view({3, -1}).sizes() == Shape{3, 2});
  CHECK_THROWS_WITH_AS(a.view({4, -1}), doctest::Contains("is invalid for input of shape [2, 3]"), Error);
}

TEST_CASE("tensor: dtypes convert and copy_ broadcasts") {
  Tensor f = tensor({1.7f, -2.2f, 300.f});
  CHECK(f.to(kInt32).to_vector<int32_t>() == std::vector<int32_t>{1, -2, 300});
  Tensor u = zeros({2, 3}, kUInt8);
  u.copy_(tensor({1, 2, 3}, {3}, kUInt8));
  CHECK(u.to_vector<int32_t>() == std::vector<int32_t>{1, 2, 3, 1, 2, 3});
  CHECK_THROWS_AS(u.copy_(zeros({4})), Error);
  CHECK_THROWS_WITH_AS(f.data_ptr<int8_t>(), doctest::Contains("has dtype float32"), Error);
}

TEST_CASE("tensor: generator is deterministic and roughly normal") {
  Generator g1(7), g2(7);
  Tensor a = randn({1000}, g1), b = randn({1000}, g2);
  CHECK(a.to_vector<float>() == b.to_vector<float>());
  std::vector<double> v = a.to_vector<double>();
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= v.size();
  for (double x : v) s += (x - m) * (x - m);
  s = std::sqrt(s / v.size());
  CHECK(std::abs(m) < 0.1);
  CHECK(std::abs(s - 1.0) < 0.1);
  Tensor r = randint(3, 9, {500}, g1);
  for (int32_t x : r.to_vector<int32_t>()) CHECK((x >= 3 && x < 9));
  Tensor p = randperm(50, g1);
  std::vector<int32_t> pv = p.to_vector<int32_t>();
  std::sort(pv.begin(), pv.end());
  for (int i = 0; i < 50; ++i) CHECK(pv[i] == i);
}

TEST_CASE("tensor: printing shows values, shape and dtype") {
  std::string s = tensor({1.f, 2.5f}, {1, 2}).str();
  CHECK(s.find("[[1.0000, 2.5000]]") != std::string::npos);
  CHECK(s.find("shape=[1, 2]") != std::string::npos);
  CHECK(s.find("dtype=float32") != std::string::npos);
}

#include "kernels/isa.hpp"

TEST_CASE("isa: the active level never exceeds the CPU's and can be forced lower") {
  using namespace quench::kernels;
  Isa cpu = cpu_isa();
  CHECK(static_cast<int>(active_isa()) <= static_cast<int>(cpu));
  Isa before = active_isa();
  CHECK(set_isa(Isa::ref) == Isa::ref);
  CHECK(active_isa() == Isa::ref);
  CHECK(set_isa(Isa::avx512_vnni) == cpu);
  set_isa(before);
  CHECK(parse_isa("avx2") == Isa::avx2);
  CHECK(parse_isa("avx_vnni") == Isa::avx_vnni);
  CHECK_THROWS_AS(parse_isa("sse9"), std::invalid_argument);
}

TEST_CASE("isa: avx_vnni runs only where the CPU has AVX-VNNI, else avx2") {
  using namespace quench::kernels;
  const Isa before = active_isa();
  if (static_cast<int>(cpu_isa()) >= static_cast<int>(Isa::avx2)) {
    CHECK(set_isa(Isa::avx_vnni) == (cpu_has_avx_vnni() ? Isa::avx_vnni : Isa::avx2));
    CHECK(isa_name(active_isa()) == (cpu_has_avx_vnni() ? "avx_vnni" : "avx2"));
  }
  // A CPU with AVX-VNNI and no AVX-512 is detected as avx_vnni; with AVX-512 its level is higher.
  if (cpu_has_avx_vnni()) CHECK(static_cast<int>(cpu_isa()) >= static_cast<int>(Isa::avx_vnni));
  set_isa(before);
}
