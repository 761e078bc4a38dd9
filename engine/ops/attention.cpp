// Multi-head self-attention on the packed qkv projection, fused per (batch, head): q, k and v are
// read in place from the qkv Linear's output and the heads are written straight into [B, N, D], so
// neither the permuted views nor the head concatenation are ever copied. The per-head products are
// small (50x50x32 for the reference ViT) and L1-resident, so they go through kernels::sgemm_small
// (register tiles on the strided rows, no packing); only k and v are copied, transposed into [hd, N]
// scratch, where a product needs them as B^T. Each product element is one FMA chain in k order from
// zero, as sgemm's fast paths compute it for these K. The scale and the key mask are applied inside
// the softmax rows (kernels/softmax_rows.hpp), whose sums run over 16 float lanes rather than the
// general softmax op's 4 double ones, so probabilities may differ from the composed path
// (matmul(q, k^T) * scale, masked_fill, softmax, matmul(probs, v)) in the last bits
// (tests/test_attention.cpp).
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "kernels/sgemm_small.hpp"
#include "kernels/softmax_rows.hpp"
#include "kernels/transpose.hpp"
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

// The number of queries asked for (-1: all N), checked.
int64_t query_count(const Heads& s, int64_t queries, const Tensor& qkv, const char* op) {
  const int64_t Q = queries < 0 ? s.N : queries;
  QUENCH_CHECK(Q >= 0 && Q <= s.N, op, ": queries (", queries, ") must be at most the ", s.N, " tokens of qkv ",
               shape_str(qkv.sizes()), " (-1: all)");
  return Q;
}

// The key-padding mask, checked (u8 [B, N]) and contiguous, or undefined.
Tensor checked_mask(const Heads& s, const Tensor& mask, const char* op) {
  if (!mask.defined()) return Tensor();
  QUENCH_CHECK(mask.dtype() == kUInt8 && mask.dim() == 2 && mask.size(0) == s.B && mask.size(1) == s.N, op,
               ": expected a u8 key-padding mask [", s.B, ", ", s.N, "], got ", dtype_name(mask.dtype()), " ",
               shape_str(mask.sizes()));
  return mask.contiguous();
}

// Zeroes rows of a head's slot: n rows of hd floats, row stride ld.
void zero_rows(float* p, int64_t n, int64_t hd, int64_t ld) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t d = 0; d < hd; ++d) p[r * ld + d] = 0.f;
}

// Asks for n rows of hd floats (row stride ld) into L2 ahead of use, one head ahead: a head's rows are
// 128-byte pieces 3D floats apart, which the hardware prefetcher is not counted on to follow.
void prefetch_rows(const float* p, int64_t n, int64_t hd, int64_t ld) {
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t d = 0; d < hd; d += 16) __builtin_prefetch(p + r * ld + d, 0, 2);
    __builtin_prefetch(p + r * ld + hd - 1, 0, 2);
  }
}

// The same for rows about to be written (a head's output rows, its gradient rows in dqkv): they are
// otherwise read for ownership one store miss at a time.
void prefetch_rows_for_write(float* p, int64_t n, int64_t hd, int64_t ld) {
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t d = 0; d < hd; d += 16) __builtin_prefetch(p + r * ld + d, 1, 2);
    __builtin_prefetch(p + r * ld + hd - 1, 1, 2);
  }
}

// The same for a contiguous block of n floats (a head's [N, N] probabilities or their gradient).
void prefetch_block(const float* p, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) __builtin_prefetch(p + j, 0, 2);
}

// t [hd, n] = x^T for x n rows of hd floats, row stride ld: the B operand of an NT product.
void transpose_head(const float* x, int64_t n, int64_t hd, int64_t ld, float* t) {
  kernels::transpose_f32(n, hd, x, ld, t, n);
}

// One head's probabilities p [Q, N] = softmax(sc * q k^T, mask) (mask: the image's key mask or null);
// kt [hd, N] and scores [Q, N] are scratch.
void head_probs(const Heads& s, const float* px, int64_t b, int64_t h, int64_t Q, float sc, const uint8_t* mask,
                float* kt, float* scores, float* p) {
  const int64_t N = s.N, ld = 3 * s.D;
  transpose_head(s.k(px, b, h), N, s.hd, ld, kt);
  // (scores in scratch: in place, the rows' masked tail stores would stall the next row's loads)
  kernels::sgemm_small(Q, N, s.hd, s.q(px, b, h), ld, 1, kt, N, scores, N);
  kernels::attn_softmax_rows(scores, Q, N, sc, mask, p);
}

