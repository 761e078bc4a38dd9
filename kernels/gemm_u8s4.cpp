// u8s4 GEMM front end: weight packing (nibbles and per-group column sums), argument checks, the
// epilogue's scale tables (computed here once so every path sees the same floats) and the dispatch
// table.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/gemm_u8s4_internal.hpp"

namespace quench::kernels {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument("gemm_u8s4: " + what); }

constexpr int kNr[] = {64, 16};  // vnni, avx2

// Byte offset and nibble (0 = low) of W[n % nr, k] inside its panel.
struct NibbleAt {
  int64_t byte;
  int shift;
};

NibbleAt nibble_at(U8S4Layout layout, int64_t c, int64_t k) {
  if (layout == U8S4Layout::vnni) {
    const int64_t b = k / 8, r = k % 8, j = c / 16, cc = c % 16;
    return {b * 256 + (j * 16 + cc) * 4 + r % 4, r < 4 ? 0 : 4};
  }
  // avx2: block of 4 k, 16 words; word 2*(c%8) + h, nibble (c/8) + 2*(k%4 / 2)
  const int64_t b = k / 4, r = k % 4, h = r % 2, word = 2 * (c % 8) + h;
  const int nib = static_cast<int>(c / 8 + 2 * (r / 2));
  return {b * 32 + word * 2 + nib / 2, (nib % 2) * 4};
}

}  // namespace

const int32_t* PackedWeightsU8S4::panel_colsums(int64_t p) const {
  return reinterpret_cast<const int32_t*>(panel(p) + Kp * nr / 2);
}

int32_t PackedWeightsU8S4::colsum(int64_t n, int64_t g) const { return panel_colsums(n / nr)[g * nr + n % nr]; }

int8_t PackedWeightsU8S4::weight(int64_t n, int64_t k) const {
  const NibbleAt at = nibble_at(layout, n % nr, k);
  const int v = (panel(n / nr)[at.byte] >> at.shift) & 15;
  return static_cast<int8_t>(v >= 8 ? v - 16 : v);
}

PackedWeightsU8S4 pack_weights_u8s4(const int8_t* W, int64_t N, int64_t K, int64_t ldw, int64_t group_size, Isa isa) {
  if (N < 1 || K < 1 || K > 65536 || ldw < K || !W)
    fail("pack_weights: W [N=" + std::to_string(N) + ", K=" + std::to_string(K) + "] ldw=" + std::to_string(ldw) +
         ": expected N >= 1, 1 <= K <= 65536, ldw >= K, W non-null");
  if (group_size != 0 && (group_size < 8 || group_size > 65536 || group_size % 8 != 0))
    fail("pack_weights: group_size " + std::to_string(group_size) +
         " must be 0 (per channel) or a multiple of 8 in [8, 65536]");
  PackedWeightsU8S4 pw;
  pw.N = N;
  pw.K = K;
  pw.Kp = (K + 7) / 8 * 8;
  pw.group_size = group_size;
  pw.group_k = group_size ? group_size : pw.Kp;
  pw.num_groups = group_size ? (K + group_size - 1) / group_size : 1;
  pw.isa = isa;
  pw.layout = isa == Isa::avx512_vnni ? U8S4Layout::vnni : U8S4Layout::avx2;
  pw.nr = kNr[int(pw.layout)];
  pw.panel_bytes = (pw.Kp * pw.nr / 2 + pw.num_groups * pw.nr * 4 + 63) / 64 * 64;
  const int64_t np = pw.num_panels();
  pw.buf.reset(static_cast<uint8_t*>(std::aligned_alloc(64, np * pw.panel_bytes)));
  if (!pw.buf) throw std::bad_alloc();
  std::memset(pw.buf.get(), 0, np * pw.panel_bytes);
  for (int64_t n = 0; n < N; ++n) {
    const int8_t* row = W + n * ldw;
    for (int64_t k = 0; k < K; ++k)
      if (row[k] < -8 || row[k] > 7)
        fail("pack_weights: W[" + std::to_string(n) + ", " + std::to_string(k) + "] = " + std::to_string(row[k]) +
             " is outside the s4 range [-8, 7]");
  }
  for (int64_t p = 0; p < np; ++p) {
    uint8_t* dst = pw.buf.get() + p * pw.panel_bytes;
    int32_t* cs = reinterpret_cast<int32_t*>(dst + pw.Kp * pw.nr / 2);
    for (int c = 0; c < pw.nr && p * pw.nr + c < N; ++c) {
      const int8_t* row = W + (p * pw.nr + c) * ldw;
      for (int64_t k = 0; k < K; ++k) {
        const NibbleAt at = nibble_at(pw.layout, c, k);
        dst[at.byte] = static_cast<uint8_t>(dst[at.byte] | ((row[k] & 15) << at.shift));
        cs[(k / pw.group_k) * pw.nr + c] += row[k];
      }
    }
  }
  return pw;
}

namespace {

// The scale tables of one call (storage for the Job's pointers).
struct Tables {
  std::vector<float> mult, ws;
};

bool bad_scale(float s) { return !(s > 0.f) || !std::isfinite(s); }

// The index of the first scale that is not positive and finite, or -1. A branch-free first pass
// (it vectorizes): a grouped layer's [N, groups] table is checked on every call.
int64_t first_bad_scale(const float* s, int64_t n) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= (s[i] > 0.f) & (s[i] <= std::numeric_limits<float>::max());
  if (ok) return -1;
  for (int64_t i = 0; i < n; ++i)
    if (bad_scale(s[i])) return i;
  return -1;
}

