#include "nn/data/loader.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/generator.hpp"
#include "engine/ops/creation.hpp"
#include "nn/data/sampler.hpp"

namespace quench::nn {

namespace {


// Per-channel lookup table of (x / 255 - mean) / std for every byte value.
std::vector<float> make_lut(int64_t channels, const std::vector<float>& mean,
                            const std::vector<float>& std, const char* op) {
  auto pick = [&](const std::vector<float>& v, int64_t c, float fallback, const char* what) {
    if (v.empty()) return fallback;
    QUENCH_CHECK(v.size() == 1 || static_cast<int64_t>(v.size()) == channels, op, ": ", what, " has ",
                 v.size(), " values for images with ", channels, " channels (expected 1 or ", channels,
                 ")");
    return v.size() == 1 ? v[0] : v[c];
  };
  std::vector<float> lut(channels * 256);
  for (int64_t c = 0; c < channels; ++c) {
    const float m = pick(mean, c, 0.f, "mean"), s = pick(std, c, 1.f, "std");
    QUENCH_CHECK(s > 0.f, op, ": std must be positive, got ", s, " for channel ", c);
    for (int x = 0; x < 256; ++x) lut[c * 256 + x] = (static_cast<float>(x) / 255.f - m) / s;
  }
  return lut;
}

// dst[c][y][x] = lut[c][padded[c][y + dy][x' + dx]] with x' = flip ? W-1-x : x, where padded is src
// surrounded by `pad` zero pixels.  src u8 [C, H, W], dst f32 [C, H, W].
void crop_flip_normalize(const uint8_t* src, int64_t C, int64_t H, int64_t W, const CropFlip& a,
                         const float* lut, float* dst) {
  for (int64_t c = 0; c < C; ++c) {
    const float* l = lut + c * 256;
    for (int64_t y = 0; y < H; ++y) {
      const int64_t sy = y + a.dy - a.pad;
      float* out = dst + (c * H + y) * W;
      if (sy < 0 || sy >= H) {
        std::fill(out, out + W, l[0]);
        continue;
      }
      const uint8_t* row = src + (c * H + sy) * W;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t sx = (a.flip ? W - 1 - x : x) + a.dx - a.pad;
        out[x] = (sx < 0 || sx >= W) ? l[0] : l[row[sx]];
      }
    }
  }
}

void erase(const EraseBox& box, int64_t C, int64_t H, int64_t W, float* dst) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = box.y; y < box.y + box.h; ++y) {
      float* row = dst + (c * H + y) * W + box.x;
      std::fill(row, row + box.w, 0.f);
    }
}

}  // namespace

EraseBox sample_erase_box(Generator& gen, int64_t H, int64_t W, float prob, const float scale[2],
                          const float ratio[2]) {
  if (!(gen.uniform() < prob)) return {};
  const double area = static_cast<double>(H * W);
  const double log_r0 = std::log(ratio[0]), log_r1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale[0] + (scale[1] - scale[0]) * gen.uniform());
    const double aspect = std::exp(log_r0 + (log_r1 - log_r0) * gen.uniform());
    const auto h = static_cast<int64_t>(std::lround(std::sqrt(target * aspect)));
    const auto w = static_cast<int64_t>(std::lround(std::sqrt(target / aspect)));
    if (h < 1 || w < 1 || h >= H || w >= W) continue;
    const auto y = static_cast<int64_t>(gen.below(static_cast<uint64_t>(H - h + 1)));
    const auto x = static_cast<int64_t>(gen.below(static_cast<uint64_t>(W - w + 1)));
    return {y, x, h, w};
  }
  return {};
}

