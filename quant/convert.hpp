// convert: a prepared (QAT-trained or PTQ-calibrated) model becomes an int8 inference model, in place.
//
// Every QATLinear becomes an Int8Linear (quant/int8_linear.hpp): weights quantized with the weight
// fake-quant's frozen scale by the shared rounding rule, per-channel scales, bias, and the input
// fake-quant's frozen scale / zero point. A QATLinear with weights of at most 4 bits, per-group weight
// scales or per-token activations becomes an Int4Linear (quant/int4_linear.hpp, the s4 GEMM) the same
// way: mixed-precision models get both. Every QATEmbedding becomes a QuantizedEmbedding
// (quant/quantized_embedding.hpp): the table's codes at the weight spec's bit width (packed two per
// byte at 4 bits or less) and its scales. QATAttention modules stay, their fake quantizers frozen.
// Observers are frozen and the model is put in eval mode. The result is still an nn::Module with the
// same tree (only the Linear children changed), so evaluation code runs unchanged, and it computes
// bit for bit what the fake-quant model computes in eval mode with the same scales.
// Fast paths: every nn::Mlp whose fc1 / fc2 became Int8Linear (with an exact GELU between) becomes an
// Int8Mlp (quant/int8_mlp.hpp), and every nn::Block with an int8 attention and such an MLP an
// Int8Block (quant/int8_block.hpp): the same children and state dict run as fused passes, same bits.
//
// Requirements, checked with errors naming the module: every quantizer saw data (trained or
// calibrated) or was loaded; activations u8 (unsigned, within [0, 255]) per tensor (per token for
// Int4Linear); weights signed, at most 8 bits (Int4Linear: 2..4 bits over [-(2^(bits-1)-1),
// 2^(bits-1)-1], groups a multiple of 8), symmetric (zero point 0). In place: to keep the QAT model, convert a second
// instance that loaded its state dict.
#pragma once
#include <string>
#include <vector>

#include "nn/module.hpp"

namespace quench::quant {

struct ConvertSummary {
  std::vector<std::string> int8_linears;   // dotted names now Int8Linear
  std::vector<std::string> int4_linears;   // dotted names now Int4Linear
  std::vector<std::string> quantized_embeddings;  // dotted names now QuantizedEmbedding
  std::vector<std::string> qat_attention;  // QATAttention modules kept with frozen fake quant
  std::vector<std::string> int8_mlps;      // nn::Mlp modules now Int8Mlp (fused fc1 -> GELU -> fc2)
  std::vector<std::string> int8_blocks;    // nn::Block modules now Int8Block (fused by groups of images)
  std::vector<std::string> int8_bert_layers;  // nn::BertLayer modules now Int8BertLayer (fused feed-forward)
};

// fuse = false leaves the modules unfused (the reference the fast paths are tested and timed against).
ConvertSummary convert(nn::Module& model, bool fuse = true);

}  // namespace quench::quant