// Validates the arguments and fills the job.
u8s4::Job make_job(const GemmU8S4Args& a, Tables& t) {
  const PackedWeightsU8S4* W = a.W;
  if (!W || !W->buf) fail("packed weights are null (pack them with pack_weights_u8s4)");
  const int64_t N = W->N, K = W->K, ng = W->num_groups;
  if (a.M < 0 || (a.M > 0 && (!a.A || !a.C)) || a.lda < K || a.ldc < N)
    fail("A [" + std::to_string(a.M) + ", " + std::to_string(K) + "] lda=" + std::to_string(a.lda) + ", W [" +
         std::to_string(N) + ", " + std::to_string(K) + "], C ldc=" + std::to_string(a.ldc) +
         ": expected M >= 0, non-null A and C, lda >= K, ldc >= N");
  const int32_t zlo = a.a_signed ? -128 : 0, zhi = a.a_signed ? 127 : 255;
  auto check_z = [&](int32_t z, const std::string& where) {
    if (z < zlo || z > zhi)
      fail("activation zero point " + where + std::to_string(z) + " outside the " + (a.a_signed ? "s8" : "u8") +
           " range");
  };
  if (a.a_zero_points) {
    for (int64_t m = 0; m < a.M; ++m) check_z(a.a_zero_points[m], "of row " + std::to_string(m) + ": ");
  } else {
    check_z(a.a_zero_point, "");
  }
  if (a.out == U8S4Output::s32 && ng != 1)
    fail("s32 output needs per-channel weights; W has " + std::to_string(ng) + " groups of " +
         std::to_string(W->group_size) + " (use the f32 epilogue)");
  if (a.residual && (a.out != U8S4Output::f32 || a.ldr < N))
    fail("a residual needs f32 output and ldr >= N (ldr=" + std::to_string(a.ldr) + ", N=" + std::to_string(N) + ")");
  if (a.residual && a.M > 0) {
    // C itself (element by element, each read just before it is written) or memory apart from C.
    const auto c = reinterpret_cast<uintptr_t>(a.C), r = reinterpret_cast<uintptr_t>(a.residual);
    const auto span = [&](int64_t ld) { return static_cast<uintptr_t>(((a.M - 1) * ld + N) * 4); };
    const bool apart = r + span(a.ldr) <= c || c + span(a.ldc) <= r;
    if (!(r == c && a.ldr == a.ldc) && !apart)
      fail("the residual overlaps C without being C itself with ldr == ldc (ldr=" + std::to_string(a.ldr) +
           ", ldc=" + std::to_string(a.ldc) + ")");
  }
  u8s4::Job job{a.M,  N,     K,      static_cast<const uint8_t*>(a.A), a.lda,  a.a_signed, a.a_zero_point,
                a.a_zero_points, W, a.out, a.C, a.ldc, nullptr, nullptr, nullptr, nullptr, nullptr, 0};
  if (a.out == U8S4Output::f32) {
    if (!a.w_scale)
      fail("the f32 epilogue needs w_scale [N=" + std::to_string(N) + ", groups=" + std::to_string(ng) + "]");
    if (const int64_t i = first_bad_scale(a.w_scale, N * ng); i >= 0)
      fail("w_scale[" + std::to_string(i / ng) + ", " + std::to_string(i % ng) + "] must be positive and finite");
    const float* w_scale = a.w_scale;
    if (a.a_scales) {
      if (const int64_t m = first_bad_scale(a.a_scales, a.M); m >= 0)
        fail("a_scales[" + std::to_string(m) + "] must be positive and finite");
      t.ws.resize(N * ng);
      float* ws = t.ws.data();
      for (int64_t g = 0; g < ng; ++g)
        for (int64_t n = 0; n < N; ++n) ws[g * N + n] = w_scale[n * ng + g];
      job.ass = a.a_scales;
      job.ws = ws;
    } else {
      if (bad_scale(a.a_scale)) fail("a_scale must be positive and finite");
      t.mult.resize(N * ng);
      float* mult = t.mult.data();
      const float sa = a.a_scale;
      for (int64_t g = 0; g < ng; ++g)
        for (int64_t n = 0; n < N; ++n) mult[g * N + n] = sa * w_scale[n * ng + g];
      job.mult = mult;
    }
    job.bias = a.bias;
    job.res = a.residual;
    job.ldr = a.ldr;
  }
  return job;
}

using PathFn = void (*)(const u8s4::Job&);
// The path that reads `layout` at `level`, else the reference. Written as comparisons on the
// ordered levels, not a [layout][level] table, so a level added between avx2 and avx512_vnni
// (AVX-VNNI: ymm vpdpbusd) runs the AVX2 kernel until it gets one of its own.
PathFn path_for(U8S4Layout layout, Isa level) {
  if (layout == U8S4Layout::vnni) return level >= Isa::avx512_vnni ? u8s4::gemm_vnni : u8s4::gemm_ref;
  return level >= Isa::avx2 ? u8s4::gemm_avx2 : u8s4::gemm_ref;
}

}  // namespace

void gemm_u8s4(const GemmU8S4Args& args) {
  Tables t;
  u8s4::Job job = make_job(args, t);
  if (job.M == 0) return;
  const Isa level = std::min(active_isa(), args.W->isa);
  path_for(args.W->layout, level)(job);
}

void gemm_u8s4_ref(const GemmU8S4Args& args) {
  Tables t;
  u8s4::Job job = make_job(args, t);
  if (job.M == 0) return;
  u8s4::gemm_ref(job);
}

}  // namespace quench::kernels