// One head's dq = dS k (zero past the Q queries) and dk = dS^T q into its slots of dqkv, from dS [Q, N].
void head_grad_qk(const Heads& s, const float* px, int64_t b, int64_t h, int64_t Q, const float* ds, float* pd) {
  const int64_t N = s.N, hd = s.hd, ld = 3 * s.D;
  kernels::sgemm_small(Q, hd, N, ds, N, 1, s.k(px, b, h), ld, s.slot(pd, b, h, 0), ld);
  zero_rows(s.slot(pd, b, h, 0) + Q * ld, N - Q, hd, ld);
  // dk[j] = sum_i dS[i, j] q[i]: dS read transposed in place (same FMA chain as (q^T dS)^T).
  kernels::sgemm_small(N, hd, Q, ds, 1, N, s.q(px, b, h), ld, s.slot(pd, b, h, 1), ld);
}

// probs = softmax(scale * q k^T, keys with mask != 0 at -inf) for the first Q query tokens
//   qkv [B, N, 3D] -> probs [B, H, Q, N]; mask u8 [B, N] or undefined
struct AttentionProbsFn : Function<AttentionProbsFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& qkv_in, const Tensor& mask_in, int64_t heads,
                        double scale, int64_t queries) {
    check_dtype(qkv_in, kFloat32, "attention_probs", "qkv");
    const Heads s = heads_of(qkv_in, heads, "attention_probs");
    const int64_t Q = query_count(s, queries, qkv_in, "attention_probs");
    Tensor mask = checked_mask(s, mask_in, "attention_probs");
    Tensor qkv = qkv_in.contiguous();
    Tensor probs = Tensor::empty({s.B, s.H, Q, s.N}, kFloat32);
    const float* px = qkv.data_ptr<float>();
    const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
    float* pp = probs.data_ptr<float>();
    const float sc = static_cast<float>(scale);
    const int64_t N = s.N, ld = 3 * s.D;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> kt(s.hd * N), scores(Q * N);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        if (i + 1 < i1) {
          prefetch_rows(s.q(px, (i + 1) / s.H, (i + 1) % s.H), Q, s.hd, ld);
          prefetch_rows(s.k(px, (i + 1) / s.H, (i + 1) % s.H), N, s.hd, ld);
        }
        head_probs(s, px, b, h, Q, sc, pm ? pm + b * N : nullptr, kt.data(), scores.data(), pp + i * Q * N);
      }
    });
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    return probs;
  }

  // dS = scale * softmax_backward(probs, dprobs);  dq = dS k (0 past the Q queries);  dk = dS^T q;  dv = 0
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
    const int64_t N = s.N, Q = probs.size(2), hd = s.hd, ld = 3 * s.D;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> ds(Q * N);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        if (i + 1 < i1) {
          prefetch_rows(s.q(px, (i + 1) / s.H, (i + 1) % s.H), Q, hd, ld);
          prefetch_rows(s.k(px, (i + 1) / s.H, (i + 1) % s.H), N, hd, ld);
          prefetch_block(pp + (i + 1) * Q * N, Q * N);
          prefetch_block(pg + (i + 1) * Q * N, Q * N);
        }
        kernels::attn_softmax_rows_backward(pp + i * Q * N, pg + i * Q * N, Q, N, sc, ds.data());
        head_grad_qk(s, px, b, h, Q, ds.data(), pd);
        zero_rows(s.slot(pd, b, h, 2), N, hd, ld);
      }
    });
    return {dqkv, Tensor()};
  }
};

