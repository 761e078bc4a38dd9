// Multi-head self-attention on the packed qkv projection, fused per (batch, head): q, k and v are
// read in place from the qkv Linear's output and the heads are written straight into [B, N, D], so
// neither the permuted views nor the head concatenation are ever copied, and the scale and mask are
// applied inside the softmax row. Every product is the same kernels::sgemm call (operands, layouts,
// leading dimensions aside) that matmul makes on the composed path (matmul(q, k^T) * scale,
// masked_fill, softmax, matmul(probs, v)), so results are bit-identical to it.
#include <cmath>
#include <limits>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "engine/ops/row_math.hpp"
#include "kernels/gemm.hpp"
#include "kernels/isa.hpp"
#include "kernels/parallel.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// qkv [B, N, 3, H, hd]: row n of head h's q, k, v starts at qkv + n * 3D + {0, D, 2D} + h * hd.
struct Heads {
  int64_t B, N, H, hd, D;
  const float* q(const float* qkv, int64_t b, int64_t h) const { return qkv + b * N * 3 * D + h * hd; }
  const float* k(const float* qkv, int64_t b, int64_t h) const { return q(qkv, b, h) + D; }
  const float* v(const float* qkv, int64_t b, int64_t h) const { return q(qkv, b, h) + 2 * D; }
  float* slot(float* base, int64_t b, int64_t h, int64_t which) const {
    return base + b * N * 3 * D + which * D + h * hd;
  }
};

Heads heads_of(const Tensor& qkv, int64_t heads, const char* op) {
  QUENCH_CHECK(qkv.dim() == 3 && heads > 0 && qkv.size(2) % (3 * heads) == 0, op,
               ": expected qkv [B, N, 3 * D] with D a multiple of heads (", heads, "), got ",
               shape_str(qkv.sizes()));
  const int64_t D = qkv.size(2) / 3;
  return {qkv.size(0), qkv.size(1), heads, D / heads, D};
}

// Zeroes the q/k/v slot `which` of a [B, N, 3D] gradient.
void zero_slot(const Heads& s, float* dqkv, int64_t which) {
  kernels::parallel_for(s.B * s.N, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* p = dqkv + r * 3 * s.D + which * s.D;
      for (int64_t j = 0; j < s.D; ++j) p[j] = 0.f;
    }
  });
}

// probs = softmax(scale * q k^T, keys with mask != 0 at -inf)
//   qkv [B, N, 3D] -> probs [B, H, N, N]; mask u8 [B, N] or undefined
struct AttentionProbsFn : Function<AttentionProbsFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& qkv_in, const Tensor& mask_in, int64_t heads,
                        double scale) {
    check_dtype(qkv_in, kFloat32, "attention_probs", "qkv");
    const Heads s = heads_of(qkv_in, heads, "attention_probs");
    Tensor mask;
    if (mask_in.defined()) {
      QUENCH_CHECK(
          mask_in.dtype() == kUInt8 && mask_in.dim() == 2 && mask_in.size(0) == s.B && mask_in.size(1) == s.N,
          "attention_probs: expected a u8 key-padding mask [", s.B, ", ", s.N, "], got ",
          dtype_name(mask_in.dtype()), " ", shape_str(mask_in.sizes()));
      mask = mask_in.contiguous();
    }
    Tensor qkv = qkv_in.contiguous();
    Tensor probs = Tensor::empty({s.B, s.H, s.N, s.N}, kFloat32);
    const float* px = qkv.data_ptr<float>();
    const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
    float* pp = probs.data_ptr<float>();
    const float sc = static_cast<float>(scale);
    const int64_t N = s.N, ld = 3 * s.D;
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> scores(N * N);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        kernels::sgemm(false, true, N, N, s.hd, 1.f, s.q(px, b, h), ld, s.k(px, b, h), ld, 0.f, scores.data(),
                       N);
        const uint8_t* mb = pm ? pm + b * N : nullptr;
        detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
          for (int64_t r = 0; r < N; ++r) {
            float* row = scores.data() + r * N;
            for (int64_t j = 0; j < N; ++j) row[j] = row[j] * sc;
            if (mb)
              for (int64_t j = 0; j < N; ++j)
                if (mb[j]) row[j] = -std::numeric_limits<float>::infinity();
            detail::softmax_row(row, pp + (i * N + r) * N, N, false);
          }
        });
      }
    });
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    return probs;
  }

  // dS = scale * softmax_backward(probs, dprobs);  dq = dS k;  dk = (q^T dS)^T;  dv = 0
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &qkv = v[0], &probs = v[1];
    if (!ctx->needs_input_grad(0)) return {Tensor(), Tensor()};
    const Heads s = heads_of(qkv, std::get<int64_t>(ctx->saved_data["heads"]), "attention_probs");
    const float sc = static_cast<float>(std::get<double>(ctx->saved_data["scale"]));
    Tensor gp = g[0].contiguous();
    Tensor dqkv = Tensor::empty(qkv.sizes(), kFloat32);
    const float* px = qkv.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* pg = gp.data_ptr<float>();
    float* pd = dqkv.data_ptr<float>();
    const int64_t N = s.N, hd = s.hd, ld = 3 * s.D;
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    zero_slot(s, pd, 2);
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> ds(N * N), dkt(hd * N);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
          for (int64_t r = 0; r < N; ++r) {
            float* row = ds.data() + r * N;
            detail::softmax_row_backward(pp + (i * N + r) * N, pg + (i * N + r) * N, row, N, false);
            for (int64_t j = 0; j < N; ++j) row[j] = row[j] * sc;
          }
        });
        kernels::sgemm(false, false, N, hd, N, 1.f, ds.data(), N, s.k(px, b, h), ld, 0.f, s.slot(pd, b, h, 0),
                       ld);
        // k's gradient as the composed path computes it, [hd, N], then transposed into place.
        kernels::sgemm(true, false, hd, N, N, 1.f, s.q(px, b, h), ld, ds.data(), N, 0.f, dkt.data(), N);
        float* dk = s.slot(pd, b, h, 1);
        for (int64_t n = 0; n < N; ++n)
          for (int64_t d = 0; d < hd; ++d) dk[n * ld + d] = dkt[d * N + n];
      }
    });
    return {dqkv, Tensor()};
  }
};

