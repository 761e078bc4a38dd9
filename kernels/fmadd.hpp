// a * b + c with one rounding, the same on every path: an FMA instruction in code compiled for
// AVX2 / AVX-512 (which bring FMA), libm's correctly rounded fmaf in baseline code. The build never
// contracts a * b + c by itself (-ffp-contract=off), so an FMA is wherever one is written and nowhere
// else, and a vector kernel that writes the same FMAs (_mm512_fmadd_ps) gives its scalar twin's bits.
// The price is paid in baseline code only (the QUENCH_ISA=ref path or a CPU without AVX2, and the
// element-wise ops' loop over strided inputs): one libm call per FMA, so GELU of [6400, 512] takes
// 88 ms there against 1.5 ms with AVX2 (bench_pointwise).
#pragma once

namespace quench::kernels {

inline __attribute__((always_inline)) float fmadd(float a, float b, float c) { return __builtin_fmaf(a, b, c); }

}  // namespace quench::kernels
