// WordPieceTokenizer: Hugging Face's BertTokenizer (transformers' BasicTokenizer + WordpieceTokenizer)
// on a standard vocab.txt, with Unicode properties from utf8proc.
//
// Basic tokenization, in HF's order:
//   1. clean: drop U+0000, U+FFFD and control characters (categories C*, except \t \n \r), map
//      whitespace (space, \t \n \r, category Zs) to a space;
//   2. put spaces around CJK ideographs (HF's _is_chinese_char ranges) when tokenize_chinese_chars;
//   3. NFC-normalize, split on spaces;
//   4. per word not in never_split: lower-case (do_lower_case) and strip accents (NFD, drop category
//      Mn; follows do_lower_case unless strip_accents says), then split every punctuation character
//      (ASCII 33-47, 58-64, 91-96, 123-126 and categories P*) into its own token.
// WordPiece: greedy longest-match-first against the vocabulary, continuation pieces prefixed "##"; a
// word longer than max_input_chars_per_word code points, or one that cannot be covered, is one [UNK].
// Encoding: [CLS] a [SEP] (b [SEP]), token types 0 then 1, truncation to max_length (pairs: HF's
// longest_first, a token at a time from the longer side), optional padding with [PAD].
//
// Invalid UTF-8 in the input is read as U+FFFD, one per bad byte, which cleaning drops (what HF sees
// after Python decodes bytes with errors="replace"). Lower-casing is utf8proc's simple per-code-point
// mapping; Python's str.lower differs only for the few characters whose lower case is two code points
// (U+0130 'İ' gives "i̇" there, 'i' here).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tensor.hpp"

namespace quench::nn {

struct WordPieceOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follows do_lower_case (HF)
  bool tokenize_chinese_chars = true;
  int64_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]", sep_token = "[SEP]", pad_token = "[PAD]", cls_token = "[CLS]",
              mask_token = "[MASK]";
  std::vector<std::string> never_split;  // kept whole by the basic tokenizer (besides the specials)
};

// One encoded text (or pair): equal lengths.
struct Encoding {
  std::vector<int32_t> input_ids, token_type_ids, attention_mask;
};

// A batch padded to one length L: i32 [N, L] each.
struct EncodedBatch {
  Tensor input_ids, attention_mask, token_type_ids;
};

class WordPieceTokenizer {
 public:
  // vocab[i] is token i. Throws when a special token is missing or a token repeats.
  explicit WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});
  static WordPieceTokenizer from_vocab_file(const std::string& path, WordPieceOptions options = {});

  // The basic tokenizer's words and punctuation (step 1-4 above).
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // Basic tokenization then WordPiece: the token strings.
  std::vector<std::string> tokenize(std::string_view text) const;
  // Token ids of tokenize(text), without specials.
  std::vector<int32_t> encode_ids(std::string_view text) const;

  // [CLS] text [SEP] truncated to max_length (> 0; 0: no limit); with pad, padded to max_length.
  Encoding encode(std::string_view text, int64_t max_length = 0, bool pad = false) const;
  Encoding encode(std::string_view text, std::string_view text_b, int64_t max_length = 0, bool pad = false) const;
  // Every text padded to max_length (pad_to_longest: to the longest encoding instead).
  EncodedBatch encode_batch(const std::vector<std::string>& texts, int64_t max_length, bool pad_to_longest = false) const;

  // Token strings joined, "##" continuations glued to their word, specials and padding left out.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;
  std::vector<int32_t> convert_tokens_to_ids(const std::vector<std::string>& tokens) const;  // unknown: unk_id
  std::vector<std::string> convert_ids_to_tokens(const std::vector<int32_t>& ids) const;   // range-checked

  int32_t token_to_id(std::string_view token) const;  // unk_id() when absent
  bool contains(std::string_view token) const;
  int32_t unk_id() const { return unk_id_; }
  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t pad_id() const { return pad_id_; }
  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  const std::vector<std::string>& vocab() const { return vocab_; }
  const WordPieceOptions& options() const { return opt_; }

  // Writes vocab.txt atomically (a temporary file renamed over path).
  void save_vocab(const std::string& path) const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  void wordpiece(std::string_view word, std::vector<int32_t>& out) const;
  bool is_never_split(std::string_view w) const;
  template <class F>
  void for_each_word(std::string_view text, F&& emit) const;

  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t, Hash, std::equal_to<>> ids_;
  WordPieceOptions opt_;
  bool strip_accents_;
  std::string special_first_;  // first bytes of the never-split tokens: words to compare with them
  int32_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1;
};

// vocab.txt: one token per line, id = line number (from 0), UTF-8, "\r\n" or "\n". Errors name the
// file and line (invalid UTF-8, an empty or duplicate token) and the fix.
std::vector<std::string> read_vocab_file(const std::string& path);
void write_vocab_file(const std::string& path, const std::vector<std::string>& vocab);  // atomic

}  // namespace quench::nn
