// A labelled text set held in memory (single texts or pairs), row subsets and a deterministic
// stratified train/test split: what the text readers (text_table.hpp, spam_assassin.hpp) return and
// a tokenizer consumes.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.hpp"  // quench::Error, what the readers throw

namespace quench::nn {

struct LabeledTexts {
  std::vector<std::string> texts;    // UTF-8, one per row
  std::vector<std::string> texts_b;  // empty, or one per row: the second segment of a pair
  std::vector<int32_t> labels;       // one per row, indices into `classes`
  std::vector<std::string> classes;  // class names by index

  int64_t size() const { return static_cast<int64_t>(texts.size()); }
  bool is_pairs() const { return !texts_b.empty(); }
};

// The rows `rows` of `data`, in that order (repeats allowed), with the same classes. A row out of
// range, or a `data` whose texts_b / labels sizes disagree with texts, throws quench::Error.
LabeledTexts subset(const LabeledTexts& data, const std::vector<int64_t>& rows);

// Splits row indices 0..labels.size()-1 into (train, test), class by class, so each class keeps its
// share in both. For each label value c present (in increasing order), the rows with label c are
// taken in increasing order, shuffled by Fisher-Yates with a splitmix64 generator whose state starts
// at seed ^ (0x9E3779B97F4A7C15 * (c + 1)) (unbiased draws by rejection), and the first
// round(test_fraction * n_c) of them (half away from zero) go to test, the rest to train. A class
// with one row and a fraction below 0.5 therefore stays whole in train. Both lists come back sorted.
// The result depends only on (labels, test_fraction, seed): the same on every machine and run.
// test_fraction outside [0, 1] or a negative label throws quench::Error.
std::pair<std::vector<int64_t>, std::vector<int64_t>> stratified_split(const std::vector<int32_t>& labels,
                                                                      double test_fraction, uint64_t seed);

}  // namespace quench::nn
