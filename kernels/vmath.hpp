// Branch-free float exp, erf, tanh and GELU: the element functions of engine/ops/activation.cpp and
// kernels/gelu_rows (whose AVX-512 path repeats their operations one for one).
//
// libm calls do not vectorize, and GELU's erf costs more than the fc1 GEMM it follows when it runs
// one element at a time. These are plain arithmetic, selects and bit casts, which the compiler turns
// into SIMD inside map_unary / map_binary loops and gelu_rows' AVX2 loop. Their reference twins are
// std::exp / std::erf / std::tanh; tests/test_pointwise.cpp bounds the difference (exp: 2e-7
// relative, erf: 5e-7 absolute, tanh: 3e-7 relative) and checks NaN, infinities and the denormal
// range. Their multiply-adds are explicit FMAs (kernels/fmadd.hpp) and nothing else fuses, so
// baseline and AVX2 loops give the same bits. Always inlined: files built with the AVX2 flags use
// them too, and an out-of-line copy from such a file must never be the one baseline code calls.
#pragma once
#include <bit>
#include <cstdint>

#include "kernels/fmadd.hpp"

namespace quench::kernels {

// The constants of vexp and verf, shared with their AVX-512 twins (kernels/gelu_rows_avx512.cpp).
// Polynomial coefficients go from the highest degree down.
inline constexpr float kExpMin = -104.0f, kExpMax = 89.0f;  // exp(-104) rounds to 0, exp(89) to inf
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kRoundConst = 12582912.0f;  // 1.5 * 2^23: adding and removing it rounds to an integer
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 in two parts
inline constexpr float kExpPoly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                      4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
inline constexpr float kErfClamp = 4.0f;
inline constexpr float kErfP[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                                   -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                                   -1.60960333262415e-02f};
inline constexpr float kErfQ[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                                   -7.37332916720468e-03f, -1.42647390514189e-02f};

// exp(x) = 2^n exp(r) with n = round(x / ln 2), |r| <= ln2 / 2 (Cephes expf polynomial). 2^n is
// applied as two factors so that results in the denormal range round once, like libm's.
inline __attribute__((always_inline)) float vexp(float x) {
  float xc = x > kExpMin ? x : kExpMin;  // also maps NaN to kExpMin; NaN is restored at the end
  xc = xc < kExpMax ? xc : kExpMax;
  // (No -ffast-math, so adding and removing the rounding constant is not folded away.)
  const float fn = fmadd(xc, kLog2e, kRoundConst) - kRoundConst;
  float r = fmadd(fn, -kLn2Hi, xc);
  r = fmadd(fn, -kLn2Lo, r);
  float p = kExpPoly[0];
  for (int i = 1; i < 6; ++i) p = fmadd(p, r, kExpPoly[i]);
  const float y = fmadd(p, r * r, r) + 1.0f;
  const int32_t n = static_cast<int32_t>(fn);  // in [-150, 128]
  const int32_t n1 = n >> 1, n2 = n - n1;      // each in [-75, 64]: normal powers of two
  const float s1 = std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23);
  const float s2 = std::bit_cast<float>(static_cast<uint32_t>(n2 + 127) << 23);
  const float out = (y * s1) * s2;
  return x != x ? x : out;
}

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (Eigen's generic_fast_erf_float); |erf| rounds to 1
// outside.
inline __attribute__((always_inline)) float verf(float x) {
  float xc = x > -kErfClamp ? x : -kErfClamp;
  xc = xc < kErfClamp ? xc : kErfClamp;
  const float x2 = xc * xc;
  float p = kErfP[0];
  for (int i = 1; i < 7; ++i) p = fmadd(x2, p, kErfP[i]);
  p = xc * p;
  float q = kErfQ[0];
  for (int i = 1; i < 5; ++i) q = fmadd(x2, q, kErfQ[i]);
  float out = p / q;
  out = out > 1.0f ? 1.0f : out;
  out = out < -1.0f ? -1.0f : out;
  return x != x ? x : out;
}

// tanh(x): for |x| < 0.55 x P(x^2) / Q(x^2) (Eigen's generic_fast_tanh_float; x itself below 4e-4,
// where tanh(x) rounds to x), else sign(x) (1 - 2 / (exp(2|x|) + 1)), which keeps 1 - tanh^2
// (the tanh and GELU-tanh gradients) accurate where tanh is near +-1.
inline __attribute__((always_inline)) float vtanh(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float xs = ax < 0.55f ? x : 0.55f;  // the rational branch only sees small arguments
  const float x2 = xs * xs;
  float p = -2.76076847742355e-16f;
  p = fmadd(x2, p, 2.00018790482477e-13f);
  p = fmadd(x2, p, -8.60467152213735e-11f);
  p = fmadd(x2, p, 5.12229709037114e-08f);
  p = fmadd(x2, p, 1.48572235717979e-05f);
  p = fmadd(x2, p, 6.37261928875436e-04f);
  p = fmadd(x2, p, 4.89352455891786e-03f);
  p = xs * p;
  float q = 1.19825839466702e-06f;
  q = fmadd(x2, q, 1.18534705686654e-04f);
  q = fmadd(x2, q, 2.26843463243900e-03f);
  q = fmadd(x2, q, 4.89352518554385e-03f);
  const float small = ax < 4e-4f ? x : p / q;
  const float big_abs = 1.0f - 2.0f / (vexp(2.0f * ax) + 1.0f);
  const float big = x < 0.0f ? -big_abs : big_abs;
  const float out = ax < 0.55f ? small : big;
  return x != x ? x : out;
}

inline constexpr float kSqrt1_2 = 0.70710678118654752440f;                                    // 1/sqrt(2)
inline constexpr float kGeluBeta = 1.12837916709551257390f * 0.70710678118654752440f * 0.5f;  // 1/sqrt(2 pi)

// The exact GELU, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as h + h erf with h = x / 2 in one FMA: the one
// element function of nn::GELU("none") (engine/ops/activation.cpp) and of the int8 MLP
// (quant/int8_mlp.cpp), which must agree bit for bit.
inline __attribute__((always_inline)) float vgelu(float x) {
  const float h = x * 0.5f;
  return fmadd(h, verf(x * kSqrt1_2), h);
}

// Its gradient: g * (Phi(x) + x * phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi) (PyTorch's
// gelu_backward).
inline __attribute__((always_inline)) float vgelu_backward(float g, float x) {
  const float cdf = fmadd(0.5f, verf(x * kSqrt1_2), 0.5f);
  const float pdf = vexp(-0.5f * x * x) * kGeluBeta;
  return g * fmadd(x, pdf, cdf);
}

}  // namespace quench::kernels
