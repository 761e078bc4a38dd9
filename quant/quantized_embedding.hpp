// QuantizedEmbedding: the converted, inference-only embedding table (torch.ao.nn.quantized.Embedding),
// rows dequantized as they are looked up, so the table stays at its bit width in memory too.
//   ids int32 [...] -> [..., dim];  y[t, d] = float(W_q[ids[t], d]) * weight_scale[ids[t], d / group_size]
// This is bit for bit what the frozen QATEmbedding returns (the same codes by the shared rounding
// rule, the same dequantization).
//
// State (buffers; in the state dict and quantized checkpoints, quant/int8_io.hpp):
//   weight        I8 [num, dim]             bits 5..8, one code per byte
//                 U8 [num, ceil(dim / 2)]   bits 2..4, two codes per byte (quant/weight_codes.hpp)
//   weight_scale  F32 [num, groups]         groups = ceil(dim / group_size), 1 per row
// Codes lie in [-qmax, qmax] with qmax = 2^(bits-1) - 1 (symmetric, zero point 0).
#pragma once
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace quench::quant {

class QuantizedEmbedding : public nn::Module {
 public:
  // Zero codes and unit scales of the given shape (filled by convert or load_state_dict).
  // group_size: 0 (per row) or in [1, 65536]; bits in [2, 8].
  QuantizedEmbedding(int64_t num_embeddings, int64_t embedding_dim, int bits = 8, int64_t group_size = 0,
                     int64_t padding_idx = -1);
  std::string extra_repr() const override;
  bool row_independent() const override { return true; }

  int64_t num_embeddings, embedding_dim, padding_idx, group_size, groups;
  int bits;
  Tensor weight, weight_scale;  // handles to the buffers
  bool packed() const { return bits <= 4; }

  // codes [num, dim] (values in [-qmax, qmax]) into `weight`; the codes read back.
  void set_weight_codes(const int8_t* codes);
  std::vector<int8_t> weight_codes() const;
  // Codes in range, padding nibbles 0, scales positive and finite; throws naming `where` and the entry.
  void validate(const std::string& where = "QuantizedEmbedding") const;

 protected:
  Tensor forward(const Tensor& ids) override;
};

}  // namespace quench::quant
