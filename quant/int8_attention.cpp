#include "quant/int8_attention.hpp"

#include <algorithm>
#include <vector>

#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"
#include "kernels/softmax_rows.hpp"
#include "quant/grid_product.hpp"
#include "quant/quantized_linear.hpp"
#include "quant/qat_matmul_op.hpp"
#include "quant/scratch.hpp"

namespace quench::quant {
namespace {

// A quantizer's grid as fake_quant_row takes it; `shift` moves codes, zero point and range alike
// (-128: the s8 operand qb - 128 of grid_product, with the rounding and clamping of the u8 grid).
struct Grid {
  float scale;
  int32_t zero_point, qmin, qmax;
  Grid(const FakeQuantize& fq, int32_t shift = 0)
      : scale(fq.scale.data_ptr<float>()[0]),
        zero_point(fq.zero_point.data_ptr<int32_t>()[0] + shift),
        qmin(static_cast<int32_t>(fq.spec().quant_min) + shift),
        qmax(static_cast<int32_t>(fq.spec().quant_max) + shift) {}
  void codes(const float* x, int64_t n, uint8_t* code) const {
    kernels::fake_quant_row(x, n, scale, zero_point, qmin, qmax, nullptr, nullptr, nullptr, code);
  }
};

// The four grids of one attention: q, k - 128, probs, v - 128.
struct Grids {
  Grid q, k, p, v;
  Grids(const FakeQuantize& fq_q, const FakeQuantize& fq_k, const FakeQuantize& fq_probs, const FakeQuantize& fq_v)
      : q(fq_q), k(fq_k, -128), p(fq_probs), v(fq_v, -128) {}
  const Grid& operand(int64_t s) const { return s == 0 ? q : s == 1 ? k : v; }
};

// One (batch, head): codes qc, kc, vc [N, hd] -> ctx rows [N, hd] (row stride ldo). Per-thread scratch.
void attend_head(const Grids& g, const uint8_t* qc, const uint8_t* kc, const uint8_t* vc, int64_t N, int64_t hd,
                 float scale, const uint8_t* key_mask, float* ctx, int64_t ldo) {
  thread_local std::vector<uint8_t> probs_codes;
  thread_local std::vector<int32_t> acc_buf;
  thread_local std::vector<float> score_buf;
  uint8_t* pc = scratch(probs_codes, N * N);
  int32_t* acc = scratch(acc_buf, N * std::max(N, hd));  // scores [N, N], then the context [N, hd]
  float* scores = scratch(score_buf, 2 * N * N);
  float* probs = scores + N * N;
  grid_product(qc, g.q.zero_point, reinterpret_cast<const int8_t*>(kc), false, g.k.zero_point + 128, N, N, hd,
               g.q.scale * g.k.scale, acc, scores, N);
  kernels::attn_softmax_rows(scores, N, N, scale, key_mask, probs);
  g.p.codes(probs, N * N, pc);
  grid_product(pc, g.p.zero_point, reinterpret_cast<const int8_t*>(vc), true, g.v.zero_point + 128, N, hd, N,
               g.p.scale * g.v.scale, acc, ctx, ldo);
}

// Every head of codes [3, B, H, N, hd] (q, k - 128, v - 128) -> context [B, N, H * hd].
Tensor attend_heads(const Grids& g, const Tensor& codes, double scale, const Tensor& mask) {
  const int64_t B = codes.size(1), H = codes.size(2), N = codes.size(3), hd = codes.size(4), D = H * hd;
  Tensor out = Tensor::empty({B, N, D}, kFloat32);
  const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
  const uint8_t* pc = codes.data_ptr<uint8_t>();
  const int64_t head = N * hd, operand = B * H * head;
  float* po = out.data_ptr<float>();
  kernels::parallel_for(B * H, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      attend_head(g, pc + i * head, pc + operand + i * head, pc + 2 * operand + i * head, N, hd,
                  static_cast<float>(scale), pm ? pm + b * N : nullptr, po + b * N * D + h * hd, D);
    }
  });
  return out;
}

void check_tokens(int64_t N, const char* op) {
  QUENCH_CHECK(N <= kInt8AttentionMaxTokens, op, ": ", N, " tokens exceed ", kInt8AttentionMaxTokens,
               "; use the composed path (qat_attention_probs, qat_attention_apply)");
}

}  // namespace

void check_key_mask(const Tensor& mask, int64_t B, int64_t N, const char* op) {
  if (mask.defined())
    QUENCH_CHECK(mask.dtype() == kUInt8 && mask.dim() == 2 && mask.size(0) == B && mask.size(1) == N, op,
                 ": expected a u8 key-padding mask [", B, ", ", N, "], got ", dtype_name(mask.dtype()), " ",
                 shape_str(mask.sizes()));
}

bool integer_operand(const FakeQuantize& fq) {
  return !fq.learnable() && fq.fake_quant_enabled() && fq.num_forward_hooks() == 0;
}

bool int8_attention_applies(const FakeQuantize& q, const FakeQuantize& k, const FakeQuantize& probs,
                            const FakeQuantize& v) {
  for (const FakeQuantize* f : {&q, &k, &probs, &v})
    if (!integer_operand(*f) || (f->is_training() && f->observer_enabled()) ||
        !qat_matmul_fits(f->spec(), f->scale, f->zero_point))
      return false;
  return true;
}

