// Neural-network functions (torch.nn.functional): normalization, softmax, losses, dropout, lookup.
#pragma once
#include <string>

#include "engine/generator.hpp"
#include "engine/tensor.hpp"

namespace quench {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Normalizes over the trailing dims given by normalized_shape; weight and bias (that shape) optional.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Rows of weight [num, dim] picked by int32 indices of any shape -> [..., dim]. Row padding_idx
// (-1: none) gets no gradient, as torch.nn.functional.embedding's padding_idx.
Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx = -1);
// Gathers along `dim` with int32 indices (1-D).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices);

// Multi-head self-attention on a packed qkv projection, fused (what nn::Attention runs):
// qkv [B, N, 3D] is read as [B, N, 3, heads, D / heads] (q, k, v; head h at columns h * hd ..).
// attention_probs: softmax(scale * q k^T) over keys -> [B, heads, Q, N]; keys where the u8
// key_padding_mask [B, N] is nonzero get probability 0 (mask optional). Only the first `queries`
// tokens ask (Q = queries; -1: all N): a ViT's last block needs only its CLS token's row, and those
// rows are exactly the first Q rows of the full result.
// attention_apply: probs [B, heads, Q, N] @ v with the heads side by side -> [B, Q, D].
// Same sgemm calls as the composed ops (matmul, mul, masked_fill, softmax, matmul, transpose):
// bit-identical to them with an sgemm whose results do not depend on leading dimensions (the
// current one; tests allow 1e-6 for a blocked GEMM that differs there).
Tensor attention_probs(const Tensor& qkv, int64_t heads, double scale,
                       const Tensor& key_padding_mask = Tensor(), int64_t queries = -1);
Tensor attention_apply(const Tensor& probs, const Tensor& qkv, int64_t heads);
// attention_apply(attention_probs(...), qkv, heads) as one op: -> [B, Q, D], the same bits, each
// head's probabilities used while in cache and one qkv gradient written in place (what
// nn::Attention runs when no hook asks for the probabilities).
Tensor attention(const Tensor& qkv, int64_t heads, double scale, const Tensor& key_padding_mask = Tensor(),
                 int64_t queries = -1);

// softmax(scale * scores) over keys, keys where the u8 key_padding_mask [B, N] is nonzero at
// probability 0 (mask optional): scores [B, heads, Q, N] -> [B, heads, Q, N]. The softmax rows of
// attention() (kernels/softmax_rows.hpp), for scores that come from another product (a quantized
// attention's integer one); softmax(masked_fill(scores * scale, mask, -inf), -1) up to the rounding
// of the sums (16 float lanes against 4 double ones).
Tensor attention_softmax(const Tensor& scores, double scale, const Tensor& key_padding_mask = Tensor());

enum class Reduction { none, mean, sum, batchmean };

// logits [N, C] (or [N, C, d...]), target int32 [N] (or [N, d...]). Fused log-softmax; targets equal to
// ignore_index contribute nothing and are excluded from the mean; label_smoothing as PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, int64_t ignore_index = -100,
                     double label_smoothing = 0.0, Reduction reduction = Reduction::mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
// PyTorch kl_div: input holds log-probabilities; target probabilities (or log-probabilities when
// log_target). Pointwise target * (log target - input), then reduced. Default reduction is mean
// (PyTorch's default), batchmean divides the sum by the batch size (the true KL).
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean,
              bool log_target = false);

// Zeroes elements with probability p and scales the rest by 1/(1-p) when training; identity otherwise.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
Tensor dropout(const Tensor& x, double p, bool training);

}  // namespace quench
