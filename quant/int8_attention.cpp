#include "quant/int8_attention.hpp"

#include <algorithm>
#include <vector>

#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"
#include "kernels/softmax_rows.hpp"
#include "quant/grid_product.hpp"
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

// Rows of one head of a [B, H, N, hd] view.
struct HeadRows {
  const float* base;
  int64_t sb, sh, sn;
  const float* row(int64_t b, int64_t h, int64_t n) const { return base + b * sb + h * sh + n * sn; }
};

HeadRows rows_of(const Tensor& t) { return {t.data_ptr<float>(), t.stride(0), t.stride(1), t.stride(2)}; }


}  // namespace

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
  QUENCH_CHECK(q_in.size(2) <= kInt8AttentionMaxTokens, "int8_attention: ", q_in.size(2), " tokens exceed ",
               kInt8AttentionMaxTokens, "; use the composed path (qat_attention_probs, qat_attention_apply)");
  if (mask_in.defined())
    QUENCH_CHECK(mask_in.dtype() == kUInt8 && mask_in.dim() == 2 && mask_in.size(0) == q_in.size(0) &&
                     mask_in.size(1) == q_in.size(2),
                 "int8_attention: expected a u8 key-padding mask [", q_in.size(0), ", ", q_in.size(2), "], got ",
                 dtype_name(mask_in.dtype()), " ", shape_str(mask_in.sizes()));
  auto last_contiguous = [](const Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const Tensor q = last_contiguous(q_in), k = last_contiguous(k_in), v = last_contiguous(v_in);
  const int64_t B = q.size(0), H = q.size(1), N = q.size(2), hd = q.size(3), D = H * hd;
  Tensor out = Tensor::empty({B, N, D}, kFloat32);
  if (out.numel() == 0) return out;
  const Tensor mask = mask_in.defined() ? mask_in.contiguous() : Tensor();
  const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
  const Grid gq(fq_q), gk(fq_k, -128), gp(fq_probs), gv(fq_v, -128);
  const int32_t zk = gk.zero_point + 128, zv = gv.zero_point + 128;
  const float mult_s = gq.scale * gk.scale, mult_c = gp.scale * gv.scale, sc = static_cast<float>(scale);
  const HeadRows rq = rows_of(q), rk = rows_of(k), rv = rows_of(v);
  float* po = out.data_ptr<float>();
  kernels::parallel_for(B * H, 1, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<uint8_t> codes;
    thread_local std::vector<int32_t> acc_buf;
    thread_local std::vector<float> score_buf;
    uint8_t* qc = scratch(codes, 3 * N * hd + N * N);
    uint8_t *kc = qc + N * hd, *vc = kc + N * hd, *pc = vc + N * hd;
    int32_t* acc = scratch(acc_buf, N * std::max(N, hd));  // scores [N, N], then the context [N, hd]
    float* scores = scratch(score_buf, 2 * N * N);
    float* probs = scores + N * N;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      for (int64_t n = 0; n < N; ++n) {
        gq.codes(rq.row(b, h, n), hd, qc + n * hd);
        gk.codes(rk.row(b, h, n), hd, kc + n * hd);
        gv.codes(rv.row(b, h, n), hd, vc + n * hd);
      }
      grid_product(qc, gq.zero_point, reinterpret_cast<const int8_t*>(kc), false, zk, N, N, hd, mult_s, acc, scores,
                   N);
      kernels::attn_softmax_rows(scores, N, N, sc, pm ? pm + b * N : nullptr, probs);
      gp.codes(probs, N * N, pc);
      grid_product(pc, gp.zero_point, reinterpret_cast<const int8_t*>(vc), true, zv, N, hd, N, mult_c, acc,
                   po + b * N * D + h * hd, D);
    }
  });
  return out;
}

}  // namespace quench::quant
