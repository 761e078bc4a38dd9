#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "engine/ops.hpp"
#include "nn/data/loader.hpp"

using namespace quench;
using namespace quench::nn;

namespace {

std::vector<float> floats(const Tensor& t) { return t.to_vector<float>(); }
std::vector<int32_t> ints(const Tensor& t) { return t.to_vector<int32_t>(); }

// N random images [N, C, H, W] and labels i % 10.
LabeledImages make_dataset(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed = 1) {
  Generator gen(seed);
  LabeledImages d;
  d.images = randint(0, 256, {n, c, h, w}, gen, kUInt8);
  std::vector<int32_t> labels(n);
  for (int64_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>(i % 10);
  d.labels = tensor(labels);
  return d;
}

std::vector<Batch> epoch_batches(DataLoader& loader) {
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(*b);
  return out;
}

bool same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (floats(a[i].images) != floats(b[i].images) || ints(a[i].labels) != ints(b[i].labels) ||
        ints(a[i].indices) != ints(b[i].indices))
      return false;
  return true;
}

std::vector<int32_t> all_indices(const std::vector<Batch>& batches) {
  std::vector<int32_t> out;
  for (const Batch& b : batches)
    for (int32_t i : ints(b.indices)) out.push_back(i);
  return out;
}

}  // namespace

TEST_CASE("loader: crop with zero padding, flip and normalization on a tiny known image") {
  Tensor img = tensor({1, 2, 3, 4, 5, 6}, {1, 2, 3}, kUInt8);
  auto px = [](std::vector<int> v) {
    std::vector<float> out;
    for (int x : v) out.push_back(static_cast<float>(x) / 255.f);
    return out;
  };
  CHECK(floats(transform_image(img, {1, 1, 1, false}, {}, {})) == px({1, 2, 3, 4, 5, 6}));
  CHECK(floats(transform_image(img, {0, 0, 0, true}, {}, {})) == px({3, 2, 1, 6, 5, 4}));
  CHECK(floats(transform_image(img, {1, 0, 0, false}, {}, {})) == px({0, 0, 0, 0, 1, 2}));
  CHECK(floats(transform_image(img, {1, 2, 2, false}, {}, {})) == px({5, 6, 0, 0, 0, 0}));
  CHECK(floats(transform_image(img, {1, 1, 0, false}, {}, {})) == px({0, 1, 2, 0, 4, 5}));
  CHECK(floats(transform_image(img, {1, 0, 2, true}, {}, {})) == px({0, 0, 0, 0, 3, 2}));
  CHECK(floats(transform_image(img, {2, 4, 4, false}, {}, {})) == px({0, 0, 0, 0, 0, 0}));

  // (x / 255 - mean) / std per channel; padding is a zero pixel before normalization.
  Tensor two = tensor({0, 255, 51, 102}, {2, 1, 2}, kUInt8);
  std::vector<float> n = floats(transform_image(two, {1, 1, 0, false}, {0.5f, 0.2f}, {0.25f, 0.5f}));
  REQUIRE(n.size() == 4);
  CHECK(n[0] == doctest::Approx(-2.0));            // padding: (0 - 0.5) / 0.25
  CHECK(n[1] == doctest::Approx(-2.0));            // 0
  CHECK(n[2] == doctest::Approx(-0.4));            // padding: (0 - 0.2) / 0.5
  CHECK(n[3] == doctest::Approx((0.2 - 0.2) / 0.5).epsilon(1e-6));
  std::vector<float> fm = floats(transform_image(img, {0, 0, 0, false}, {0.2860f}, {0.3530f}));
  for (int i = 0; i < 6; ++i) CHECK(fm[i] == doctest::Approx(((i + 1) / 255.0 - 0.2860) / 0.3530));

  CHECK_THROWS_WITH_AS(transform_image(img, {1, 3, 0, false}, {}, {}), doctest::Contains("must lie in [0, 2]"), Error);
  CHECK_THROWS_WITH_AS(transform_image(img, {}, {0.1f, 0.2f}, {}), doctest::Contains("mean has 2 values"), Error);
  CHECK_THROWS_WITH_AS(transform_image(img, {}, {}, {0.f}), doctest::Contains("std must be positive"), Error);
}