// out = probs v, heads side by side   probs [B, H, N, N], qkv [B, N, 3D] -> out [B, N, D]
struct AttentionApplyFn : Function<AttentionApplyFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& probs_in, const Tensor& qkv_in, int64_t heads) {
    check_dtype(probs_in, kFloat32, "attention_apply", "probs");
    check_dtype(qkv_in, kFloat32, "attention_apply", "qkv");
    const Heads s = heads_of(qkv_in, heads, "attention_apply");
    QUENCH_CHECK(probs_in.sizes() == Shape({s.B, s.H, s.N, s.N}), "attention_apply: expected probs [", s.B,
                 ", ", s.H, ", ", s.N, ", ", s.N, "] for qkv ", shape_str(qkv_in.sizes()), ", got ",
                 shape_str(probs_in.sizes()));
    Tensor probs = probs_in.contiguous(), qkv = qkv_in.contiguous();
    Tensor out = Tensor::empty({s.B, s.N, s.D}, kFloat32);
    const float* pp = probs.data_ptr<float>();
    const float* px = qkv.data_ptr<float>();
    float* po = out.data_ptr<float>();
    const int64_t N = s.N;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        kernels::sgemm(false, false, N, s.hd, N, 1.f, pp + i * N * N, N, s.v(px, b, h), 3 * s.D, 0.f,
                       po + b * N * s.D + h * s.hd, s.D);
      }
    });
    ctx->save_for_backward({probs, qkv});
    ctx->saved_data["heads"] = heads;
    return out;
  }

  // dprobs = dO v^T;  dv = probs^T dO;  dq = dk = 0
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto sv = ctx->get_saved_variables();
    const Tensor &probs = sv[0], &qkv = sv[1];
    const Heads s = heads_of(qkv, std::get<int64_t>(ctx->saved_data["heads"]), "attention_apply");
    Tensor go = g[0].contiguous();
    const bool need_p = ctx->needs_input_grad(0), need_x = ctx->needs_input_grad(1);
    Tensor dp, dqkv;
    if (need_p) dp = Tensor::empty(probs.sizes(), kFloat32);
    if (need_x) dqkv = Tensor::empty(qkv.sizes(), kFloat32);
    const float* pp = probs.data_ptr<float>();
    const float* px = qkv.data_ptr<float>();
    const float* pg = go.data_ptr<float>();
    float* pdp = need_p ? dp.data_ptr<float>() : nullptr;
    float* pdx = need_x ? dqkv.data_ptr<float>() : nullptr;
    const int64_t N = s.N, hd = s.hd, D = s.D;
    if (need_x) {
      zero_slot(s, pdx, 0);
      zero_slot(s, pdx, 1);
    }
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        const float* gbh = pg + b * N * D + h * hd;
        if (need_p)
          kernels::sgemm(false, true, N, N, hd, 1.f, gbh, D, s.v(px, b, h), 3 * D, 0.f, pdp + i * N * N, N);
        if (need_x)
          kernels::sgemm(true, false, N, hd, N, 1.f, pp + i * N * N, N, gbh, D, 0.f, s.slot(pdx, b, h, 2),
                         3 * D);
      }
    });
    return {dp, dqkv};
  }
};

}  // namespace

Tensor attention_probs(const Tensor& qkv, int64_t heads, double scale, const Tensor& key_padding_mask) {
  check_defined(qkv, "attention_probs", "qkv");
  return AttentionProbsFn::apply(qkv, key_padding_mask, heads, scale);
}

Tensor attention_apply(const Tensor& probs, const Tensor& qkv, int64_t heads) {
  check_defined(probs, "attention_apply", "probs");
  check_defined(qkv, "attention_apply", "qkv");
  return AttentionApplyFn::apply(probs, qkv, heads);
}

}  // namespace quench
