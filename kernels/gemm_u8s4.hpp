// Exact int4-weight GEMM for low-bit quantized Linear layers: u8 (or s8) activations x packed s4
// weights (two per byte) -> s32, or through a dequantizing f32 epilogue with per-channel or
// per-group weight scales.
//
//   acc_g[m,n] = sum_{k in group g} (qa[m,k] - z_a[m]) * qw[n,k]     A [M,K] row stride lda,
//                                                                      W [N,K] in [-8, 7]
//
// Groups cut K into runs of G consecutive k (the last one shorter when G does not divide K); per
// channel is one group over all of K. The activation zero point folds in through per-group column
// sums computed at pack time (acc_g = sum qa*qw - z_a * colsum_g[n]); z_a and the activation scale
// are per tensor or per row (dynamic per-token quantization). Integer sums are exact on every path
// (no int16 saturation; K <= 65536) and identical on every ISA path and thread count; the f32
// epilogue is bit-identical across paths too: every path does the IEEE operations below in the
// same order, without FMA.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/gemm_u8s8.hpp"  // AlignedFree
#include "kernels/isa.hpp"

namespace quench::kernels {

// How the s4 weights are laid out (tests/test_gemm_u8s4.cpp reads them back through weight()).
// Every panel holds NR output channels (zero padded past N) over Kp = K rounded up to 8 (zero
// padded), followed by num_groups x NR int32 column sums (group-major; 0 for padded channels).
//   vnni: NR = 64; per block of 8 k, 4 x 64 bytes: byte [j][c][i] (j = 0..3 the 16-channel quarter,
//         c = 0..15 the channel in it, i = 0..3) holds W[n, 8b+i] in its low nibble and W[n, 8b+4+i]
//         in its high nibble (two's complement), n = 64p + 16j + c: one zmm load gives, masked, the
//         vpdpbusd dwords (four consecutive k of one channel) of two consecutive 4-k steps.
//   avx2: NR = 16; per block of 4 k, 16 little-endian 16-bit words: word 2c+h (c = 0..7, h = 0..1)
//         holds in its nibbles 0..3 W[c, 4b+h], W[8+c, 4b+h], W[c, 4b+2+h], W[8+c, 4b+2+h]: an
//         arithmetic shift of the 16-bit lanes gives the int16 pairs (k, k+1) vpmaddwd reads.
enum class U8S4Layout : int { vnni = 0, avx2 = 1 };

// s4 weights W[N,K] packed once for gemm_u8s4. Movable, not copyable.
struct PackedWeightsU8S4 {
  int64_t N = 0, K = 0;      // logical shape of W
  int64_t Kp = 0;            // K rounded up to a multiple of 8
  int64_t group_size = 0;    // k per group; 0: per channel (one group)
  int64_t group_k = 0;       // k per group as the kernels walk it (group_size, or Kp per channel)
  int64_t num_groups = 0;    // ceil(K / group_size), 1 per channel
  int nr = 0;                // output channels per panel
  int64_t panel_bytes = 0;   // bytes of one panel including its column sums (a multiple of 64)
  U8S4Layout layout = U8S4Layout::vnni;
  Isa isa = Isa::ref;  // the level it was packed for (its fastest consumer)
  std::unique_ptr<uint8_t[], AlignedFree> buf;  // 64-byte aligned, num_panels() * panel_bytes

  int64_t num_panels() const { return nr ? (N + nr - 1) / nr : 0; }
  const uint8_t* panel(int64_t p) const { return buf.get() + p * panel_bytes; }
  // Column sums of panel p: [num_groups][nr] int32, sum over group g of W[n,k].
  const int32_t* panel_colsums(int64_t p) const;
  int32_t colsum(int64_t n, int64_t g = 0) const;
  int8_t weight(int64_t n, int64_t k) const;  // W[n,k] read back from the packed layout
};

// Packs W[N,K] (int8 values in [-8, 7], row stride ldw >= K) for the path that `isa` selects: vnni
// layout for avx512_vnni, avx2 layout otherwise (ref reads either). group_size: 0 (per channel) or
// a multiple of 8 in [8, 65536]. N, K >= 1, K <= 65536; throws std::invalid_argument.
PackedWeightsU8S4 pack_weights_u8s4(const int8_t* W, int64_t N, int64_t K, int64_t ldw, int64_t group_size = 0,
                                    Isa isa = active_isa());

enum class U8S4Output : int {
  s32 = 0,  // int32 C[m,n] = acc (per channel only: one group)
  f32 = 1,  // float C[m,n], the epilogue below
};

// One GEMM call. The f32 epilogue (identical on every path, no FMA), with s_a the row's activation
// scale (a_scales[m], else a_scale) and ng = W->num_groups:
//   mult_g = s_a * w_scale[n * ng + g]                       (float)
//   y = float(acc_0) * mult_0;  y = y + float(acc_g) * mult_g   for g = 1 .. ng-1, ascending
//   y = y + bias[n] if bias;  y = residual[m,n] + y if residual
// With one group this is the u8s8 GEMM's f32 epilogue (kernels/gemm_u8s8.hpp) bit for bit.
// float(acc) rounds to nearest even (exact for |acc| < 2^24, so always for groups of <= 8192 k).
struct GemmU8S4Args {
  int64_t M = 0;
  const void* A = nullptr;  // [M,K] row stride lda; uint8_t, or int8_t when a_signed
  int64_t lda = 0;
  bool a_signed = false;
  int32_t a_zero_point = 0;               // in [0,255] for u8, [-128,127] for s8
  const int32_t* a_zero_points = nullptr;  // [M] per row (dynamic per token), or null: a_zero_point
  const PackedWeightsU8S4* W = nullptr;
  U8S4Output out = U8S4Output::s32;
  void* C = nullptr;  // [M,N] row stride ldc; int32_t or float per `out`
  int64_t ldc = 0;
  float a_scale = 1.f;                // f32 only
  const float* a_scales = nullptr;     // [M] per row, or null: a_scale; f32 only
  const float* w_scale = nullptr;      // [N, num_groups] row-major ([N] per channel); f32 only
  const float* bias = nullptr;         // [N] or null; f32 only
  const float* residual = nullptr;     // [M,N] row stride ldr, or null; C itself (ldr = ldc) or apart from C
  int64_t ldr = 0;
};

// Runs on the path min(active_isa(), W->isa) when it can read W's layout (vnni layout:
// avx512_vnni; avx2 layout: avx2 and avx512, which share the AVX2 kernel), else on the reference
// path. Multithreaded over blocks of C. Throws std::invalid_argument on bad arguments.
void gemm_u8s4(const GemmU8S4Args& args);
// Plain loops in int64, the twin every path is tested against (reads either layout).
void gemm_u8s4_ref(const GemmU8S4Args& args);

}  // namespace quench::kernels
