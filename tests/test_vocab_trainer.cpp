// train_wordpiece_vocab: hand-worked merges, determinism, and that its vocab covers its corpus.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>

#include "nn/text/vocab_trainer.hpp"
#include "nn/text/wordpiece.hpp"

using namespace quench;
using namespace quench::nn;

namespace {

using Strings = std::vector<std::string>;

const Strings kSpecials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

Strings tail(const Strings& v, size_t from) { return Strings(v.begin() + static_cast<std::ptrdiff_t>(from), v.end()); }

// Sentences of words drawn from a Zipf-like list, with punctuation, capitals and a few accents / CJK.
Strings synthetic_corpus(size_t n, uint32_t seed) {
  const Strings words = {"the", "of", "and", "to", "in", "is", "was", "for", "that", "with", "meeting",
                         "schedule", "tomorrow", "energy", "trading", "contract", "please", "review",
                         "attached", "report", "caf\xC3\xA9", "na\xC3\xAFve", "r\xC3\xA9sum\xC3\xA9",
                         "Stra\xC3\x9F" "e", "\xE4\xB8\xAD\xE6\x96\x87", "gas", "price", "market"};
  const Strings punct = {",", ".", "!", "?", ";", ":", "(", ")", "'s"};
  const Strings syllables = {"ka", "lo", "mi", "ter", "son", "vel", "qua", "rix", "pen", "dor", "ul", "sha"};
  std::mt19937 rng(seed);
  // plus 400 pseudo-words of 2..4 syllables, so there is more to merge than the list above
  Strings rare;
  for (int i = 0; i < 400; ++i) {
    std::string w;
    for (size_t k = 0, n = 2 + rng() % 3; k < n; ++k) w += syllables[rng() % syllables.size()];
    rare.push_back(w);
  }
  Strings out;
  for (size_t i = 0; i < n; ++i) {
    std::string s;
    const size_t len = 4 + rng() % 12;
    for (size_t k = 0; k < len; ++k) {
      const size_t r = rng() % 1000;
      const size_t z = rng() % 1000;
      std::string w = r < 300 ? rare[rng() % rare.size()]
                              : words[std::min<size_t>(words.size() - 1, z * z / 1000 * words.size() / 1000)];
      if (k == 0) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
      s += w;
      if (rng() % 7 == 0) s += punct[rng() % punct.size()];
      s += ' ';
    }
    s += ".";
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST_CASE("vocab trainer: hand-worked merges and tie breaking") {
  WordPieceTrainerOptions o;
  o.min_frequency = 1;
  // ab x3, cd x2: the alphabet, the "##" forms that occur, then ab (3) before cd (2)
  Strings v = train_wordpiece_vocab({"ab ab ab cd cd"}, o);
  CHECK(Strings(v.begin(), v.begin() + 5) == kSpecials);
  CHECK(tail(v, 5) == Strings{"a", "b", "c", "d", "##b", "##d", "ab", "cd"});
  // min_frequency 3 leaves cd unmerged
  o.min_frequency = 3;
  CHECK(tail(train_wordpiece_vocab({"ab ab ab cd cd"}, o), 5) == Strings{"a", "b", "c", "d", "##b", "##d", "ab"});
  o.min_frequency = 1;
  // equal counts: the lexicographically smaller pair first, whatever the corpus order
  CHECK(tail(train_wordpiece_vocab({"cd ab"}, o), 5) == Strings{"a", "b", "c", "d", "##b", "##d", "ab", "cd"});
  // "##b" + "##c" -> "##bc" (("##b","##c") sorts before ("a","##b")), then "a" + "##bc" -> "abc"
  CHECK(tail(train_wordpiece_vocab({"abc abc"}, o), 5) == Strings{"a", "b", "c", "##b", "##c", "##bc", "abc"});
  // punctuation and case: words come from the basic tokenizer
  CHECK(tail(train_wordpiece_vocab({"Ab, AB!"}, o), 5) == Strings{"!", ",", "a", "b", "##b", "ab"});
  o.lowercase = false;
  CHECK(tail(train_wordpiece_vocab({"Ab AB"}, o), 5) == Strings{"A", "B", "b", "##B", "##b", "AB", "Ab"});
  // a vocab_size that stops the merges
  o.lowercase = true;
  o.vocab_size = 11 + 1;
  CHECK(tail(train_wordpiece_vocab({"ab ab ab cd cd"}, o), 5) == Strings{"a", "b", "c", "d", "##b", "##d", "ab"});
}

TEST_CASE("vocab trainer: special tokens first, custom prefix, alphabet limit") {
  WordPieceTrainerOptions o;
  o.min_frequency = 1;
  o.special_tokens = {"<s>", "</s>"};
  o.continuing_subword_prefix = "@@";
  const Strings v = train_wordpiece_vocab({"xy xy"}, o);
  CHECK(v == Strings{"<s>", "</s>", "x", "y", "@@y", "xy"});
  // limit_alphabet keeps the most frequent chars; words lose the others
  WordPieceTrainerOptions lim;
  lim.min_frequency = 1;
  lim.special_tokens = {};
  lim.limit_alphabet = 2;
  // a: 4, b: 3, c: 1 -> {a, b}; "c" is left out; ("##a","##b") sorts before ("a","##a")
  CHECK(train_wordpiece_vocab({"aab aab b c"}, lim) == Strings{"a", "b", "##a", "##b", "##ab", "aab"});
}

TEST_CASE("vocab trainer: errors") {
  WordPieceTrainerOptions o;
  o.vocab_size = 6;  // 5 specials + 3 chars do not fit
  bool threw = false;
  try {
    train_wordpiece_vocab({"abc"}, o);
  } catch (const std::runtime_error& e) {
    threw = true;
    CHECK(std::string(e.what()).find("vocab_size 6") != std::string::npos);
    CHECK(std::string(e.what()).find("fix:") != std::string::npos);
  }
  CHECK(threw);
  o.vocab_size = 0;
  CHECK_THROWS_AS(train_wordpiece_vocab({"abc"}, o), Error);
  // an empty corpus gives the special tokens alone
  CHECK(train_wordpiece_vocab({}, WordPieceTrainerOptions{}) == kSpecials);
}

TEST_CASE("vocab trainer: deterministic, vocab_size respected, its vocab covers its corpus") {
  const Strings corpus = synthetic_corpus(3000, 11);
  WordPieceTrainerOptions o;
  o.vocab_size = 300;
  const Strings v = train_wordpiece_vocab(corpus, o);
  CHECK(static_cast<int64_t>(v.size()) == o.vocab_size);
  CHECK(Strings(v.begin(), v.begin() + 5) == kSpecials);
  CHECK(std::set<std::string>(v.begin(), v.end()).size() == v.size());  // no duplicates
  // same corpus, any order: the same vocab
  CHECK(train_wordpiece_vocab(corpus, o) == v);
  Strings shuffled = corpus;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(5));
  CHECK(train_wordpiece_vocab(shuffled, o) == v);

  WordPieceOptions topt;
  topt.do_lower_case = o.lowercase;
  const WordPieceTokenizer tok(v, topt);
  int64_t pieces = 0, unks = 0;
  for (const std::string& text : corpus)
    for (int32_t id : tok.tokenize_to_ids(text)) {
      ++pieces;
      unks += id == tok.unk_id();
    }
  CHECK(pieces > 0);
  CHECK(unks == 0);
  // frequent words became whole tokens
  CHECK(tok.tokenize("The, and") == Strings{"the", ",", "and"});
  CHECK(tok.tokenize("meeting").size() < 7);
  // a big vocab_size stops when no pair is frequent enough
  o.vocab_size = 100000;
  const Strings all = train_wordpiece_vocab(corpus, o);
  CHECK(all.size() > v.size());
  CHECK(static_cast<int64_t>(all.size()) < o.vocab_size);
  CHECK(std::equal(v.begin(), v.end(), all.begin()));  // a prefix of the longer run
}