Tensor transform_image(const Tensor& image, const CropFlip& aug, const std::vector<float>& mean,
                       const std::vector<float>& std, const EraseBox& box) {
  check_dtype(image, kUInt8, "transform_image", "image");
  QUENCH_CHECK(image.dim() == 3, "transform_image: expected an image [C, H, W], got ",
               shape_str(image.sizes()));
  QUENCH_CHECK(aug.pad >= 0 && aug.dy >= 0 && aug.dy <= 2 * aug.pad && aug.dx >= 0 &&
                   aug.dx <= 2 * aug.pad,
               "transform_image: crop offsets (", aug.dy, ", ", aug.dx, ") must lie in [0, ",
               2 * aug.pad, "] for padding ", aug.pad);
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  QUENCH_CHECK(box.y >= 0 && box.x >= 0 && box.h >= 0 && box.w >= 0 && box.y + box.h <= H &&
                   box.x + box.w <= W,
               "transform_image: erase box rows [", box.y, ", ", box.y + box.h, ") x columns [", box.x, ", ",
               box.x + box.w, ") must lie inside the ", H, " x ", W, " image");
  std::vector<float> lut = make_lut(C, mean, std, "transform_image");
  Tensor src = image.contiguous();
  Tensor out = Tensor::empty({C, H, W}, kFloat32);
  crop_flip_normalize(src.data_ptr<uint8_t>(), C, H, W, aug, lut.data(), out.data_ptr<float>());
  erase(box, C, H, W, out.data_ptr<float>());
  return out;
}

DataLoader::DataLoader(const Tensor& images, const Tensor& labels, DataLoaderOptions options)
    : opt_(std::move(options)) {
  check_defined(images, "DataLoader", "images");
  check_defined(labels, "DataLoader", "labels");
  check_dtype(images, kUInt8, "DataLoader", "images");
  QUENCH_CHECK(images.dim() == 3 || images.dim() == 4, "DataLoader: expected images [N, H, W] or ",
               "[N, C, H, W], got ", shape_str(images.sizes()));
  QUENCH_CHECK(labels.dtype() == kInt32 || labels.dtype() == kUInt8,
               "DataLoader: expected int32 or uint8 labels, got ", dtype_name(labels.dtype()));
  QUENCH_CHECK(labels.dim() == 1 && labels.size(0) == images.size(0), "DataLoader: expected labels [",
               images.size(0), "] for images ", shape_str(images.sizes()), ", got ",
               shape_str(labels.sizes()));
  QUENCH_CHECK(opt_.batch_size > 0, "DataLoader: batch_size must be positive, got ", opt_.batch_size);
  samples_per_replica(images.size(0), sampler());  // checks num_replicas and rank
  QUENCH_CHECK(opt_.crop_padding >= 0, "DataLoader: crop_padding must be >= 0, got ", opt_.crop_padding);
  QUENCH_CHECK(opt_.erase_prob >= 0.f && opt_.erase_prob <= 1.f,
               "DataLoader: erase_prob must be in [0, 1], got ", opt_.erase_prob);
  QUENCH_CHECK(0.f < opt_.erase_scale[0] && opt_.erase_scale[0] <= opt_.erase_scale[1] &&
                   opt_.erase_scale[1] <= 1.f && 0.f < opt_.erase_ratio[0] &&
                   opt_.erase_ratio[0] <= opt_.erase_ratio[1],
               "DataLoader: random erasing needs 0 < scale min <= scale max <= 1 and 0 < ratio min <= ratio ",
               "max, got scale (", opt_.erase_scale[0], ", ", opt_.erase_scale[1], ") and ratio (",
               opt_.erase_ratio[0], ", ", opt_.erase_ratio[1], ")");
  images_ = images.dim() == 3 ? images.unsqueeze(1).contiguous() : images.contiguous();
  labels_ = labels.dtype() == kInt32 ? labels.contiguous() : labels.to(kInt32);
  n_ = images_.size(0);
  c_ = images_.size(1);
  h_ = images_.size(2);
  w_ = images_.size(3);
  lut_ = make_lut(c_, opt_.mean, opt_.std, "DataLoader");
}

DataLoader::~DataLoader() { stop_worker(); }

SamplerOptions DataLoader::sampler() const {
  SamplerOptions s;
  s.shuffle = opt_.shuffle;
  s.seed = opt_.seed;
  s.num_replicas = opt_.num_replicas;
  s.rank = opt_.rank;
  return s;
}

int64_t DataLoader::samples() const { return samples_per_replica(n_, sampler()); }

int64_t DataLoader::size() const {
  const int64_t n = samples();
  return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
}

void DataLoader::set_epoch(int64_t epoch) {
  stop_worker();
  running_ = false;
  next_batch_ = 0;
  epoch_ = epoch;
}

