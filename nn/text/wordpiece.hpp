// WordPiece tokenization equal to Hugging Face's BertTokenizer (the Python one in transformers), and the
// vocab.txt it reads.
//
// text -> special tokens split out of the raw text (HF's added-token trie; case-sensitive)
//      -> basic tokenizer: clean (drop U+0000, U+FFFD and every category C* char but \t \n \r; whitespace
//         and category Zs become a space), spaces around CJK ideographs, NFC, split on whitespace,
//         per word: lower-case, strip accents (NFD, drop Mn), split off each punctuation char
//      -> WordPiece: greedy longest match first, continuations "##"-prefixed, [UNK] for a word that
//         cannot be matched whole or has more than max_input_chars_per_word code points
//      -> ids; encode adds [CLS] a [SEP] (b [SEP]), truncates (longest_first) and pads.
//
// Unicode comes from utf8proc (categories, simple lower-case mapping, NFC/NFD). Where Python differs:
// str.lower()'s one unconditional multi-char mapping (U+0130 -> "i" U+0307) is reproduced; final sigma
// is not applied, as HF lower-cases char by char before splitting; Unicode versions may differ in
// characters new since Python's database. Invalid UTF-8 bytes in the input are dropped, as HF drops the
// U+FFFD that Python decoding with errors="replace" gives them (they do not split words).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"

namespace quench::nn {

struct WordPieceOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follows do_lower_case (HF's strip_accents=None)
  bool tokenize_chinese_chars = true;
  int64_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string cls_token = "[CLS]";
  // Optional in the vocab; when absent it still splits out of text and maps to [UNK]'s id (HF would
  // give it a new id past the vocab, as an added token).
  std::string mask_token = "[MASK]";
  // More tokens split out of the raw text and kept whole, as HF's added tokens.
  std::vector<std::string> never_split;
  bool clean_up_tokenization_spaces = true;  // decode: HF's " ." -> "." and friends
};

// One encoded text or pair; the three vectors have the same length.
struct Encoding {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> attention_mask;  // 1 = a real token, 0 = padding
  std::vector<int32_t> token_type_ids;  // 0 = first segment (with [CLS] and its [SEP]), 1 = second
};

// A batch: three i32 tensors [N, L].
struct BatchEncoding {
  Tensor input_ids;
  Tensor attention_mask;
  Tensor token_type_ids;
};

class WordPieceTokenizer {
 public:
  // `vocab[i]` is the token of id i. Duplicates or a missing [UNK] / [CLS] / [SEP] / [PAD] throw
  // quench::Error (a std::runtime_error).
  explicit WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});
  // A standard vocab.txt: one token per line, id = line number (from 0), UTF-8, "\n", "\r\n" or "\r"
  // line ends (Python's universal newlines), a leading UTF-8 BOM ignored. A missing file, duplicate
  // token, missing special token or invalid UTF-8 throws quench::Error naming the file, the line and
  // the fix.
  static WordPieceTokenizer from_vocab_file(const std::string& path, WordPieceOptions options = {});
  // Writes the vocab, one token per line in id order, to a temp file renamed over `path`.
  void save_vocab(const std::string& path) const;

  // The basic tokenizer's words (special tokens included whole), before WordPiece.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // fn(word) for each basic-tokenizer word; split_specials=false treats special tokens as text (as
  // HF's WordPiece trainer sees them). For the vocab trainer.
  void for_each_basic_word(std::string_view text, bool split_specials,
                           const std::function<void(std::string_view)>& fn) const;
  // Word pieces ("##"-prefixed continuations, [UNK]), no [CLS] / [SEP].
  std::vector<std::string> tokenize(std::string_view text) const;
  // The ids of tokenize(text).
  std::vector<int32_t> tokenize_to_ids(std::string_view text) const;

  // [CLS] text [SEP]. max_length > 0: truncated to it, then padded to it; 0: neither. max_length below
  // the number of special tokens (2, or 3 for a pair) throws (HF would return an over-long sequence).
  Encoding encode(std::string_view text, int64_t max_length = 0) const;
  // [CLS] a [SEP] b [SEP], truncated longest_first: one token at a time from the longer of a and b
  // (from b when they are equal), as HF's truncation=True.
  Encoding encode(std::string_view text_a, std::string_view text_b, int64_t max_length = 0) const;
  // max_length > 0: every row truncated and padded to it; 0: padded to the longest row.
  BatchEncoding encode_batch(const std::vector<std::string>& texts, int64_t max_length = 0) const;
  BatchEncoding encode_batch(const std::vector<std::string>& texts_a,
                             const std::vector<std::string>& texts_b, int64_t max_length = 0) const;

  // HF's decode: tokens joined by spaces, " ##" removed, then (options.clean_up_tokenization_spaces)
  // " ." -> "." etc. An id outside the vocab throws.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int32_t token_to_id(std::string_view token) const;  // unk_id() when absent
  std::vector<int32_t> convert_tokens_to_ids(const std::vector<std::string>& tokens) const;
  std::vector<std::string> convert_ids_to_tokens(const std::vector<int32_t>& ids) const;
  bool contains(std::string_view token) const;

  int64_t vocab_size() const { return static_cast<int64_t>(vocab_.size()); }
  const std::vector<std::string>& vocab() const { return vocab_; }
  const WordPieceOptions& options() const { return opt_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t cls_id() const { return cls_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t mask_id() const { return mask_id_; }  // -1 when the vocab has no mask token

  // Open-addressing string -> id table (keys in one pool; string_view lookups, no allocation).
  class Table {
   public:
    void build(const std::vector<std::pair<std::string_view, int32_t>>& entries);
    int32_t find(std::string_view key) const;  // -1 when absent
    int64_t max_key_chars() const { return max_chars_; }  // longest key, in code points

   private:
    struct Slot {
      uint64_t hash = 0;
      uint32_t off = 0, len = 0;
      int32_t id = -1;
    };
    std::vector<Slot> slots_;
    std::string pool_;
    uint64_t mask_ = 0;
    int64_t max_chars_ = 0;
  };

  struct Scratch;  // per-call buffers (wordpiece.cpp)

 private:
  template <class Emit>
  void basic_words(std::string_view text, Scratch& s, Emit&& emit, bool split_specials = true) const;
  template <class Emit> void process_token(Scratch& s, bool ascii, Emit&& emit) const;
  template <class Out> void wordpiece(std::string_view word, Scratch& s, Out&& out) const;
  template <class Out> void run(std::string_view text, Out&& out) const;
  size_t match_special(std::string_view text, size_t pos) const;
  void with_specials(const std::vector<int32_t>& a, const std::vector<int32_t>* b, int64_t max_length,
                    Encoding& enc) const;

  std::vector<std::string> vocab_;
  WordPieceOptions opt_;
  bool strip_accents_ = true;
  Table full_;  // every token
  Table cont_;  // "##x" tokens, keyed by x
  std::vector<std::string> specials_;  // split out of raw text, longest first
  bool special_first_byte_[256] = {};
  int32_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, mask_id_ = -1;
};

// HF's _is_chinese_char: the CJK ideograph blocks (not Hangul, kana or CJK punctuation).
bool is_cjk_ideograph(int32_t cp);
// HF's _is_punctuation: ASCII 33-47, 58-64, 91-96, 123-126 or any Unicode category P*.
bool is_bert_punctuation(int32_t cp);

}  // namespace quench::nn
