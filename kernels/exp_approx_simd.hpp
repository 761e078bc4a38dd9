// exp_approx (exp_approx.hpp) over a vector of floats: the same operations (FMAs included) in the
// same order, so every lane gives the scalar's bits. Written once over a vector type V
// (softmax_rows_avx2.cpp, softmax_rows_avx512.cpp) that provides reg, set1, max(a, b) (b where either
// is NaN, as std::max(x, c) keeps a NaN x), add, sub, mul, fma(a, b, c) (a * b + c rounded once),
// times_pow2(p, n, t) (p * 2^n; n is an integer in [-126, 0] as a float, as softmax's shifted
// logits are at most 0, and t the same n plus the rounding constant 1.5 * 2^23, whose low bits hold
// it: pick either; p * 2^n is then a normal float, exact) and
// zero_below(x, c, e) (0 where x < c, else e).
#pragma once

namespace quench::kernels {

template <class V>
inline typename V::reg exp_approx_simd(typename V::reg x) {
  using R = typename V::reg;
  const R lo = V::set1(-87.3f);
  const R xc = V::max(lo, x);
  const R t = V::fma(xc, V::set1(1.44269504088896341f), V::set1(12582912.f));
  const R n = V::sub(t, V::set1(12582912.f));
  R r = V::fma(n, V::set1(-0.693359375f), xc);
  r = V::fma(n, V::set1(2.12194440e-4f), r);
  R p = V::fma(V::set1(1.9875691500e-4f), r, V::set1(1.3981999507e-3f));
  p = V::fma(p, r, V::set1(8.3334519073e-3f));
  p = V::fma(p, r, V::set1(4.1665795894e-2f));
  p = V::fma(p, r, V::set1(1.6666665459e-1f));
  p = V::fma(p, r, V::set1(5.0000001201e-1f));
  p = V::add(V::fma(p, V::mul(r, r), r), V::set1(1.0f));
  return V::zero_below(x, lo, V::times_pow2(p, n, t));
}

}  // namespace quench::kernels
