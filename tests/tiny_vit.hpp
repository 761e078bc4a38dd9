// The small ViT the distillation tests share: 8x8x1 images, patch 4 (4 tokens + CLS), 2 blocks,
// MLP 2*dim, 5 classes; seeded initialization.
#pragma once
#include <memory>

#include "engine/generator.hpp"
#include "nn/layers/vit.hpp"

namespace quench::testing {

inline std::shared_ptr<nn::ViT> tiny_vit(uint64_t seed, int64_t dim = 16, int64_t heads = 2) {
  nn::ViTConfig c;
  c.img = 8;
  c.patch = 4;
  c.chans = 1;
  c.dim = dim;
  c.depth = 2;
  c.heads = heads;
  c.hidden = 2 * dim;
  c.classes = 5;
  Generator g(seed);
  return std::make_shared<nn::ViT>(c, g);
}

}  // namespace quench::testing
