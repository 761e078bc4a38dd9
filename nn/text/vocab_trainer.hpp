// A WordPiece vocabulary trainer: Hugging Face tokenizers' WordPieceTrainer algorithm, which is its BPE
// trainer whose merges make the vocabulary (BPE merges, not the likelihood-scored WordPiece of the
// original Google paper).
//
// 1. Every text goes through the basic tokenizer of WordPieceTokenizer (clean, CJK split, NFC, lower-case
//    and strip accents when `lowercase`, split on whitespace and punctuation; special tokens in the
//    text are plain text, as in HF); words are counted.
// 2. Alphabet: the code points of the words weighted by word count, the limit_alphabet most frequent
//    kept (ties: lower code point). A word becomes symbols: its first char c, every later char
//    prefix + c; chars outside the alphabet are left out.
// 3. Repeatedly merge the most frequent adjacent symbol pair (ties: the lexicographically smallest
//    pair of strings, so the result is deterministic): "a" + "##b" -> "ab", "##a" + "##b" -> "##ab".
//    Stop at vocab_size tokens or when no pair occurs min_frequency times. Pair counts are kept per
//    word type and updated only in the words a merge touches; a max-heap with lazy invalidation picks
//    the next pair.
// Output (id order): special tokens, the alphabet chars (code point order), their prefixed forms that
// occur (same order), then the merged tokens in merge order. Feed it to WordPieceTokenizer with
// do_lower_case = lowercase.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace quench::nn {

struct WordPieceTrainerOptions {
  int64_t vocab_size = 8000;      // the most tokens in the result, special tokens included
  int64_t min_frequency = 2;      // a pair must occur this many times (word counts summed) to merge
  bool lowercase = true;          // lower-case and strip accents, as WordPieceOptions::do_lower_case
  std::vector<std::string> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  int64_t limit_alphabet = 1000;  // most initial characters kept; <= 0: all
  std::string continuing_subword_prefix = "##";
};

// The vocab (token of id i at [i]). Throws quench::Error when vocab_size cannot hold the special
// tokens and the alphabet, or on a bad option.
std::vector<std::string> train_wordpiece_vocab(const std::vector<std::string>& corpus,
                                               const WordPieceTrainerOptions& options = {});

}  // namespace quench::nn
