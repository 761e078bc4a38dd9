// The text data of `--task text`: the SpamAssassin corpus or a user's table (CSV / TSV / JSON lines),
// split into train and test, tokenized once, and cut into padded batches.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "nn/data/text_dataset.hpp"
#include "nn/text/wordpiece.hpp"

namespace quench::cli {

struct TextDataOptions {
  // "spam-assassin" (nn/data/spam_assassin.hpp; $QUENCH_SPAM_ASSASSIN or tools/setup.sh --text's copy)
  // or a table file (.csv, .tsv, .jsonl) with columns text[, text_b], label.
  std::string data = "spam-assassin";
  std::string test_data;     // a table of the same form; empty: a stratified test_split hold-out
  double test_split = 0.2;   // SpamAssassin: its fixed, documented split (spam_assassin_split)
  uint64_t split_seed = 0;
  bool strip_headers = true;  // SpamAssassin: drop each message's RFC 822 header block
  // > 0: a stratified sample of about this many rows (the same classes' shares), for quick runs.
  int64_t limit_train = 0, limit_test = 0;
};
nlohmann::json to_json(const TextDataOptions& o);
TextDataOptions text_data_options_from_json(const nlohmann::json& j);

// "spam-assassin" or a path whose extension names a text table.
bool is_text_data(const std::string& data);

struct TextSplits {
  nn::LabeledTexts train, test;
};
// Both splits share `classes` (the training set's). Errors name the file and the row.
TextSplits load_text_data(const TextDataOptions& o);
// About n rows of `data` drawn class by class (all when n <= 0 or n >= size), in their original order.
nn::LabeledTexts stratified_sample(const nn::LabeledTexts& data, int64_t n, uint64_t seed);

// Token ids of every row, truncated to max_length ([CLS] a [SEP] (b [SEP])), not padded.
struct EncodedTexts {
  std::vector<std::vector<int32_t>> ids, types;
  std::vector<int32_t> labels;
  int64_t size() const { return static_cast<int64_t>(ids.size()); }
  int64_t tokens() const;  // sum of the row lengths
};
EncodedTexts encode_texts(const nn::LabeledTexts& data, const nn::WordPieceTokenizer& tok, int64_t max_length);

// Rows `rows` as the model's inputs {input_ids, attention_mask, token_type_ids}, i32 [B, L], padded
// with pad_id to the longest of them (padding keys get no attention, so the logits do not depend on
// L); `labels` (optional) gets their labels i32 [B].
tensor_list text_batch(const EncodedTexts& data, const std::vector<int64_t>& rows, int32_t pad_id,
                       Tensor* labels = nullptr);

}  // namespace quench::cli
