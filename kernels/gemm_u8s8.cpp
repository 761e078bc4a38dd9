// u8s8 GEMM front end: weight packing, argument checks, the per-channel epilogue multipliers
// (computed here once so every path sees the same floats) and the dispatch table.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/gemm_u8s8_internal.hpp"

namespace quench::kernels {
namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::invalid_argument("gemm_u8s8: " + what);
}

struct LayoutInfo {
  int nr;     // channels per panel
  int group;  // consecutive k of one channel stored together
  int elem;   // bytes per weight
  int shift;  // log2(group)
};
constexpr LayoutInfo kLayouts[] = {{64, 4, 1, 2}, {16, 2, 2, 1}, {16, 4, 1, 2}};  // vnni, i16, vnni16

// Weight k of channel c of a panel: its element index, (k / group, c, k % group).
inline int64_t slot(const LayoutInfo& L, int64_t c, int64_t k) {
  return (((k >> L.shift) * L.nr + c) << L.shift) + (k & (L.group - 1));
}

}  // namespace

const int32_t* PackedWeightsU8S8::panel_colsum(int64_t p) const {
  return reinterpret_cast<const int32_t*>(panel(p) + Kp * nr * kLayouts[int(layout)].elem);
}

int32_t PackedWeightsU8S8::colsum(int64_t n) const { return panel_colsum(n / nr)[n % nr]; }

int8_t PackedWeightsU8S8::weight(int64_t n, int64_t k) const {
  const LayoutInfo& L = kLayouts[int(layout)];
  const int64_t idx = slot(L, n % nr, k);
  const uint8_t* p = panel(n / nr);
  if (L.elem == 1) return static_cast<int8_t>(p[idx]);
  int16_t v;
  std::memcpy(&v, p + idx * 2, 2);
  return static_cast<int8_t>(v);
}

namespace {

// The packed buffer for W [N, K] on `isa`'s layout, zero filled (the padding stays zero), after the
// arguments' check: W's rows are `ld` apart, at least `ld_min`; `what` names W's form in errors.
PackedWeightsU8S8 empty_packed(const void* W, int64_t N, int64_t K, int64_t ld, int64_t ld_min, const char* what,
                               Isa isa) {
  if (N < 1 || K < 1 || K > 65536 || ld < ld_min || !W)
    fail(std::string(what) + " [N=" + std::to_string(N) + ", K=" + std::to_string(K) + "] row stride " +
         std::to_string(ld) + ": expected N >= 1, 1 <= K <= 65536, a row stride >= " + std::to_string(ld_min) +
         ", non-null");
  PackedWeightsU8S8 pw;
  pw.N = N;
  pw.K = K;
  pw.Kp = (K + 3) / 4 * 4;
  pw.isa = isa;
  pw.layout = isa == Isa::avx512_vnni ? U8S8Layout::vnni
              : isa == Isa::avx_vnni  ? U8S8Layout::vnni16
                                      : U8S8Layout::i16;
  const LayoutInfo& L = kLayouts[int(pw.layout)];
  pw.nr = L.nr;
  pw.panel_bytes = (pw.Kp * L.nr * L.elem + L.nr * 4 + 63) / 64 * 64;
  const int64_t np = pw.num_panels();
  pw.buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, np * pw.panel_bytes)));
  if (!pw.buf) throw std::bad_alloc();
  std::memset(pw.buf.get(), 0, np * pw.panel_bytes);
  return pw;
}

// Stores weight k of channel c in a panel (elem bytes).
void put(const LayoutInfo& L, uint8_t* panel, int64_t c, int64_t k, int8_t w) {
  const int64_t idx = slot(L, c, k);
  if (L.elem == 1) {
    panel[idx] = static_cast<uint8_t>(w);
  } else {
    const int16_t v = w;
    std::memcpy(panel + idx * 2, &v, 2);
  }
}

// The vnni layout has AVX-512 panel packers (the bytes of `put`); attention packs a head's keys and
// values on every call, where the loops were a tenth of its time.
bool vnni_fast(const PackedWeightsU8S8& pw) { return pw.layout == U8S8Layout::vnni && active_isa() >= Isa::avx512; }

}  // namespace

