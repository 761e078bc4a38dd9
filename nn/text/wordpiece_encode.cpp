// WordPieceTokenizer's second half: special tokens around one or two sequences, truncation and
// padding into batches (encode, encode_batch), and the way back from ids to tokens and text.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "nn/text/wordpiece.hpp"

namespace quench::nn {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

}  // namespace

// ---- encoding ----

void WordPieceTokenizer::with_specials(const std::vector<int32_t>& a, const std::vector<int32_t>* b,
                                      int64_t max_length, Encoding& enc) const {
  const int64_t nspecial = b ? 3 : 2;
  size_t la = a.size(), lb = b ? b->size() : 0;
  if (max_length > 0) {
    QUENCH_CHECK(max_length >= nspecial, "WordPieceTokenizer::encode: max_length ", max_length,
                 " leaves no room for the ", nspecial, " special tokens; fix: pass max_length >= ",
                 nspecial + 1, " (or 0 for no truncation)");
    int64_t remove = static_cast<int64_t>(la + lb) + nspecial - max_length;
    if (!b) {
      if (remove > 0) la -= static_cast<size_t>(remove);
    } else {
      for (; remove > 0; --remove) {  // HF's longest_first: from a only while it is strictly longer
        if (la > lb) --la;
        else --lb;
      }
    }
  } else {
    QUENCH_CHECK(max_length == 0, "WordPieceTokenizer::encode: max_length ", max_length,
                 " is negative; fix: pass 0 for no truncation or a length >= ", nspecial);
  }
  const size_t len = la + lb + static_cast<size_t>(nspecial);
  const size_t total = max_length > 0 ? static_cast<size_t>(max_length) : len;
  enc.input_ids.assign(total, pad_id_);
  enc.attention_mask.assign(total, 0);
  enc.token_type_ids.assign(total, 0);
  size_t k = 0;
  enc.input_ids[k++] = cls_id_;
  for (size_t i = 0; i < la; ++i) enc.input_ids[k++] = a[i];
  enc.input_ids[k++] = sep_id_;
  if (b) {
    const size_t first_end = k;
    for (size_t i = 0; i < lb; ++i) enc.input_ids[k++] = (*b)[i];
    enc.input_ids[k++] = sep_id_;
    std::fill(enc.token_type_ids.begin() + static_cast<std::ptrdiff_t>(first_end),
              enc.token_type_ids.begin() + static_cast<std::ptrdiff_t>(k), 1);
  }
  std::fill(enc.attention_mask.begin(), enc.attention_mask.begin() + static_cast<std::ptrdiff_t>(k), 1);
}

Encoding WordPieceTokenizer::encode(std::string_view text, int64_t max_length) const {
  Encoding enc;
  with_specials(tokenize_to_ids(text), nullptr, max_length, enc);
  return enc;
}

Encoding WordPieceTokenizer::encode(std::string_view text_a, std::string_view text_b, int64_t max_length) const {
  Encoding enc;
  const std::vector<int32_t> b = tokenize_to_ids(text_b);
  with_specials(tokenize_to_ids(text_a), &b, max_length, enc);
  return enc;
}

namespace {

BatchEncoding to_batch(const std::vector<Encoding>& rows, int64_t max_length, int32_t pad_id) {
  size_t L = max_length > 0 ? static_cast<size_t>(max_length) : 0;
  if (max_length <= 0)
    for (const Encoding& e : rows) L = std::max(L, e.input_ids.size());
  const auto N = static_cast<int64_t>(rows.size());
  BatchEncoding out{Tensor::empty({N, static_cast<int64_t>(L)}, kInt32),
                    Tensor::empty({N, static_cast<int64_t>(L)}, kInt32),
                    Tensor::empty({N, static_cast<int64_t>(L)}, kInt32)};
  int32_t* ids = out.input_ids.data_ptr<int32_t>();
  int32_t* mask = out.attention_mask.data_ptr<int32_t>();
  int32_t* types = out.token_type_ids.data_ptr<int32_t>();
  for (size_t r = 0; r < rows.size(); ++r) {
    const Encoding& e = rows[r];
    const size_t n = e.input_ids.size();
    for (size_t j = 0; j < L; ++j) {
      const bool real = j < n;
      ids[r * L + j] = real ? e.input_ids[j] : pad_id;
      mask[r * L + j] = real ? e.attention_mask[j] : 0;
      types[r * L + j] = real ? e.token_type_ids[j] : 0;
    }
  }
  return out;
}

}  // namespace

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_length) const {
  std::vector<Encoding> rows;
  rows.reserve(texts.size());
  for (const std::string& t : texts) rows.push_back(encode(t, max_length));
  return to_batch(rows, max_length, pad_id_);
}

BatchEncoding WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts_a,
                                               const std::vector<std::string>& texts_b, int64_t max_length) const {
  QUENCH_CHECK(texts_a.size() == texts_b.size(), "WordPieceTokenizer::encode_batch: ", texts_a.size(),
               " first texts but ", texts_b.size(), " second texts; fix: pass one second text per first text");
  std::vector<Encoding> rows;
  rows.reserve(texts_a.size());
  for (size_t i = 0; i < texts_a.size(); ++i) rows.push_back(encode(texts_a[i], texts_b[i], max_length));
  return to_batch(rows, max_length, pad_id_);
}

// ---- ids and tokens ----

std::string WordPieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    QUENCH_CHECK(id >= 0 && id < vocab_size(), "WordPieceTokenizer::decode: id ", id, " outside the vocab of ",
                 vocab_size(), " tokens");
    if (skip_special_tokens &&
        (id == unk_id_ || id == cls_id_ || id == sep_id_ || id == pad_id_ || id == mask_id_))
      continue;
    if (!first) out.push_back(' ');
    out += vocab_[static_cast<size_t>(id)];
    first = false;
  }
  replace_all(out, " ##", "");
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  size_t b = 0, e = out.size();
  while (b < e && is_space(out[b])) ++b;
  while (e > b && is_space(out[e - 1])) --e;
  out = out.substr(b, e - b);
  if (opt_.clean_up_tokenization_spaces) {  // HF's clean_up_tokenization, in its order
    replace_all(out, " .", ".");
    replace_all(out, " ?", "?");
    replace_all(out, " !", "!");
    replace_all(out, " ,", ",");
    replace_all(out, " ' ", "'");
    replace_all(out, " n't", "n't");
    replace_all(out, " 'm", "'m");
    replace_all(out, " 's", "'s");
    replace_all(out, " 've", "'ve");
    replace_all(out, " 're", "'re");
  }
  return out;
}

int32_t WordPieceTokenizer::token_to_id(std::string_view token) const {
  const int32_t id = full_.find(token);
  return id >= 0 ? id : unk_id_;
}

bool WordPieceTokenizer::contains(std::string_view token) const { return full_.find(token) >= 0; }

std::vector<int32_t> WordPieceTokenizer::convert_tokens_to_ids(const std::vector<std::string>& tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(tokens.size());
  for (const std::string& t : tokens) ids.push_back(token_to_id(t));
  return ids;
}

std::vector<std::string> WordPieceTokenizer::convert_ids_to_tokens(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    QUENCH_CHECK(id >= 0 && id < vocab_size(), "WordPieceTokenizer::convert_ids_to_tokens: id ", id,
                 " outside the vocab of ", vocab_size(), " tokens");
    tokens.push_back(vocab_[static_cast<size_t>(id)]);
  }
  return tokens;
}

}  // namespace quench::nn