// out = probs v, heads side by side   probs [B, H, Q, N], qkv [B, N, 3D] -> out [B, Q, D]
struct AttentionApplyFn : Function<AttentionApplyFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& probs_in, const Tensor& qkv_in, int64_t heads) {
    check_dtype(probs_in, kFloat32, "attention_apply", "probs");
    check_dtype(qkv_in, kFloat32, "attention_apply", "qkv");
    const Heads s = heads_of(qkv_in, heads, "attention_apply");
    QUENCH_CHECK(probs_in.dim() == 4 && probs_in.size(2) <= s.N &&
                     probs_in.sizes() == Shape({s.B, s.H, probs_in.size(2), s.N}),
                 "attention_apply: expected probs [", s.B, ", ", s.H, ", Q <= ", s.N, ", ", s.N, "] for qkv ",
                 shape_str(qkv_in.sizes()), ", got ", shape_str(probs_in.sizes()));
    Tensor probs = probs_in.contiguous(), qkv = qkv_in.contiguous();
    const int64_t Q = probs.size(2);
    Tensor out = Tensor::empty({s.B, Q, s.D}, kFloat32);
    const float* pp = probs.data_ptr<float>();
    const float* px = qkv.data_ptr<float>();
    float* po = out.data_ptr<float>();
    const int64_t N = s.N;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        if (i + 1 < i1) {
          prefetch_rows(s.v(px, (i + 1) / s.H, (i + 1) % s.H), N, s.hd, 3 * s.D);
          prefetch_block(pp + (i + 1) * Q * N, Q * N);
        }
        kernels::sgemm_small(Q, s.hd, N, pp + i * Q * N, N, 1, s.v(px, b, h), 3 * s.D, po + b * Q * s.D + h * s.hd,
                             s.D);
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
    const int64_t N = s.N, Q = probs.size(2), hd = s.hd, D = s.D;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> vt(need_p ? hd * N : 0);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        const float* gbh = pg + b * Q * D + h * hd;
        if (i + 1 < i1) {
          prefetch_rows(gbh + ((i + 1) / s.H - b) * Q * D + ((i + 1) % s.H - h) * hd, Q, hd, D);
          if (need_p) prefetch_rows(s.v(px, (i + 1) / s.H, (i + 1) % s.H), N, hd, 3 * D);
          if (need_x) prefetch_block(pp + (i + 1) * Q * N, Q * N);
        }
        if (need_p) {
          transpose_head(s.v(px, b, h), N, hd, 3 * D, vt.data());
          kernels::sgemm_small(Q, N, hd, gbh, D, 1, vt.data(), N, pdp + i * Q * N, N);
        }
        if (need_x) {
          // dv = probs^T dO: probs read transposed in place.
          kernels::sgemm_small(N, hd, Q, pp + i * Q * N, 1, N, gbh, D, s.slot(pdx, b, h, 2), 3 * D);
          zero_rows(s.slot(pdx, b, h, 0), N, hd, 3 * D);
          zero_rows(s.slot(pdx, b, h, 1), N, hd, 3 * D);
        }
      }
    });
    return {dp, dqkv};
  }
};

// The forward of attention() for the first Q queries into out [B, Q, D]; the probabilities into
// probs [B, H, Q, N] when given (the backward needs them), else into per-thread scratch.
void attention_forward(const Heads& s, const float* px, const uint8_t* pm, float sc, int64_t Q, float* pp,
                       float* po) {
  const int64_t N = s.N, hd = s.hd, ld = 3 * s.D;
  kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> kt(hd * N), scores(Q * N), scratch(pp ? 0 : Q * N);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / s.H, h = i % s.H;
      if (i + 1 < i1) {
        const int64_t bn = (i + 1) / s.H, hn = (i + 1) % s.H;
        prefetch_rows(s.q(px, bn, hn), Q, hd, ld);
        prefetch_rows(s.k(px, bn, hn), N, hd, ld);
        prefetch_rows(s.v(px, bn, hn), N, hd, ld);
        prefetch_rows_for_write(po + bn * Q * s.D + hn * hd, Q, hd, s.D);
      }
      float* p = pp ? pp + i * Q * N : scratch.data();
      head_probs(s, px, b, h, Q, sc, pm ? pm + b * N : nullptr, kt.data(), scores.data(), p);
      kernels::sgemm_small(Q, hd, N, p, N, 1, s.v(px, b, h), ld, po + b * Q * s.D + h * hd, s.D);
    }
  });
}