TEST_CASE("loader: every sample once per epoch, batching, labels and normalized values") {
  LabeledImages d = make_dataset(103, 2, 3, 4);
  DataLoaderOptions opt;
  opt.batch_size = 10;
  opt.seed = 5;
  opt.mean = {0.3f, 0.6f};
  opt.std = {0.2f, 0.4f};
  DataLoader loader(d, opt);
  CHECK(loader.size() == 11);
  CHECK(loader.dataset_size() == 103);
  std::vector<Batch> batches = epoch_batches(loader);
  REQUIRE(batches.size() == 11);
  CHECK(batches.back().images.sizes() == Shape{3, 2, 3, 4});
  CHECK(batches[0].images.sizes() == Shape{10, 2, 3, 4});
  CHECK(batches[0].images.dtype() == kFloat32);
  CHECK(batches[4].index == 4);
  CHECK(loader.epoch() == 1);
  std::vector<int32_t> seen = all_indices(batches);
  std::vector<int32_t> expected(103);
  std::iota(expected.begin(), expected.end(), 0);
  CHECK(seen != expected);  // shuffled
  std::sort(seen.begin(), seen.end());
  CHECK(seen == expected);
  // Labels and pixels follow their dataset rows.
  const std::vector<int32_t> labels = ints(d.labels);
  for (const Batch& b : batches) {
    std::vector<int32_t> idx = ints(b.indices), lab = ints(b.labels);
    for (size_t i = 0; i < idx.size(); ++i) CHECK(lab[i] == labels[idx[i]]);
  }
  Tensor row = d.images.select(0, ints(batches[2].indices)[7]);
  std::vector<float> got = floats(batches[2].images.select(0, 7));
  std::vector<double> raw = row.to_vector<double>();
  for (size_t i = 0; i < raw.size(); ++i) {
    size_t c = i / 12;
    CHECK(got[i] == doctest::Approx((raw[i] / 255.0 - opt.mean[c]) / opt.std[c]).epsilon(1e-6));
  }

  opt.drop_last = true;
  DataLoader dropping(d, opt);
  CHECK(dropping.size() == 10);
  std::vector<int32_t> kept = all_indices(epoch_batches(dropping));
  CHECK(kept.size() == 100);
  CHECK(std::set<int32_t>(kept.begin(), kept.end()).size() == 100);

  opt.shuffle = false;
  opt.drop_last = false;
  DataLoader ordered(d, opt);
  CHECK(all_indices(epoch_batches(ordered)) == expected);
}

TEST_CASE("loader: a seed gives the same batches, epochs differ, set_epoch resumes exactly") {
  LabeledImages d = make_dataset(50, 3, 6, 6);
  DataLoaderOptions opt;
  opt.batch_size = 8;
  opt.seed = 123;
  opt.crop_padding = 2;
  opt.horizontal_flip = true;
  opt.mean = {0.5f};
  opt.std = {0.5f};
  DataLoader a(d, opt), b(d, opt);
  std::vector<Batch> a0 = epoch_batches(a), b0 = epoch_batches(b);
  std::vector<Batch> a1 = epoch_batches(a), b1 = epoch_batches(b);
  CHECK(same_batches(a0, b0));
  CHECK(same_batches(a1, b1));
  CHECK(all_indices(a0) != all_indices(a1));
  CHECK(a1[0].epoch == 1);

  DataLoader resumed(d, opt);
  resumed.set_epoch(1);
  CHECK(same_batches(epoch_batches(resumed), a1));

  // The background thread does not change the result.
  opt.prefetch = false;
  DataLoader sync(d, opt);
  CHECK(same_batches(epoch_batches(sync), a0));

  opt.prefetch = true;
  opt.seed = 124;
  DataLoader other(d, opt);
  CHECK(all_indices(epoch_batches(other)) != all_indices(a0));
}

TEST_CASE("loader: augmented samples are valid crops / flips, and the variants all occur") {
  const int64_t pad = 1;
  LabeledImages d = make_dataset(40, 1, 4, 5, 9);
  DataLoaderOptions opt;
  opt.batch_size = 7;
  opt.seed = 3;
  opt.crop_padding = pad;
  opt.horizontal_flip = true;
  DataLoader loader(d, opt);
  std::set<std::tuple<int64_t, int64_t, bool>> variants;
  int64_t unmatched = 0;
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (const Batch& b : epoch_batches(loader)) {
      std::vector<int32_t> idx = ints(b.indices);
      for (size_t i = 0; i < idx.size(); ++i) {
        std::vector<float> got = floats(b.images.select(0, static_cast<int64_t>(i)));
        Tensor src = d.images.select(0, idx[i]);
        int matches = 0;
        for (int64_t dy = 0; dy <= 2 * pad; ++dy)
          for (int64_t dx = 0; dx <= 2 * pad; ++dx)
            for (bool flip : {false, true})
              if (floats(transform_image(src, {pad, dy, dx, flip}, {}, {})) == got) {
                ++matches;
                variants.insert({dy, dx, flip});
              }
        unmatched += matches == 0;
      }
    }
  }
  CHECK(unmatched == 0);
  CHECK(variants.size() == 18);  // 3 x 3 offsets x 2 flips, over 120 samples
}

