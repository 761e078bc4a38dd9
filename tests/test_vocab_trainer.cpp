// The WordPiece vocabulary trainer (HF tokenizers' WordPiece trainer: BPE merges with "##"): a
// hand-worked merge order, determinism, specials first, vocab_size and min_frequency, and that its
// vocabulary covers its corpus without [UNK].
#include <doctest/doctest.h>

#include <algorithm>

#include "nn/text/vocab_trainer.hpp"
#include "nn/text/wordpiece.hpp"

using namespace quench::nn;
using Strings = std::vector<std::string>;

TEST_CASE("vocab trainer: specials, alphabet, continuation forms, then merges by count") {
  // Words: "hug" x 10, "pug" x 5, "hugs" x 5 (the HF course's BPE example, one text per word).
  Strings corpus;
  for (int i = 0; i < 10; ++i) corpus.push_back("hug");
  for (int i = 0; i < 5; ++i) corpus.push_back("Pug hugs");
  WordPieceTrainerOptions o;
  o.vocab_size = 16;
  o.min_frequency = 1;
  Strings v = train_wordpiece_vocab(corpus, o);
  // Specials; alphabet h p (first characters) and g s u sorted; ## forms sorted; merges.
  const Strings head = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "g", "h", "p", "s", "u", "##g", "##s", "##u"};
  REQUIRE(v.size() == 16);
  CHECK(Strings(v.begin(), v.begin() + 13) == head);
  // Pair counts: (##u, ##g) 20, then (h, ##ug) 15, then (hug, ##s) 5 and (p, ##ug) 5: the tie goes to the
  // lexicographically smaller pair, "hug" < "p".
  CHECK(v[13] == "##ug");
  CHECK(v[14] == "hug");
  CHECK(v[15] == "hugs");
  // Lower-cased: "Pug" counted as "pug"; no "P" anywhere.
  CHECK(std::find(v.begin(), v.end(), "P") == v.end());
}

TEST_CASE("vocab trainer: deterministic, respects vocab_size and min_frequency, covers its corpus") {
  Strings corpus = {"The quick brown fox jumps over the lazy dog.", "A quick brown dog, jumping!",
                    "Foxes and dogs: the quickest of friends?", "Naïve café owners jump quickly."};
  for (int i = 0; i < 3; ++i) corpus.insert(corpus.end(), corpus.begin(), corpus.begin() + 4);
  WordPieceTrainerOptions o;
  o.vocab_size = 80;
  Strings a = train_wordpiece_vocab(corpus, o), b = train_wordpiece_vocab(corpus, o);
  CHECK(a == b);
  CHECK(static_cast<int64_t>(a.size()) <= o.vocab_size);
  CHECK(Strings(a.begin(), a.begin() + 5) == o.special_tokens);
  Strings sorted = a;
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // every token once
  // Accents were stripped before counting: "cafe", no "é".
  CHECK(std::find(a.begin(), a.end(), "\xC3\xA9") == a.end());
  // Every seen character is in the vocabulary, so the corpus tokenizes without [UNK].
  WordPieceTokenizer t(a);
  for (const auto& text : corpus)
    for (const auto& tok : t.tokenize(text)) CHECK(tok != "[UNK]");
  // A high min_frequency stops merging early: only specials, alphabet and ## forms remain.
  WordPieceTrainerOptions strict = o;
  strict.min_frequency = 1000;
  Strings s = train_wordpiece_vocab(corpus, strict);
  for (size_t i = 5; i < s.size(); ++i) {
    const std::string body = s[i].rfind("##", 0) == 0 ? s[i].substr(2) : s[i];
    CHECK(body.size() <= 2);  // one character (at most 2 UTF-8 bytes here)
  }
  CHECK_THROWS_WITH(train_wordpiece_vocab(corpus, [] {
                      WordPieceTrainerOptions bad;
                      bad.vocab_size = 3;
                      return bad;
                    }()),
                    doctest::Contains("leaves no room"));
}

TEST_CASE("vocab trainer: limit_alphabet keeps the most frequent characters") {
  Strings corpus = {"aaaa bbb cc d"};
  WordPieceTrainerOptions o;
  o.vocab_size = 40;
  o.min_frequency = 1;
  o.limit_alphabet = 2;
  Strings v = train_wordpiece_vocab(corpus, o);
  CHECK(std::find(v.begin(), v.end(), "a") != v.end());
  CHECK(std::find(v.begin(), v.end(), "b") != v.end());
  CHECK(std::find(v.begin(), v.end(), "c") == v.end());
  CHECK(std::find(v.begin(), v.end(), "d") == v.end());
}