Tensor int8_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, double scale, const Tensor& mask_in,
                      const FakeQuantize& fq_q, const FakeQuantize& fq_k, const FakeQuantize& fq_probs,
                      const FakeQuantize& fq_v) {
  QUENCH_CHECK(q_in.dim() == 4 && k_in.sizes() == q_in.sizes() && v_in.sizes() == q_in.sizes(),
               "int8_attention: expected q, k, v of one shape [B, H, N, hd], got ", shape_str(q_in.sizes()), ", ",
               shape_str(k_in.sizes()), ", ", shape_str(v_in.sizes()));
  for (const Tensor* t : {&q_in, &k_in, &v_in}) check_dtype(*t, kFloat32, "int8_attention", "q, k, v");
  const int64_t B = q_in.size(0), H = q_in.size(1), N = q_in.size(2), hd = q_in.size(3), D = H * hd;
  check_tokens(N, "int8_attention");
  check_key_mask(mask_in, B, N, "int8_attention");
  auto last_contiguous = [](const Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const Tensor q = last_contiguous(q_in), k = last_contiguous(k_in), v = last_contiguous(v_in);
  Tensor out = Tensor::empty({B, N, D}, kFloat32);
  if (out.numel() == 0) return out;
  const Tensor mask = mask_in.defined() ? mask_in.contiguous() : Tensor();
  const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
  const Grids g(fq_q, fq_k, fq_probs, fq_v);
  const Tensor* operands[3] = {&q, &k, &v};
  float* po = out.data_ptr<float>();
  kernels::parallel_for(B * H, 1, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<uint8_t> codes;
    uint8_t* qkv = scratch(codes, 3 * N * hd);  // a head's codes, in cache
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      for (int64_t s = 0; s < 3; ++s) {
        const Tensor& t = *operands[s];
        const float* base = t.data_ptr<float>() + b * t.stride(0) + h * t.stride(1);
        for (int64_t n = 0; n < N; ++n) g.operand(s).codes(base + n * t.stride(2), hd, qkv + (s * N + n) * hd);
      }
      attend_head(g, qkv, qkv + N * hd, qkv + 2 * N * hd, N, hd, static_cast<float>(scale), pm ? pm + b * N : nullptr,
                  po + b * N * D + h * hd, D);
    }
  });
  return out;
}

Tensor int8_attention_projected(const Tensor& x_in, const std::vector<QuantizedLinear*>& proj, int64_t heads,
                                double scale, const Tensor& mask_in, const FakeQuantize& fq_q,
                                const FakeQuantize& fq_k, const FakeQuantize& fq_probs, const FakeQuantize& fq_v) {
  const char* op = "int8_attention_projected";
  check_dtype(x_in, kFloat32, op, "x");
  QUENCH_CHECK(x_in.dim() == 3, op, ": expected x [B, N, in], got ", shape_str(x_in.sizes()));
  QUENCH_CHECK(!proj.empty() && heads > 0, op, ": needs the projections and a positive head count");
  int64_t width = 0;
  for (const QuantizedLinear* p : proj) {
    QUENCH_CHECK(p->in_features == x_in.size(2), op, ": a projection takes ", p->in_features,
                 " features, x has ", shape_str(x_in.sizes()));
    width += p->out_features;
  }
  QUENCH_CHECK(width % (3 * heads) == 0, op, ": the projections give ", width, " features, not q, k, v of ", heads,
               " heads");
  const int64_t B = x_in.size(0), N = x_in.size(1), K = x_in.size(2), H = heads, hd = width / (3 * H), D = H * hd;
  const int64_t M = B * N;
  check_tokens(N, op);
  check_key_mask(mask_in, B, N, op);
  Tensor codes = Tensor::empty({3, B, H, N, hd}, kUInt8);
  if (codes.numel() == 0) return Tensor::empty({B, N, D}, kFloat32);
  std::vector<bool> reuse_input;  // the previous projection's input codes serve this one too
  for (size_t j = 0; j < proj.size(); ++j) {
    QUENCH_CHECK(proj[j]->frozen_input_grid(), op, ": projection ", j, " has no frozen input grid");
    proj[j]->prepare();  // once per forward: it compares the bytes
    reuse_input.push_back(j > 0 && proj[j]->same_input_grid(*proj[j - 1]));
  }
  const Grids g(fq_q, fq_k, fq_probs, fq_v);
  const Tensor x = x_in.contiguous();
  const float* px = x.data_ptr<float>();
  uint8_t* pc = codes.data_ptr<uint8_t>();
  // Each projection's rows as its forward computes them, a block of rows at a time: the
  // [rows, 3D] outputs stay in L2 and become codes there (the composed path's bits, never in memory).
  const int64_t rows_per = fused_row_block(M);
  kernels::parallel_for((M + rows_per - 1) / rows_per, 1, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<uint8_t> qx_buf;
    thread_local std::vector<float> y_buf;
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t m0 = blk * rows_per, r = std::min(M, m0 + rows_per) - m0;
      uint8_t* qx = scratch(qx_buf, r * K);
      float* y = scratch(y_buf, r * 3 * D);
      int64_t col = 0;
      for (size_t j = 0; j < proj.size(); ++j) {
        if (!reuse_input[j]) proj[j]->quantize_input(px + m0 * K, r, K, qx);
        proj[j]->gemm_f32(qx, r, y + col, 3 * D);
        col += proj[j]->out_features;
      }
      for (int64_t i = 0; i < r; ++i) {
        const int64_t b = (m0 + i) / N, n = (m0 + i) % N;
        for (int64_t s = 0; s < 3; ++s)
          for (int64_t h = 0; h < H; ++h)
            g.operand(s).codes(y + i * 3 * D + s * D + h * hd, hd, pc + (((s * B + b) * H + h) * N + n) * hd);
      }
    }
  });
  return attend_heads(g, codes, scale, mask_in.defined() ? mask_in.contiguous() : Tensor());
}

}  // namespace quench::quant
