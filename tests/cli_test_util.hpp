// Synthetic data and a tiny training configuration for the quench tool's tests.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/generator.hpp"
#include "nn/data/dataset.hpp"
#include "tools/cli/config.hpp"

namespace quench::testing {

// n grey 28x28 images of 4 classes drawn in every patch: horizontal stripes, vertical stripes, a
// checkerboard, flat dark grey (values 40 / 200 / 60 plus noise), so each patch token alone tells the class
// and a tiny ViT learns it within a few steps. Labels cycle 0, 1, 2, 3, ...
inline nn::LabeledImages pattern_images(int64_t n, uint64_t seed) {
  nn::LabeledImages d;
  d.images = Tensor::empty({n, 28, 28}, kUInt8);
  d.labels = Tensor::empty({n}, kInt32);
  d.classes = {"horizontal", "vertical", "checker", "flat"};
  Generator gen(seed);
  uint8_t* px = d.images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t c = static_cast<int32_t>(i % 4);
    d.labels.data_ptr<int32_t>()[i] = c;
    for (int64_t y = 0; y < 28; ++y)
      for (int64_t x = 0; x < 28; ++x) {
        const bool on = c == 0 ? y % 2 : c == 1 ? x % 2 : (x + y) % 2;
        const int64_t level = c == 3 ? 60 : on ? 200 : 40;
        px[(i * 28 + y) * 28 + x] = static_cast<uint8_t>(level + gen.below(30));
      }
  }
  return d;
}

// A model of 28x28 grey images, 49 patches of 4x4, width 16, one block, 4 classes; batch 8.
inline cli::TrainConfig tiny_config() {
  cli::TrainConfig c;
  c.model.img = 28;
  c.model.patch = 4;
  c.model.chans = 1;
  c.model.dim = 16;
  c.model.depth = 1;
  c.model.heads = 2;
  c.model.hidden = 32;
  c.model.classes = 4;
  c.batch_size = 8;
  c.epochs = 2;
  c.lr = 3e-3;
  c.seed = 7;
  return c;
}

}  // namespace quench::testing