TEST_CASE("loader: random erasing zeroes one box of the normalized image, as torchvision draws it") {
  // transform_image: the box is 0 on every channel after normalization, the rest untouched.
  Tensor img = tensor({10, 20, 30, 40, 50, 60, 70, 80, 90, 11, 21, 31, 41, 51, 61, 71, 81, 91}, {2, 3, 3},
                      kUInt8);
  std::vector<float> plain = floats(transform_image(img, {}, {0.1f}, {0.5f}));
  std::vector<float> erased = floats(transform_image(img, {}, {0.1f}, {0.5f}, {1, 0, 2, 2}));
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 3; ++x) {
        const size_t i = static_cast<size_t>((c * 3 + y) * 3 + x);
        CHECK(erased[i] == ((y >= 1 && x < 2) ? 0.f : plain[i]));
      }
  CHECK_THROWS_WITH_AS(transform_image(img, {}, {}, {}, {2, 0, 2, 1}), doctest::Contains("erase box"), Error);

  // The draw: boxes strictly smaller than the image, area and aspect within the ranges (up to the
  // rounding of h and w), placed inside; the erase probability holds.
  const float scale[2] = {0.02f, 0.33f}, ratio[2] = {0.3f, 3.3f};
  Generator gen(5);
  int64_t erased_count = 0;
  std::set<std::pair<int64_t, int64_t>> corners;
  const int64_t n = 4000;
  for (int64_t i = 0; i < n; ++i) {
    EraseBox b = sample_erase_box(gen, 28, 28, 0.5f, scale, ratio);
    if (b.h == 0) {
      CHECK(b.w == 0);
      continue;
    }
    ++erased_count;
    corners.insert({b.y, b.x});
    REQUIRE(b.h >= 1);
    REQUIRE(b.w >= 1);
    CHECK(b.h < 28);
    CHECK(b.w < 28);
    CHECK(b.y + b.h <= 28);
    CHECK(b.x + b.w <= 28);
    const double h = static_cast<double>(b.h), w = static_cast<double>(b.w);
    CHECK((h + 0.5) * (w + 0.5) >= 0.02 * 784);
    CHECK((h - 0.5) * (w - 0.5) <= 0.33 * 784);
    CHECK((h + 0.5) / (w - 0.5) >= 0.3);
    CHECK((h - 0.5) / (w + 0.5) <= 3.3);
  }
  CHECK(std::abs(static_cast<double>(erased_count) / n - 0.5) < 0.03);
  CHECK(corners.size() > 300);  // positions spread over the image
  CHECK(sample_erase_box(gen, 28, 28, 0.f, scale, ratio).h == 0);
  // A 1-pixel-wide image never fits a box narrower than itself: no erasing, however often asked.
  for (int i = 0; i < 20; ++i) CHECK(sample_erase_box(gen, 5, 1, 1.f, scale, ratio).h == 0);
}

TEST_CASE("loader: erasing changes nothing but the erased boxes; samples stay reproducible") {
  LabeledImages d = make_dataset(60, 2, 8, 8, 4);
  DataLoaderOptions opt;
  opt.batch_size = 16;
  opt.seed = 9;
  opt.crop_padding = 1;
  opt.horizontal_flip = true;
  opt.mean = {0.3f};
  opt.std = {0.4f};
  DataLoader plain(d, opt);
  opt.erase_prob = 0.7f;
  DataLoader erasing(d, opt), again(d, opt);
  std::vector<Batch> p = epoch_batches(plain), e = epoch_batches(erasing);
  CHECK(same_batches(e, epoch_batches(again)));
  REQUIRE(p.size() == e.size());
  int64_t samples = 0, touched = 0;
  for (size_t b = 0; b < p.size(); ++b) {
    CHECK(ints(p[b].indices) == ints(e[b].indices));
    const std::vector<float> pv = floats(p[b].images), ev = floats(e[b].images);
    const size_t chw = 2 * 8 * 8;
    for (size_t s = 0; s * chw < pv.size(); ++s, ++samples) {
      // Each differing pixel is a 0 in a rectangle shared by both channels.
      int64_t y0 = 8, y1 = -1, x0 = 8, x1 = -1, diffs = 0;
      for (size_t c = 0; c < 2; ++c)
        for (int64_t y = 0; y < 8; ++y)
          for (int64_t x = 0; x < 8; ++x) {
            const size_t i = s * chw + c * 64 + static_cast<size_t>(y * 8 + x);
            if (pv[i] == ev[i]) continue;
            ++diffs;
            CHECK(ev[i] == 0.f);
            y0 = std::min(y0, y), y1 = std::max(y1, y), x0 = std::min(x0, x), x1 = std::max(x1, x);
          }
      if (diffs == 0) continue;
      ++touched;
      CHECK(diffs <= 2 * (y1 - y0 + 1) * (x1 - x0 + 1));
    }
  }
  CHECK(samples == 60);
  CHECK(touched > 25);  // ~0.7 of 60, less the few boxes that erase pixels already 0
  CHECK(touched < 55);

  opt.erase_prob = 1.5f;
  CHECK_THROWS_WITH_AS(DataLoader(d, opt), doctest::Contains("erase_prob must be in [0, 1], got 1.5"), Error);
  opt.erase_prob = 0.5f;
  opt.erase_scale[0] = 0.5f;
  opt.erase_scale[1] = 0.1f;
  CHECK_THROWS_WITH_AS(DataLoader(d, opt), doctest::Contains("random erasing needs"), Error);
}

