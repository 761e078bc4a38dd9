// Int8 checkpoints: a converted model as one safetensors file.
//
// Tensors: the converted model's state dict, so Int8Linear layers store weight I8 [out, in],
// weight_scale F32 [out], bias F32 [out], input_scale F32 [1], input_zero_point I32 [1]; FP32 layers
// (LayerNorm, patch embedding, fallback Linears, ...) their F32 parameters. About 4x smaller than FP32.
// Low-bit layers (Int4Linear, quant/int4_linear.hpp) store weight U8 [out, ceil(in / 2)] (two signed
// 4-bit codes per byte: W[n, 2j] in the low nibble, W[n, 2j + 1] in the high one, two's complement,
// the padding nibble of an odd `in` 0), weight_scale F32 [out, groups], bias F32 [out], and for
// per-tensor activations input_scale F32 [1], input_zero_point I32 [1]. Quantized embedding tables
// (QuantizedEmbedding, quant/quantized_embedding.hpp) store weight I8 [num, dim] (5..8 bits) or U8
// [num, ceil(dim / 2)] (2..4 bits, packed as the Int4Linear weights) and weight_scale F32 [num, groups].
// Metadata (string -> string):
//   format "quench-int8", version "1" (Int8Linear only), "2" (with Int4Linear layers) or "3" (with
//   QuantizedEmbedding tables), scheme (the quantization scheme in words),
//   int8_linear   "name:in:out:bias:qmin:qmax;..."   (bias 0/1; qmin/qmax the u8 activation range)
//   int4_linear   "name:in:out:bias:bits:group_size:per_token;..."   (versions 2 and 3, maybe empty;
//                 group_size 0 per channel, per_token 0/1)
//   quantized_embedding "name:num:dim:padding_idx:bits:group_size;..."   (version 3 only; padding_idx
//                 -1 for none, group_size 0 per row)
//   qat_attention "name:observer:bits:signed:symmetric:qmin:qmax:learnable;..." (may be empty)
//   plus the caller's entries (the ViT helpers store "model" = "vit" and "vit_config", the BERT
//   ones "model" = "bert" and "config", the config.json text).
// Loading rebuilds that structure on an FP32 skeleton of the same architecture, then checks the file
// strictly (missing, unexpected, wrong-shape and wrong-dtype keys, by name) and validates every
// Int8Linear, Int4Linear and QuantizedEmbedding (positive finite scales, zero point in range, codes
// inside the bit width, padding nibbles 0); errors name the file.
#pragma once
#include <memory>
#include <string>

#include "nn/io/safetensors.hpp"
#include "nn/layers/bert.hpp"
#include "nn/layers/vit.hpp"
#include "nn/module.hpp"

namespace quench::quant {

void save_int8(const std::string& path, nn::Module& model, const nn::Metadata& extra = {});
// Swaps the skeleton's modules as the file says, loads the tensors, freezes and sets eval mode.
// Returns the file's metadata.
nn::Metadata load_int8(const std::string& path, nn::Module& skeleton);

// ViTConfig as "img=28 patch=4 chans=1 dim=128 depth=6 heads=4 hidden=512 classes=10 eps=1e-06" and back
// (parse throws naming a missing or malformed field).
std::string vit_config_str(const nn::ViTConfig& c);
nn::ViTConfig parse_vit_config(const std::string& s);
void save_int8_vit(const std::string& path, nn::ViT& model, const nn::Metadata& extra = {});
std::shared_ptr<nn::ViT> load_int8_vit(const std::string& path);
// A BERT classifier: metadata "model" = "bert" and "config" = its config.json (HF field names).
void save_int8_bert(const std::string& path, nn::BertForSequenceClassification& model,
                    const nn::Metadata& extra = {});
std::shared_ptr<nn::BertForSequenceClassification> load_int8_bert(const std::string& path);

}  // namespace quench::quant
