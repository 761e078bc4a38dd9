// Exact int8 GEMM for quantized Linear layers: u8 (or s8) activations x s8 packed weights -> s32,
// optionally through a fused epilogue (dequantize to fp32 [+ bias] [+ GELU], or requantize to u8).
//
//   acc[m,n] = sum_k (qa[m,k] - z_a) * qw[n,k]            A [M,K] row stride lda, W [N,K] (a
//   Linear's weight)
//
// Weights are symmetric (no zero point), so the activation zero point folds in through the column
// sums computed at pack time: acc = sum_k qa*qw - z_a * colsum_w[n]. Integer results are exact (no
// int16 saturation on any path) and identical on every ISA path and thread count; K <= 65536 keeps
// every partial sum inside int32. Float epilogues are bit-identical across paths too: each path
// does the same IEEE operations in the same order, without FMA (see the epilogue definitions
// below).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "kernels/isa.hpp"

namespace quench::kernels {

// How the s8 weights are laid out. Every panel holds NR output channels (zero padded past N) over
// Kp = K rounded up to 4 (zero padded), followed by NR int32 column sums (0 for padded columns).
//   vnni:   s8    [N/64][Kp/4][64][4]  four consecutive k of one column form the dword vpdpbusd reads
//   i16:    int16 [N/16][Kp/2][16][2]  s8 widened to int16 pairs for vpmaddwd (the exact AVX2 path)
//   vnni16: s8    [N/16][Kp/4][16][4]  the vnni layout in 16-channel panels, for 256-bit vpdpbusd
enum class U8S8Layout : int { vnni = 0, i16 = 1, vnni16 = 2 };

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// s8 weights W[N,K] packed once for gemm_u8s8. Movable, not copyable.
struct PackedWeightsU8S8 {
  int64_t N = 0, K = 0;     // logical shape of W
  int64_t Kp = 0;           // K rounded up to a multiple of 4
  int nr = 0;               // output channels per panel
  int64_t panel_bytes = 0;  // bytes of one panel including its column sums (a multiple of 64)
  U8S8Layout layout = U8S8Layout::vnni;
  Isa isa = Isa::ref;  // the level it was packed for (its fastest consumer)
  std::unique_ptr<uint8_t[], AlignedFree> buf;  // 64-byte aligned, num_panels() * panel_bytes

  int64_t num_panels() const { return nr ? (N + nr - 1) / nr : 0; }
  const uint8_t* panel(int64_t p) const { return buf.get() + p * panel_bytes; }
  // The NR column sums of panel p (sum_k W[n,k] for its channels).
  const int32_t* panel_colsum(int64_t p) const;
  int32_t colsum(int64_t n) const;            // sum_k W[n,k]
  int8_t weight(int64_t n, int64_t k) const;  // W[n,k] read back from the packed layout
};

// Packs W[N,K] (row stride ldw >= K) for the path that `isa` selects: vnni layout for avx512_vnni,
// vnni16 for avx_vnni, i16 otherwise (ref reads every layout). N, K >= 1, K <= 65536; throws std::invalid_argument.
PackedWeightsU8S8 pack_weights_u8s8(const int8_t* W, int64_t N, int64_t K, int64_t ldw,
                                    Isa isa = active_isa());
// The same from W stored transposed, Wt [K, N] with row stride ldwt >= N (Wt[k * ldwt + n] = W[n, k]):
// a product whose right operand is already [K, N], as attention's probs @ v. Byte for byte the
// packing of W.
PackedWeightsU8S8 pack_weights_u8s8_kn(const int8_t* Wt, int64_t N, int64_t K, int64_t ldwt,
                                       Isa isa = active_isa());

enum class U8S8Output : int {
  s32 = 0,       // int32 C[m,n] = acc
  f32 = 1,       // float C[m,n] = float(acc) * mult[n] + bias[n] (+ residual[m,n])
  f32_gelu = 2,  // float C[m,n] = gelu(the f32 value)
  u8 = 3,        // uint8 C[m,n] = clamp(round_half_even(float(acc) * mult[n]) + z_y, 0, 255)
};

// One GEMM call. Epilogue float math (identical on every path, no FMA):
//   f32:  mult[n] = a_scale * w_scale[n] (float); y = float(acc) * mult[n]; y = y + bias[n] if bias;
//         y = residual[m,n] + y if residual (a residual connection's x + f(x), fused)
//   u8:   mult[n] = (a_scale * w_scale[n]) / y_scale (float, in that order);
//         t = nearbyint(float(acc) * mult[n]) + float(y_zero_point); t = t > 0 ? t : 0;
//         t = t < 255 ? t : 255; C = uint8(t)
//   gelu: y = (0.5f * x) * (1 + erf_approx(x * 0.70710678f)), erf_approx the
//   Abramowitz-Stegun 7.1.26
//         formula PyTorch's vectorized erf uses, with its own exp; |gelu - exact erf GELU| <=
//         1e-6 * max(1, |x|) (tested against std::erf).
// float(acc) rounds to nearest even (exact for |acc| < 2^24).
struct GemmU8S8Args {
  int64_t M = 0;
  const void* A = nullptr;  // [M,K] row stride lda; uint8_t, or int8_t when a_signed
  int64_t lda = 0;
  bool a_signed = false;
  int32_t a_zero_point = 0;  // in [0,255] for u8, [-128,127] for s8
  const PackedWeightsU8S8* W = nullptr;
  U8S8Output out = U8S8Output::s32;
  void* C = nullptr;  // [M,N] row stride ldc; int32_t, float or uint8_t per `out`
  int64_t ldc = 0;
  float a_scale = 1.f;             // epilogues only
  const float* w_scale = nullptr;  // [N], epilogues only
  const float* bias = nullptr;     // [N] or null; f32 / f32_gelu only
  const float* residual = nullptr;  // [M,N] row stride ldr, or null; f32 only; C itself (ldr = ldc) or apart from C
  int64_t ldr = 0;
  float y_scale = 1.f;             // u8 only
  int32_t y_zero_point = 0;        // u8 only, in [0,255]
};

// Runs on the path min(active_isa(), W->isa) when it can read W's layout (vnni layout: avx512_vnni;
// vnni16: avx_vnni, on a CPU with AVX-VNNI; i16 layout: avx2 and up, the AVX2 kernel), else on the
// reference path.
// Multithreaded over blocks of C. Throws std::invalid_argument on bad arguments.
void gemm_u8s8(const GemmU8S8Args& args);
// Plain loops in int64, the twin every path is tested against (reads either layout).
void gemm_u8s8_ref(const GemmU8S8Args& args);

// Row quantizer, the project's one rounding rule (quant/qparams.hpp) and PyTorch's own arithmetic:
// y[i] = clamp(nearbyint(x[i] * inv_scale) + zero_point, 0, 255) with inv_scale = 1.0f / scale in
// float, as ATen's quantize_val and fake_quantize CPU kernels compute it (ties to even; zero point
// added after rounding; NaN -> 0). Note x * (1/s) differs from x / s in rare near-tie cases
// (x = -11.15f, s = 0.1f: x * (1/s) = -111.5 exactly, x / s = -111.49999); measured with PyTorch 1.13
// here: bit-exact with quantize_per_tensor and fake_quantize_per_tensor_affine on 2M values.
// scale > 0 finite, zero_point in [0,255].
void quantize_row_u8(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* y);
void quantize_row_u8_ref(const float* x, int64_t n, float scale, int32_t zero_point, uint8_t* y);

// The GELU of the f32_gelu epilogue, scalar (what every path computes bit for bit).
float gelu_erf_approx(float x);

}  // namespace quench::kernels