PackedWeightsU8S8 pack_weights_u8s8(const int8_t* W, int64_t N, int64_t K, int64_t ldw, Isa isa) {
  PackedWeightsU8S8 pw = empty_packed(W, N, K, ldw, K, "pack_weights: W", isa);
  const LayoutInfo& L = kLayouts[int(pw.layout)];
  for (int64_t p = 0; p < pw.num_panels(); ++p) {
    uint8_t* dst = pw.buf.get() + p * pw.panel_bytes;
    int32_t* cs = reinterpret_cast<int32_t*>(dst + pw.Kp * L.nr * L.elem);
    const int8_t* rows = W + p * L.nr * ldw;
    const int64_t nc = std::min<int64_t>(L.nr, N - p * L.nr);
    for (int64_t c = 0; c < nc; ++c) {
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += rows[c * ldw + k];
      cs[c] = sum;
    }
    if (vnni_fast(pw)) {
      u8s8::pack_panel_vnni_avx512(rows, nc, K, ldw, dst);
    } else {
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t k = 0; k < K; ++k) put(L, dst, c, k, rows[c * ldw + k]);
    }
  }
  return pw;
}

PackedWeightsU8S8 pack_weights_u8s8_kn(const int8_t* Wt, int64_t N, int64_t K, int64_t ldwt, Isa isa) {
  PackedWeightsU8S8 pw = empty_packed(Wt, N, K, ldwt, N, "pack_weights_kn: W^T", isa);
  const LayoutInfo& L = kLayouts[int(pw.layout)];
  for (int64_t p = 0; p < pw.num_panels(); ++p) {
    uint8_t* dst = pw.buf.get() + p * pw.panel_bytes;
    int32_t* cs = reinterpret_cast<int32_t*>(dst + pw.Kp * L.nr * L.elem);
    const int8_t* cols = Wt + p * L.nr;  // row k of W^T: weight k of every channel
    const int64_t nc = std::min<int64_t>(L.nr, N - p * L.nr);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < nc; ++c) cs[c] += cols[k * ldwt + c];
    if (vnni_fast(pw)) {
      u8s8::pack_panel_vnni_kn_avx512(cols, nc, K, ldwt, dst);
    } else {
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < nc; ++c) put(L, dst, c, k, cols[k * ldwt + c]);
    }
  }
  return pw;
}

namespace {

// Validates the arguments and fills the job (mult is the caller's storage for the multipliers).
u8s8::Job make_job(const GemmU8S8Args& a, std::vector<float>& mult) {
  const PackedWeightsU8S8* W = a.W;
  if (!W || !W->buf) fail("packed weights are null (pack them with pack_weights_u8s8)");
  const int64_t N = W->N, K = W->K;
  if (a.M < 0 || (a.M > 0 && (!a.A || !a.C)) || a.lda < K || a.ldc < N)
    fail("A [" + std::to_string(a.M) + ", " + std::to_string(K) + "] lda=" + std::to_string(a.lda) +
         ", W [" + std::to_string(N) + ", " + std::to_string(K) + "], C ldc=" +
         std::to_string(a.ldc) + ": expected M >= 0, non-null A and C, lda >= K, ldc >= N");
  if (a.a_signed ? (a.a_zero_point < -128 || a.a_zero_point > 127)
                 : (a.a_zero_point < 0 || a.a_zero_point > 255))
    fail("activation zero point " + std::to_string(a.a_zero_point) + " outside the " +
         (a.a_signed ? "s8" : "u8") + " range");
  if (a.residual && (a.out != U8S8Output::f32 || a.ldr < N))
    fail("a residual needs f32 output and ldr >= N (ldr=" + std::to_string(a.ldr) + ", N=" +
         std::to_string(N) + ")");
  if (a.residual && a.M > 0) {
    // C itself (element by element, each read just before it is written) or memory apart from C:
    // a shifted overlap would read elements another tile, maybe another thread, has already written.
    const auto c = reinterpret_cast<uintptr_t>(a.C), r = reinterpret_cast<uintptr_t>(a.residual);
    const auto span = [&](int64_t ld) { return static_cast<uintptr_t>(((a.M - 1) * ld + N) * 4); };
    const bool apart = r + span(a.ldr) <= c || c + span(a.ldc) <= r;
    if (!(r == c && a.ldr == a.ldc) && !apart)
      fail("the residual overlaps C without being C itself with ldr == ldc (ldr=" + std::to_string(a.ldr) +
           ", ldc=" + std::to_string(a.ldc) + ")");
  }
  mult.clear();
  if (a.out != U8S8Output::s32) {
    if (!a.w_scale) fail("epilogue needs w_scale [N=" + std::to_string(N) + "]");
    auto bad = [](float s) { return !(s > 0.f) || !std::isfinite(s); };
    if (bad(a.a_scale)) fail("a_scale must be positive and finite");
    if (a.out == U8S8Output::u8 && (bad(a.y_scale) || a.y_zero_point < 0 || a.y_zero_point > 255))
      fail("u8 output needs y_scale > 0 finite and y_zero_point in [0,255]");
    mult.resize(N);
    for (int64_t n = 0; n < N; ++n) {
      if (bad(a.w_scale[n])) fail("w_scale[" + std::to_string(n) + "] must be positive and finite");
      float s = a.a_scale * a.w_scale[n];
      mult[n] = a.out == U8S8Output::u8 ? s / a.y_scale : s;
    }
  }
  return u8s8::Job{a.M,
                   N,
                   K,
                   static_cast<const uint8_t*>(a.A),
                   a.lda,
                   a.a_signed,
                   a.a_zero_point,
                   W,
                   a.out,
                   a.C,
                   a.ldc,
                   mult.data(),
                   a.out == U8S8Output::f32 || a.out == U8S8Output::f32_gelu ? a.bias : nullptr,
                   static_cast<float>(a.y_zero_point),
                   a.residual,
                   a.ldr};
}

using PathFn = void (*)(const u8s8::Job&);
// [layout][level]: the path that reads `layout` at `level`, else the reference. Levels: ref, avx2,
// avx_vnni, avx512, avx512_vnni.
constexpr PathFn kPaths[][kNumIsas] = {
    {u8s8::gemm_ref, u8s8::gemm_ref, u8s8::gemm_ref, u8s8::gemm_ref, u8s8::gemm_vnni},        // vnni
    {u8s8::gemm_ref, u8s8::gemm_avx2, u8s8::gemm_avx2, u8s8::gemm_avx2, u8s8::gemm_avx2},     // i16
    {u8s8::gemm_ref, u8s8::gemm_ref, u8s8::gemm_avx_vnni, u8s8::gemm_ref, u8s8::gemm_ref},  // vnni16
};
static_assert(std::size(kPaths) == std::size(kLayouts), "one row per layout");

}  // namespace