Batch DataLoader::make_batch(int64_t epoch, int64_t b) const {
  const int64_t start = b * opt_.batch_size;
  const int64_t count = std::min(opt_.batch_size, static_cast<int64_t>(order_.size()) - start);
  const SamplerOptions so = sampler();
  const int64_t chw = c_ * h_ * w_;
  Batch batch;
  batch.epoch = epoch;
  batch.index = b;
  batch.images = Tensor::empty({count, c_, h_, w_}, kFloat32);
  batch.labels = Tensor::empty({count}, kInt32);
  batch.indices = Tensor::empty({count}, kInt32);
  const uint8_t* src = images_.data_ptr<uint8_t>();
  const int32_t* labels = labels_.data_ptr<int32_t>();
  float* dst = batch.images.data_ptr<float>();
  int32_t* out_labels = batch.labels.data_ptr<int32_t>();
  int32_t* out_indices = batch.indices.data_ptr<int32_t>();
  const int64_t pad = opt_.crop_padding;
  for (int64_t i = 0; i < count; ++i) {
    const int32_t row = order_[start + i];
    CropFlip a{pad, pad, pad, false};
    EraseBox box;
    if (pad > 0 || opt_.horizontal_flip || opt_.erase_prob > 0.f) {
      // Draws in a fixed order; an augmentation that is off draws nothing, so turning erasing on
      // leaves each sample's crop and flip as they were.
      Generator gen(derive_seed(opt_.seed, kAugmentSalt, epoch, global_position(start + i, so)));
      if (pad > 0) {
        a.dy = static_cast<int64_t>(gen.below(2 * pad + 1));
        a.dx = static_cast<int64_t>(gen.below(2 * pad + 1));
      }
      if (opt_.horizontal_flip) a.flip = gen.next_u64() >> 63;
      if (opt_.erase_prob > 0.f)
        box = sample_erase_box(gen, h_, w_, opt_.erase_prob, opt_.erase_scale, opt_.erase_ratio);
    }
    crop_flip_normalize(src + row * chw, c_, h_, w_, a, lut_.data(), dst + i * chw);
    erase(box, c_, h_, w_, dst + i * chw);
    out_labels[i] = labels[row];
    out_indices[i] = row;
  }
  if (opt_.batch_transform) opt_.batch_transform(batch);
  return batch;
}

void DataLoader::start_epoch() {
  stop_worker();
  order_ = epoch_indices(n_, epoch_, sampler());
  running_ = true;
  next_batch_ = 0;
  slot_.reset();
  error_ = nullptr;
  stop_ = false;
  if (opt_.prefetch && size() > 0)
    worker_ = std::thread([this, epoch = epoch_, nb = size()] { worker_loop(epoch, nb); });
}

void DataLoader::worker_loop(int64_t epoch, int64_t num_batches) {
  for (int64_t b = 0; b < num_batches; ++b) {
    {
      // Start the next batch only once the previous one was taken: exactly one batch ahead.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !slot_.has_value(); });
      if (stop_) return;
    }
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(epoch, b);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      if (error) error_ = error;
      else slot_ = std::move(batch);
    }
    cv_.notify_all();
    if (error) return;
  }
}

void DataLoader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
  slot_.reset();
  error_ = nullptr;
}

std::optional<Batch> DataLoader::next() {
  if (!running_) start_epoch();
  if (next_batch_ >= size()) {  // end of the epoch: report it once and move on
    stop_worker();
    running_ = false;
    next_batch_ = 0;
    ++epoch_;
    return std::nullopt;
  }
  if (!opt_.prefetch) {
    try {
      Batch batch = make_batch(epoch_, next_batch_);
      ++next_batch_;
      return batch;
    } catch (...) {
      running_ = false;  // as with the thread: the next call restarts this epoch
      next_batch_ = 0;
      throw;
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return slot_.has_value() || error_ != nullptr; });
  if (error_) {
    std::exception_ptr error = error_;
    lock.unlock();
    stop_worker();
    running_ = false;  // the next call restarts this epoch
    next_batch_ = 0;
    std::rethrow_exception(error);
  }
  Batch batch = std::move(*slot_);
  slot_.reset();
  lock.unlock();
  cv_.notify_all();
  ++next_batch_;
  return batch;
}

DataLoader::Iterator DataLoader::begin() {
  if (next_batch_ != 0) set_epoch(epoch_);  // a loop left early: restart its epoch
  Iterator it;
  it.loader_ = this;
  it.batch_ = next();
  return it;
}

}  // namespace quench::nn
