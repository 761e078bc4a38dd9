#include "nn/data/text_dataset.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/error.hpp"

namespace quench::nn {

namespace {

// splitmix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator; written out here so the split
// is pinned by this file alone and cannot drift with the engine's Generator.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1, by rejecting the top partial block of 2^64.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // draws >= limit would bias the remainder
    uint64_t r;
    do r = next();
    while (r >= limit);
    return r % n;
  }
};

}  // namespace

LabeledTexts subset(const LabeledTexts& data, const std::vector<int64_t>& rows) {
  const int64_t n = data.size();
  QUENCH_CHECK(static_cast<int64_t>(data.labels.size()) == n, "subset: ", n, " texts but ",
               data.labels.size(), " labels");
  QUENCH_CHECK(data.texts_b.empty() || static_cast<int64_t>(data.texts_b.size()) == n, "subset: ", n,
               " texts but ", data.texts_b.size(), " second segments (texts_b must be empty or one per row)");
  LabeledTexts out;
  out.classes = data.classes;
  out.texts.reserve(rows.size());
  out.labels.reserve(rows.size());
  if (data.is_pairs()) out.texts_b.reserve(rows.size());
  for (int64_t r : rows) {
    QUENCH_CHECK(r >= 0 && r < n, "subset: row ", r, " out of range for ", n, " rows");
    out.texts.push_back(data.texts[r]);
    if (data.is_pairs()) out.texts_b.push_back(data.texts_b[r]);
    out.labels.push_back(data.labels[r]);
  }
  return out;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> stratified_split(const std::vector<int32_t>& labels,
                                                                      double test_fraction, uint64_t seed) {
  QUENCH_CHECK(test_fraction >= 0.0 && test_fraction <= 1.0, "stratified_split: test_fraction ", test_fraction,
               " is outside [0, 1]");
  std::map<int32_t, std::vector<int64_t>> by_class;  // ordered: classes visited in increasing label
  for (size_t i = 0; i < labels.size(); ++i) {
    QUENCH_CHECK(labels[i] >= 0, "stratified_split: row ", i, " has negative label ", labels[i]);
    by_class[labels[i]].push_back(static_cast<int64_t>(i));
  }
  std::vector<int64_t> train, test;
  for (auto& [c, rows] : by_class) {
    SplitMix64 rng{seed ^ (0x9E3779B97F4A7C15ULL * (static_cast<uint64_t>(c) + 1))};
    for (size_t i = rows.size(); i > 1; --i) std::swap(rows[i - 1], rows[rng.below(i)]);
    const auto k = static_cast<size_t>(std::llround(test_fraction * static_cast<double>(rows.size())));
    test.insert(test.end(), rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(k));
    train.insert(train.end(), rows.begin() + static_cast<std::ptrdiff_t>(k), rows.end());
  }
  std::sort(train.begin(), train.end());
  std::sort(test.begin(), test.end());
  return {std::move(train), std::move(test)};
}

}  // namespace quench::nn