// out = softmax(scale * q k^T, mask) v for the first Q queries, one (batch, head) at a time: the
// head's probabilities are still in L1 when they meet v, and the backward writes dq, dk and dv of
// a head into one gradient (the two-op path makes two [B, N, 3D] gradients, each two thirds zeros,
// and adds them). Same kernel calls as attention_probs + attention_apply, so the same bits.
//   qkv [B, N, 3D] -> out [B, Q, D]; probs [B, H, Q, N] saved for the backward when qkv needs a gradient
struct AttentionFn : Function<AttentionFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& qkv_in, const Tensor& mask_in, int64_t heads,
                        double scale, int64_t queries) {
    check_dtype(qkv_in, kFloat32, "attention", "qkv");
    const Heads s = heads_of(qkv_in, heads, "attention");
    const int64_t Q = query_count(s, queries, qkv_in, "attention");
    Tensor mask = checked_mask(s, mask_in, "attention");
    Tensor qkv = qkv_in.contiguous();
    Tensor out = Tensor::empty({s.B, Q, s.D}, kFloat32);
    const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
    const float sc = static_cast<float>(scale);
    // Without a backward to come the probabilities never leave their thread's scratch (in inference
    // they were a [B, H, Q, N] tensor written and dropped: 5 MB a block at batch 128).
    if (!ctx->needs_input_grad(0)) {
      attention_forward(s, qkv.data_ptr<float>(), pm, sc, Q, nullptr, out.data_ptr<float>());
      return out;
    }
    Tensor probs = Tensor::empty({s.B, s.H, Q, s.N}, kFloat32);
    attention_forward(s, qkv.data_ptr<float>(), pm, sc, Q, probs.data_ptr<float>(), out.data_ptr<float>());
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    return out;
  }

  // dP = dO v^T;  dS = scale * softmax_backward(P, dP);  dq = dS k (0 past Q);  dk = dS^T q;  dv = P^T dO
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto sv = ctx->get_saved_variables();
    const Tensor &qkv = sv[0], &probs = sv[1];
    if (!ctx->needs_input_grad(0)) return {Tensor(), Tensor()};
    const Heads s = heads_of(qkv, std::get<int64_t>(ctx->saved_data["heads"]), "attention");
    const float sc = static_cast<float>(std::get<double>(ctx->saved_data["scale"]));
    Tensor go = g[0].contiguous();
    Tensor dqkv = Tensor::empty(qkv.sizes(), kFloat32);
    const float* px = qkv.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* pg = go.data_ptr<float>();
    float* pd = dqkv.data_ptr<float>();
    const int64_t N = s.N, Q = probs.size(2), hd = s.hd, D = s.D, ld = 3 * D;
    kernels::parallel_for(s.B * s.H, 1, [&](int64_t i0, int64_t i1) {
      std::vector<float> vt(hd * N), dp(Q * N), ds(Q * N);
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / s.H, h = i % s.H;
        const float* gbh = pg + b * Q * D + h * hd;
        const float* p = pp + i * Q * N;
        if (i + 1 < i1) {
          const int64_t bn = (i + 1) / s.H, hn = (i + 1) % s.H;
          prefetch_rows(pg + bn * Q * D + hn * hd, Q, hd, D);
          prefetch_rows(s.q(px, bn, hn), Q, hd, ld);
          prefetch_rows(s.k(px, bn, hn), N, hd, ld);
          prefetch_rows(s.v(px, bn, hn), N, hd, ld);
          for (int64_t which = 0; which < 3; ++which)
            prefetch_rows_for_write(s.slot(pd, bn, hn, which), N, hd, ld);
          prefetch_block(pp + (i + 1) * Q * N, Q * N);
        }
        transpose_head(s.v(px, b, h), N, hd, ld, vt.data());
        kernels::sgemm_small(Q, N, hd, gbh, D, 1, vt.data(), N, dp.data(), N);
        kernels::attn_softmax_rows_backward(p, dp.data(), Q, N, sc, ds.data());
        head_grad_qk(s, px, b, h, Q, ds.data(), pd);
        kernels::sgemm_small(N, hd, Q, p, 1, N, gbh, D, s.slot(pd, b, h, 2), ld);
      }
    });
    return {dqkv, Tensor()};
  }
};

}  // namespace

Tensor attention(const Tensor& qkv, int64_t heads, double scale, const Tensor& key_padding_mask, int64_t queries) {
  check_defined(qkv, "attention", "qkv");
  return AttentionFn::apply(qkv, key_padding_mask, heads, scale, queries);
}

Tensor attention_probs(const Tensor& qkv, int64_t heads, double scale, const Tensor& key_padding_mask,
                       int64_t queries) {
  check_defined(qkv, "attention_probs", "qkv");
  return AttentionProbsFn::apply(qkv, key_padding_mask, heads, scale, queries);
}

Tensor attention_apply(const Tensor& probs, const Tensor& qkv, int64_t heads) {
  check_defined(probs, "attention_apply", "probs");
  check_defined(qkv, "attention_apply", "qkv");
  return AttentionApplyFn::apply(probs, qkv, heads);
}

}  // namespace quench
