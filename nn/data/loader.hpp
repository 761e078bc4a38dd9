// DataLoader: shuffled, augmented, normalized float batches from an in-memory u8 image set, prepared
// one batch ahead on a background thread.
//
// Everything random derives from (seed, epoch, position in the epoch), so a seed gives the same batches
// on every run, whatever the timing of the background thread, and set_epoch(e) resumes exactly.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/generator.hpp"
#include "engine/tensor.hpp"
#include "nn/data/dataset.hpp"
#include "nn/data/sampler.hpp"

namespace quench::nn {

struct Batch;

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;          // a new permutation every epoch
  bool drop_last = false;       // drop the last partial batch instead of yielding it
  uint64_t seed = 0;
  // Data parallelism (nn/data/sampler.hpp, DistributedSampler): this process reads shard `rank` of
  // `num_replicas` of every epoch's order; augmentation draws are keyed by the position in the full
  // order, so they do not depend on the number of processes.
  int64_t num_replicas = 1, rank = 0;
  std::vector<float> mean;      // per channel, or one value for all; empty: 0
  std::vector<float> std;       // per channel, or one value for all; empty: 1
  int64_t crop_padding = 0;     // > 0: random crop of the original size from the image zero-padded
                                // by this many pixels on each side (torchvision RandomCrop(padding))
  bool horizontal_flip = false; // random horizontal flip with probability 1/2
  // Random erasing (torchvision RandomErasing(p, scale, ratio, value=0), Zhong et al. 2017): with
  // probability erase_prob, a rectangle covering erase_scale of the area with aspect ratio (h / w) drawn
  // log-uniformly from erase_ratio is set to 0 after normalization (the mean pixel), on every channel.
  float erase_prob = 0.f;
  float erase_scale[2] = {0.02f, 0.33f};
  float erase_ratio[2] = {0.3f, 3.3f};
  bool prefetch = true;         // build the next batch on a background thread
  // Runs on the loader thread after each batch is built (custom augmentation); its exceptions reach
  // the consumer at that batch.
  std::function<void(Batch&)> batch_transform;
};

struct Batch {
  Tensor images;      // f32 [B, C, H, W], normalized
  Tensor labels;      // i32 [B]
  Tensor indices;     // i32 [B], the dataset rows in this batch
  int64_t epoch = 0;  // which epoch and which batch of it
  int64_t index = 0;
};

// One sample's augmentation: crop the window starting at (dy, dx) of the image zero-padded by `pad`
// pixels (dy, dx in [0, 2 pad]; dy = dx = pad keeps the image in place), then mirror left-right.
struct CropFlip {
  int64_t pad = 0, dy = 0, dx = 0;
  bool flip = false;
};

// The rectangle random erasing zeroes, rows [y, y + h) and columns [x, x + w); h = w = 0: none.
struct EraseBox {
  int64_t y = 0, x = 0, h = 0, w = 0;
};

// torchvision's RandomErasing draw for an H x W image: with probability `prob`, up to 10 tries of an
// area fraction in [scale[0], scale[1]) and a log-uniform aspect ratio in [ratio[0], ratio[1]); the
// first box smaller than the image in both directions is placed uniformly. No success: an empty box.
EraseBox sample_erase_box(Generator& gen, int64_t H, int64_t W, float prob, const float scale[2],
                          const float ratio[2]);

// u8 [C, H, W] -> f32 [C, H, W]: (augmented x / 255 - mean[c]) / std[c], then `erase` set to 0.
// Padding pixels are 0 before normalization. mean / std hold C values or one (empty: 0 / 1).
Tensor transform_image(const Tensor& image, const CropFlip& aug, const std::vector<float>& mean,
                       const std::vector<float>& std, const EraseBox& erase = {});

class DataLoader {
 public:
  // images u8 [N, C, H, W] or [N, H, W] (one channel), labels i32 or u8 [N]. Both are shared, not copied
  // (made contiguous once).
  DataLoader(const Tensor& images, const Tensor& labels, DataLoaderOptions options);
  DataLoader(const LabeledImages& data, DataLoaderOptions options)
      : DataLoader(data.images, data.labels, std::move(options)) {}
  ~DataLoader();  // stops the background thread, also mid-epoch
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t size() const;               // batches per epoch (of this rank's shard)
  int64_t samples() const;            // rows per epoch (of this rank's shard)
  int64_t dataset_size() const { return n_; }
  const DataLoaderOptions& options() const { return opt_; }
  int64_t epoch() const { return epoch_; }  // the epoch the next batch comes from
  // Starts over at the first batch of `epoch` (an epoch in progress is abandoned).
  void set_epoch(int64_t epoch);

  // The next batch of the current epoch, or nullopt once when the epoch is finished (epoch() then
  // advances, and the following call starts the next epoch). Rethrows errors of the loader thread.
  std::optional<Batch> next();

  // Range over one epoch: begin() (re)starts the current epoch at its first batch.
  class Iterator {
   public:
    Iterator() = default;
    Batch& operator*() { return *batch_; }
    Batch* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    bool operator==(const Iterator& other) const { return batch_.has_value() == other.batch_.has_value(); }

   private:
    friend class DataLoader;
    DataLoader* loader_ = nullptr;
    std::optional<Batch> batch_;
  };
  Iterator begin();
  Iterator end() { return Iterator(); }

 private:
  SamplerOptions sampler() const;
  Batch make_batch(int64_t epoch, int64_t b) const;
  void start_epoch();
  void stop_worker();
  void worker_loop(int64_t epoch, int64_t num_batches);

  Tensor images_, labels_;  // u8 [N, C, H, W], i32 [N], contiguous
  int64_t n_ = 0, c_ = 0, h_ = 0, w_ = 0;
  DataLoaderOptions opt_;
  std::vector<float> lut_;  // [C][256]: (x / 255 - mean) / std

  // Consumer side.
  std::vector<int32_t> order_;  // dataset rows of the current epoch, in batch order
  int64_t epoch_ = 0, next_batch_ = 0;
  bool running_ = false;

  // Hand-over between the loader thread and the consumer: at most one finished batch waits.
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Batch> slot_;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace quench::nn
