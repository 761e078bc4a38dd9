// A QAT attention's inference, fused per (batch, head): the two products on the integer codes and
// the softmax between them, a head's codes, scores and probabilities in per-thread scratch (in cache
// for sequences of a few hundred tokens) instead of whole [B, H, N, N] tensors in memory. Per head:
//   qc = codes(q), kc = codes(k) - 128, vc = codes(v) - 128              (fake_quant_row codes)
//   scores = grid_product(qc, kc)                   float(sum (qc - zq)(kc' - zk)) * (sq * sk)
//   probs  = attn_softmax_rows(scores, scale, key mask)
//   ctx    = grid_product(codes(probs), vc as [N, hd] rows)          written into [B, N, H * hd]
// The same kernel calls, on the same rows, as the composed path (qat_matmul_nt, attention_softmax,
// qat_matmul), so the bits are those of the composed QAT attention with its observers still and no
// dropout in training on the probabilities (tests/test_qat_matmul.cpp).
// int8_attention_projected starts one step earlier, from the hidden states, when q, k and v come from
// integer projections (QuantizedLinear with frozen input grids: a converted model, 8-bit or
// low-bit): each projection's output rows, computed as its forward computes them, become codes a
// block of rows at a time while in cache, so the fp32 q, k, v are never written; the same bits again.
#pragma once
#include <vector>

#include "engine/tensor.hpp"
#include "quant/fake_quant_module.hpp"

namespace quench::quant {

// Longer sequences take the composed path: a head's scratch grows as N^2 (about 13 bytes per score).
inline constexpr int64_t kInt8AttentionMaxTokens = 1024;

// A quantizer whose operand can take the integer products (qat_matmul_op.hpp) rather than
// fake_quantize + an fp32 matmul: fake quantization on, no LSQ, no hooks to call. The grid itself
// (qat_matmul_fits) is checked once the observer has stepped.
bool integer_operand(const FakeQuantize& fq);

// Whether the four quantizers (q, k, probs, v) allow the fused path: fake quantization on, observers
// still (eval mode or disabled), no LSQ, no hooks, per-tensor u8 grids with usable scales.
bool int8_attention_applies(const FakeQuantize& q, const FakeQuantize& k, const FakeQuantize& probs,
                            const FakeQuantize& v);

// Throws naming `op` unless key_padding_mask is undefined or u8 [B, N].
void check_key_mask(const Tensor& key_padding_mask, int64_t B, int64_t N, const char* op);

// q, k, v [B, H, N, hd] f32 (views; the last dim contiguous), key_padding_mask u8 [B, N] or
// undefined -> context [B, N, H * hd], N <= kInt8AttentionMaxTokens. No gradient; check
// int8_attention_applies first.
Tensor int8_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale, const Tensor& key_padding_mask,
                      const FakeQuantize& fq_q, const FakeQuantize& fq_k, const FakeQuantize& fq_probs,
                      const FakeQuantize& fq_v);

class QuantizedLinear;

// x [B, N, in] f32 through `projections` (QuantizedLinear, their outputs side by side = [q | k | v], each
// H * hd wide: BERT's query, key, value or a ViT's one qkv) -> the context of int8_attention on
// their outputs split into `heads` heads, [B, N, H * hd].
Tensor int8_attention_projected(const Tensor& x, const std::vector<QuantizedLinear*>& projections, int64_t heads,
                                double scale, const Tensor& key_padding_mask, const FakeQuantize& fq_q,
                                const FakeQuantize& fq_k, const FakeQuantize& fq_probs, const FakeQuantize& fq_v);

}  // namespace quench::quant
