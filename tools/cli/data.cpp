#include "tools/cli/data.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "engine/error.hpp"
#include "engine/generator.hpp"
#include "nn/data/idx.hpp"
#include "nn/data/image_folder.hpp"

namespace quench::cli {

nn::LabeledImages select_rows(const nn::LabeledImages& data, const std::vector<int32_t>& rows) {
  Tensor images = data.images.contiguous();
  Tensor labels = data.labels.to(kInt32).contiguous();
  Shape shape = images.sizes();
  const int64_t row_bytes = images.nbytes() / std::max<int64_t>(shape[0], 1);
  shape[0] = static_cast<int64_t>(rows.size());
  nn::LabeledImages out;
  out.classes = data.classes;
  out.images = Tensor::empty(shape, images.dtype());
  out.labels = Tensor::empty({shape[0]}, kInt32);
  const auto* src = static_cast<const uint8_t*>(images.raw_data());
  auto* dst = static_cast<uint8_t*>(out.images.raw_data());
  for (size_t i = 0; i < rows.size(); ++i) {
    QUENCH_CHECK(rows[i] >= 0 && rows[i] < data.size(), "select_rows: row ", rows[i], " outside [0, ",
                 data.size(), ")");
    std::memcpy(dst + i * row_bytes, src + rows[i] * row_bytes, row_bytes);
    out.labels.data_ptr<int32_t>()[i] = labels.data_ptr<int32_t>()[rows[i]];
  }
  return out;
}

nn::LabeledImages take_first(const nn::LabeledImages& data, int64_t n) {
  if (n <= 0 || n >= data.size()) return data;
  std::vector<int32_t> rows(n);
  std::iota(rows.begin(), rows.end(), 0);
  return select_rows(data, rows);
}

DataSplits split_holdout(const nn::LabeledImages& data, double fraction, uint64_t seed) {
  QUENCH_CHECK(fraction > 0.0 && fraction < 1.0, "split_holdout: fraction must lie in (0, 1), got ",
               fraction);
  const int64_t n = data.size();
  const int64_t n_test = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(n) * fraction));
  QUENCH_CHECK(n_test < n, "split_holdout: ", n, " images are too few to hold out ", fraction);
  std::vector<int32_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  Generator gen(seed ^ 0x5bd1e995ULL);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[gen.below(i + 1)]);  // Fisher-Yates
  std::vector<int32_t> test(perm.begin(), perm.begin() + n_test), train(perm.begin() + n_test, perm.end());
  std::sort(test.begin(), test.end());
  std::sort(train.begin(), train.end());
  return {select_rows(data, train), select_rows(data, test)};
}

DataSplits load_data(const TrainConfig& cfg) {
  const nn::ViTConfig& m = cfg.model;
  DataSplits s;
  if (cfg.train_dir.empty()) {
    QUENCH_CHECK(m.chans == 1 && m.img == 28, "load_data: Fashion-MNIST has 1-channel 28x28 images, but the ",
                 "model expects ", m.chans, " channels of ", m.img, "x", m.img,
                 " (use --train-dir for other data)");
    s.train = nn::FashionMNIST(cfg.fashion_root, true);
    s.test = nn::FashionMNIST(cfg.fashion_root, false);
  } else if (!cfg.test_dir.empty()) {
    s.train = nn::ImageFolder(cfg.train_dir, m.chans, m.img, m.img);
    s.test = nn::ImageFolder(cfg.test_dir, m.chans, m.img, m.img);
    QUENCH_CHECK(s.train.classes == s.test.classes, "load_data: ", cfg.train_dir, " and ", cfg.test_dir,
                 " have different class folders");
  } else {
    s = split_holdout(nn::ImageFolder(cfg.train_dir, m.chans, m.img, m.img), cfg.test_split, cfg.seed);
  }
  QUENCH_CHECK(static_cast<int64_t>(s.train.classes.size()) == m.classes, "load_data: the data has ",
               s.train.classes.size(), " classes but the model has ", m.classes, " (set --classes)");
  s.train = take_first(s.train, cfg.limit_train);
  s.test = take_first(s.test, cfg.limit_test);
  return s;
}

}  // namespace quench::cli