TEST_CASE("loader: range-for, [N, H, W] images, u8 labels, argument checks") {
  LabeledImages d = make_dataset(20, 1, 3, 3);
  Tensor flat = d.images.squeeze(1);
  Tensor u8_labels = d.labels.to(kUInt8);
  DataLoaderOptions opt;
  opt.batch_size = 6;
  DataLoader loader(flat, u8_labels, opt);
  int64_t count = 0, samples = 0;
  for (auto& batch : loader) {
    CHECK(batch.images.sizes()[1] == 1);
    CHECK(batch.labels.dtype() == kInt32);
    CHECK(batch.epoch == 0);
    ++count;
    samples += batch.images.size(0);
  }
  CHECK(count == loader.size());
  CHECK(samples == 20);
  CHECK(loader.epoch() == 1);
  // Leaving a loop early and looping again restarts that epoch from its first batch.
  std::vector<int32_t> first;
  for (auto& batch : loader) {
    first = ints(batch.indices);
    break;
  }
  std::vector<int32_t> again;
  for (auto& batch : loader) {
    if (again.empty()) again = ints(batch.indices);
    CHECK(batch.epoch == 1);
  }
  CHECK(first == again);
  CHECK(loader.epoch() == 2);

  CHECK_THROWS_WITH_AS(DataLoader(d.images.to(kFloat32), d.labels, opt), doctest::Contains("expected uint8"), Error);
  CHECK_THROWS_WITH_AS(DataLoader(d.images, d.labels.narrow(0, 0, 5), opt), doctest::Contains("expected labels [20]"), Error);
  opt.batch_size = 0;
  CHECK_THROWS_WITH_AS(DataLoader(d, opt), doctest::Contains("batch_size must be positive"), Error);
  opt.batch_size = 4;
  opt.mean = {0.1f, 0.2f};
  CHECK_THROWS_WITH_AS(DataLoader(d, opt), doctest::Contains("mean has 2 values"), Error);
}

TEST_CASE("loader: errors of the loader thread reach the consumer; shutdown mid-epoch is clean") {
  LabeledImages d = make_dataset(64, 1, 8, 8);
  for (bool prefetch : {true, false}) {
    CAPTURE(prefetch);
    DataLoaderOptions opt;
    opt.batch_size = 8;
    opt.prefetch = prefetch;
    opt.batch_transform = [](Batch& b) {
      if (b.index == 3 && b.epoch == 0) throw Error("augment failed at batch 3");
    };
    DataLoader loader(d, opt);
    for (int i = 0; i < 3; ++i) CHECK(loader.next().has_value());
    CHECK_THROWS_WITH_AS(loader.next(), "augment failed at batch 3", Error);
    CHECK(loader.epoch() == 0);
    // The next call restarts the epoch; it fails again at the same batch (deterministic).
    std::optional<Batch> first = loader.next();
    REQUIRE(first.has_value());
    CHECK(first->index == 0);
    loader.set_epoch(1);  // epoch 1 has no failure
    CHECK(epoch_batches(loader).size() == 8);
  }
  // Destroying or restarting a loader in the middle of an epoch stops its thread.
  for (int i = 0; i < 20; ++i) {
    DataLoaderOptions opt;
    opt.batch_size = 4;
    DataLoader loader(d, opt);
    loader.next();
    if (i % 2) loader.set_epoch(7);
  }
  DataLoaderOptions opt;
  opt.batch_size = 4;
  DataLoader loader(d, opt);
  loader.next();
  loader.next();
  loader.set_epoch(0);
  CHECK(all_indices(epoch_batches(loader)).size() == 64);
}
