// The data sets a run trains and evaluates on, as chosen by TrainConfig: Fashion-MNIST or image folders.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/data/dataset.hpp"
#include "tools/cli/config.hpp"

namespace quench::cli {

struct DataSplits {
  nn::LabeledImages train, test;
};

// Fashion-MNIST (cfg.fashion_root) or image folders (cfg.train_dir / cfg.test_dir, or a seeded
// cfg.test_split hold-out of train_dir), images converted to the model's channels and size,
// limited to the first limit_train / limit_test rows when those are > 0. Fashion-MNIST needs a model
// with 1 channel and 28x28 images. Class count must equal cfg.model.classes.
DataSplits load_data(const TrainConfig& cfg);

// The rows `rows` of `data` (a copy), in that order.
nn::LabeledImages select_rows(const nn::LabeledImages& data, const std::vector<int32_t>& rows);
// The first n rows (all when n <= 0 or n >= size).
nn::LabeledImages take_first(const nn::LabeledImages& data, int64_t n);
// A seeded random split: {the rest, a `fraction` hold-out}; both keep the original row order.
DataSplits split_holdout(const nn::LabeledImages& data, double fraction, uint64_t seed);

}  // namespace quench::cli
