// A labelled image set held in memory: what the dataset readers return and the DataLoader consumes.
#pragma once
#include <string>
#include <vector>

#include "engine/tensor.hpp"

namespace quench::nn {

struct LabeledImages {
  Tensor images;                     // u8 [N, H, W] (one channel) or [N, C, H, W]
  Tensor labels;                     // i32 [N], indices into `classes`
  std::vector<std::string> classes;  // class names by index

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

}  // namespace quench::nn
