#include "tools/cli/text_data.hpp"

#include <algorithm>
#include <cstring>

#include "engine/error.hpp"
#include "nn/data/spam_assassin.hpp"
#include "nn/data/text_table.hpp"

namespace quench::cli {

nlohmann::json to_json(const TextDataOptions& o) {
  return {{"data", o.data},           {"test_data", o.test_data},         {"test_split", o.test_split},
          {"split_seed", o.split_seed}, {"strip_headers", o.strip_headers}, {"limit_train", o.limit_train},
          {"limit_test", o.limit_test}};
}

TextDataOptions text_data_options_from_json(const nlohmann::json& j) {
  TextDataOptions o;
  o.data = j.value("data", o.data);
  o.test_data = j.value("test_data", o.test_data);
  o.test_split = j.value("test_split", o.test_split);
  o.split_seed = j.value("split_seed", o.split_seed);
  o.strip_headers = j.value("strip_headers", o.strip_headers);
  o.limit_train = j.value("limit_train", o.limit_train);
  o.limit_test = j.value("limit_test", o.limit_test);
  return o;
}

bool is_text_data(const std::string& data) {
  return data == "spam-assassin" || nn::text_format_from_extension(data) != nn::TextFormat::Auto;
}

nn::LabeledTexts stratified_sample(const nn::LabeledTexts& data, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= data.size()) return data;
  // The "test" side of a stratified split of the wanted share: about n rows, every class in proportion.
  auto parts = nn::stratified_split(data.labels, static_cast<double>(n) / static_cast<double>(data.size()), seed);
  return nn::subset(data, parts.second);
}

TextSplits load_text_data(const TextDataOptions& o) {
  TextSplits s;
  if (o.data == "spam-assassin") {
    QUENCH_CHECK(o.test_data.empty(), "text data: the SpamAssassin corpus has its own test split; drop --test-data");
    nn::SpamAssassinOptions so;
    so.strip_headers = o.strip_headers;
    nn::LabeledTexts all = nn::load_spam_assassin(nn::spam_assassin_default_path(), so);  // $QUENCH_SPAM_ASSASSIN or ./third_party/npm
    nn::SpamAssassinSplit split = nn::spam_assassin_split(all, o.split_seed, o.test_split);
    s.train = std::move(split.train);
    s.test = std::move(split.test);
  } else {
    s.train = nn::read_text_table(o.data);
    if (o.test_data.empty()) {
      auto parts = nn::stratified_split(s.train.labels, o.test_split, o.split_seed);
      nn::LabeledTexts all = std::move(s.train);
      s.train = nn::subset(all, parts.first);
      s.test = nn::subset(all, parts.second);
    } else {
      nn::TextTableOptions to;
      to.classes = s.train.classes;  // the test labels must be training classes, at the same indices
      s.test = nn::read_text_table(o.test_data, to);
    }
  }
  QUENCH_CHECK(s.train.classes.size() >= 2, "text data: ", o.data, " has ", s.train.classes.size(),
               " class(es); a classifier needs at least 2");
  QUENCH_CHECK(s.train.size() > 0 && s.test.size() > 0, "text data: ", o.data, ": empty ",
               s.train.size() == 0 ? "training" : "test", " split (lower or raise --test-split)");
  s.train = stratified_sample(s.train, o.limit_train, o.split_seed + 1);
  s.test = stratified_sample(s.test, o.limit_test, o.split_seed + 2);
  return s;
}

int64_t EncodedTexts::tokens() const {
  int64_t n = 0;
  for (const auto& r : ids) n += static_cast<int64_t>(r.size());
  return n;
}

EncodedTexts encode_texts(const nn::LabeledTexts& data, const nn::WordPieceTokenizer& tok, int64_t max_length) {
  EncodedTexts e;
  e.ids.resize(data.size());
  e.types.resize(data.size());
  e.labels = data.labels;
  for (int64_t i = 0; i < data.size(); ++i) {
    nn::Encoding enc = data.is_pairs() ? tok.encode(data.texts[i], data.texts_b[i], max_length)
                                       : tok.encode(data.texts[i], max_length);
    // encode pads to max_length; batches pad to their own longest row instead.
    size_t n = 0;
    while (n < enc.attention_mask.size() && enc.attention_mask[n]) ++n;
    enc.input_ids.resize(n);
    enc.token_type_ids.resize(n);
    e.ids[i] = std::move(enc.input_ids);
    e.types[i] = std::move(enc.token_type_ids);
  }
  return e;
}

tensor_list text_batch(const EncodedTexts& data, const std::vector<int64_t>& rows, int32_t pad_id, Tensor* labels) {
  const int64_t B = static_cast<int64_t>(rows.size());
  size_t L = 1;
  for (int64_t r : rows) L = std::max(L, data.ids[r].size());
  Tensor ids = Tensor::empty({B, static_cast<int64_t>(L)}, kInt32), mask = zeros({B, static_cast<int64_t>(L)}, kInt32),
         types = zeros({B, static_cast<int64_t>(L)}, kInt32);
  int32_t *pi = ids.data_ptr<int32_t>(), *pm = mask.data_ptr<int32_t>(), *pt = types.data_ptr<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = data.ids[rows[b]];
    std::fill(pi + b * L, pi + (b + 1) * L, pad_id);
    std::memcpy(pi + b * L, row.data(), row.size() * sizeof(int32_t));
    std::memcpy(pt + b * L, data.types[rows[b]].data(), row.size() * sizeof(int32_t));
    std::fill(pm + b * L, pm + b * L + row.size(), 1);
  }
  if (labels) {
    std::vector<int32_t> y(B);
    for (int64_t b = 0; b < B; ++b) y[b] = data.labels[rows[b]];
    *labels = tensor(y, {B});
  }
  return {ids, mask, types};
}

}  // namespace quench::cli
