// A WordPiece vocabulary learned from a corpus: the algorithm of Hugging Face tokenizers'
// WordPieceTrainer, which is its BPE trainer with "##" continuation prefixes.
//   1. Pre-tokenize every text with the BERT basic tokenizer (lower-casing and accent stripping with
//      `lowercase`) and count the words.
//   2. The alphabet: the characters of those words, weighted by word count; the limit_alphabet most
//      frequent are kept (ties: smaller code point first), the others dropped from the words.
//   3. Each word becomes symbols: its first character, then "##" + each following character.
//   4. Repeatedly merge the adjacent pair of symbols with the highest count (summed over word
//      occurrences; ties: the lexicographically smallest pair of strings), into a + b with b's "##"
//      dropped ("##x" + "##y" = "##xy", "a" + "##b" = "ab"), until the vocabulary has vocab_size
//      tokens or no pair reaches min_frequency.
// The vocabulary: the special tokens (ids 0...), the alphabet's characters sorted, their "##" forms
// sorted, then the merged tokens in merge order. Deterministic: the same corpus gives the same file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace quench::nn {

struct WordPieceTrainerOptions {
  int64_t vocab_size = 8000;  // special tokens included
  int64_t min_frequency = 2;
  bool lowercase = true;      // BERT uncased (lower-case and strip accents before counting)
  std::vector<std::string> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  int64_t limit_alphabet = 1000;
  std::string continuing_subword_prefix = "##";
};

std::vector<std::string> train_wordpiece_vocab(const std::vector<std::string>& corpus,
                                               const WordPieceTrainerOptions& options = {});

}  // namespace quench::nn