void gemm_u8s8(const GemmU8S8Args& args) {
  std::vector<float> mult;
  u8s8::Job job = make_job(args, mult);
  if (job.M == 0) return;
  int level = std::min(static_cast<int>(active_isa()), static_cast<int>(args.W->isa));
  // Weights packed for avx_vnni on a CPU without it (an explicit pack level) run on the reference.
  if (level == static_cast<int>(Isa::avx_vnni) && !cpu_has_avx_vnni()) level = static_cast<int>(Isa::avx2);
  kPaths[int(args.W->layout)][level](job);
}

void gemm_u8s8_ref(const GemmU8S8Args& args) {
  std::vector<float> mult;
  u8s8::Job job = make_job(args, mult);
  if (job.M == 0) return;
  u8s8::gemm_ref(job);
}

namespace {
void check_quant(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y) {
  if (n < 0 || (n > 0 && (!x || !y)) || !(scale > 0.f) || !std::isfinite(scale) || zp < 0 ||
      zp > 255)
    throw std::invalid_argument(
        "quantize_row_u8: n=" + std::to_string(n) + " scale=" + std::to_string(scale) +
        " zero_point=" + std::to_string(zp) +
        ": expected n >= 0, non-null x and y, scale > 0 finite, zero_point in [0,255]");
}
}  // namespace

namespace {
void quantize_row(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y, bool ref) {
  check_quant(x, n, scale, zp, y);
  const float inv = 1.0f / scale;  // PyTorch multiplies by the float reciprocal
  if (!ref && active_isa() >= Isa::avx512_vnni) return u8s8::quantize_row_avx512(x, n, inv, zp, y);
  if (!ref && active_isa() >= Isa::avx2) return u8s8::quantize_row_avx2(x, n, inv, zp, y);
  const float zf = static_cast<float>(zp);
  for (int64_t i = 0; i < n; ++i) y[i] = u8s8::quantize_u8(x[i], inv, zf);
}
}  // namespace

void quantize_row_u8(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y) {
  quantize_row(x, n, scale, zp, y, false);
}
void quantize_row_u8_ref(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y) {
  quantize_row(x, n, scale, zp, y, true);
}

float gelu_erf_approx(float x) { return u8s8::gelu_scalar(x); }

}  // namespace quench::kernels
