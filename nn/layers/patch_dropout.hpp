// PatchDropout (Liu et al., "PatchDropout: Economizing Vision Transformers Using Patch Dropout",
// WACV 2023; timm.layers.PatchDropout): in training, each image keeps a random subset of its patch
// tokens, so the blocks run on fewer rows: a regularizer that also makes every step cheaper.
// Evaluation sees all tokens. The ViT applies it after adding the position embeddings.
#pragma once
#include <cstdint>

#include "engine/generator.hpp"
#include "engine/tensor.hpp"

namespace quench::nn {

// How many of `patches` tokens survive dropout probability p: floor(patches * (1 - p)), at least
// one (timm's num_keep). p in [0, 1).
int64_t patches_kept(int64_t patches, double p);

// x [B, prefix + L, D] -> [B, prefix + keep, D]: the `prefix` leading tokens (CLS) of every image,
// then `keep` of its L patch tokens drawn without replacement from gen, in their original order.
// Differentiable (index_select): dropped tokens get a zero gradient.
Tensor drop_patches(const Tensor& x, int64_t prefix, int64_t keep, Generator& gen);

}  // namespace quench::nn
