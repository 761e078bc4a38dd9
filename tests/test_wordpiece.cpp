// WordPieceTokenizer against hand-made cases of every rule of HF's BertTokenizer: cleaning, whitespace,
// lower-casing and accents, punctuation, CJK, specials, greedy longest match, [UNK], pairs and
// truncation, padding, decode, vocab.txt and its errors, invalid UTF-8.
#include <doctest/doctest.h>

#include <fstream>

#include "nn/text/wordpiece.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::TempDir;

namespace {

using Strings = std::vector<std::string>;

WordPieceTokenizer make(Strings extra, WordPieceOptions o = {}) {
  Strings v = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  v.insert(v.end(), extra.begin(), extra.end());
  return WordPieceTokenizer(v, o);
}

// HF's test vocabulary (tests/models/bert/test_tokenization_bert.py).
WordPieceTokenizer hf_vocab(WordPieceOptions o = {}) {
  return make({"want", "##want", "##ed", "wa", "un", "runn", "##ing", ",", "low", "lowest"}, o);
}

}  // namespace

TEST_CASE("wordpiece: basic tokenization cleans, splits whitespace and punctuation, lower-cases") {
  auto t = hf_vocab();
  CHECK(t.basic_tokenize(" \tHeLLo!how  \n Are yoU?  ") == Strings{"hello", "!", "how", "are", "you", "?"});
  // Control characters (Cc, Cf) are dropped, NUL and U+FFFD too; \t \r \n and Zs (U+00A0, U+3000) are spaces.
  CHECK(t.basic_tokenize("a\x01" "b\xE2\x80\x8B" "c\x7F" "d") == Strings{"abcd"});  // U+200B is Cf
  CHECK(t.basic_tokenize(std::string("x\0y", 3)) == Strings{"xy"});
  CHECK(t.basic_tokenize("a\xC2\xA0" "b\xE3\x80\x80" "c\r\nd") == Strings{"a", "b", "c", "d"});
  CHECK(t.basic_tokenize("\xEF\xBF\xBD") == Strings{});
  // Punctuation: ASCII symbols count ($, ^, `, ~) and so does every Unicode P* ("«", "¿", "—").
  CHECK(t.basic_tokenize("a$b^c`d~e") == Strings{"a", "$", "b", "^", "c", "`", "d", "~", "e"});
  CHECK(t.basic_tokenize("\xC2\xAB" "hi" "\xC2\xBB \xC2\xBF" "no" "\xE2\x80\x94" "yes") ==
        Strings{"\xC2\xAB", "hi", "\xC2\xBB", "\xC2\xBF", "no", "\xE2\x80\x94", "yes"});
  CHECK(t.basic_tokenize("don't...") == Strings{"don", "'", "t", ".", ".", "."});
}

TEST_CASE("wordpiece: accents are stripped with lower-casing unless asked otherwise") {
  CHECK(hf_vocab().basic_tokenize(" \tHäLLo!how  \n Are yoU?  ") == Strings{"hallo", "!", "how", "are", "you", "?"});
  CHECK(hf_vocab().basic_tokenize("H\xC3\xA9llo Na\xC3\xAFve") == Strings{"hello", "naive"});
  WordPieceOptions keep;
  keep.strip_accents = false;
  CHECK(hf_vocab(keep).basic_tokenize("H\xC3\xA9llo") == Strings{"h\xC3\xA9llo"});
  // A decomposed é (e + U+0301) is composed (NFC) first, then stripped like the precomposed one.
  CHECK(hf_vocab().basic_tokenize("He\xCC\x81llo") == Strings{"hello"});
  WordPieceOptions keep2;
  keep2.strip_accents = false;
  CHECK(hf_vocab(keep2).basic_tokenize("He\xCC\x81llo") == Strings{"h\xC3\xA9llo"});
  WordPieceOptions cased;
  cased.do_lower_case = false;
  CHECK(hf_vocab(cased).basic_tokenize(" \tHäLLo!how  \n Are yoU?  ") ==
        Strings{"H\xC3\xA4LLo", "!", "how", "Are", "yoU", "?"});
  WordPieceOptions cased_strip = cased;
  cased_strip.strip_accents = true;
  CHECK(hf_vocab(cased_strip).basic_tokenize("HäLLo") == Strings{"HaLLo"});
}

TEST_CASE("wordpiece: CJK ideographs are split one by one, other scripts are not") {
  auto t = hf_vocab();
  CHECK(t.basic_tokenize("ah\xE5\x8D\x9A\xE6\x8E\xA8zz") == Strings{"ah", "\xE5\x8D\x9A", "\xE6\x8E\xA8", "zz"});
  CHECK(t.basic_tokenize("\xF0\xA0\x80\x80x") == Strings{"\xF0\xA0\x80\x80", "x"});  // U+20000, extension B
  // Hiragana and Hangul are not in HF's ranges: they stay in their word.
  CHECK(t.basic_tokenize("\xE3\x81\x82\xE3\x81\x84") == Strings{"\xE3\x81\x82\xE3\x81\x84"});
  WordPieceOptions no_cjk;
  no_cjk.tokenize_chinese_chars = false;
  CHECK(hf_vocab(no_cjk).basic_tokenize("ah\xE5\x8D\x9A\xE6\x8E\xA8zz") == Strings{"ah\xE5\x8D\x9A\xE6\x8E\xA8zz"});
}

TEST_CASE("wordpiece: greedy longest match with ## continuations, [UNK] for the rest") {
  auto t = hf_vocab();
  CHECK(t.tokenize("") == Strings{});
  CHECK(t.tokenize("unwanted running") == Strings{"un", "##want", "##ed", "runn", "##ing"});
  CHECK(t.tokenize("unwantedX running") == Strings{"[UNK]", "runn", "##ing"});  // one [UNK] for the whole word
  CHECK(t.tokenize("UNwant\xC3\xA9" "d,running") == Strings{"un", "##want", "##ed", ",", "runn", "##ing"});
  CHECK(t.tokenize("lowest") == Strings{"lowest"});  // the longest piece wins over low + ...
  // The special tokens pass whole, whatever the case rules.
  CHECK(t.tokenize("[CLS] want [SEP] [MASK]") == Strings{"[CLS]", "want", "[SEP]", "[MASK]"});
  WordPieceOptions o;
  o.never_split = {"[FOO]"};
  auto t2 = make({"[FOO]", "foo"}, o);
  CHECK(t2.tokenize("[FOO] [foo]") == Strings{"[FOO]", "[UNK]", "foo", "[UNK]"});
  // Words over max_input_chars_per_word code points are [UNK] without a match attempt.
  auto t3 = make({"a", "##a"});
  CHECK(t3.tokenize(std::string(100, 'a')).size() == 100);
  CHECK(t3.tokenize(std::string(101, 'a')) == Strings{"[UNK]"});
  WordPieceOptions short_words;
  short_words.max_input_chars_per_word = 3;
  CHECK(make({"a", "##a"}, short_words).tokenize("aaa aaaa") == Strings{"a", "##a", "##a", "[UNK]"});
}

TEST_CASE("wordpiece: encodings of one text and of pairs, truncation, padding, batches") {
  auto t = hf_vocab();
  const int32_t cls = t.cls_id(), sep = t.sep_id(), pad = t.pad_id();
  Encoding e = t.encode("unwanted running");
  CHECK(e.input_ids == std::vector<int32_t>{cls, t.token_to_id("un"), t.token_to_id("##want"), t.token_to_id("##ed"),
                                            t.token_to_id("runn"), t.token_to_id("##ing"), sep});
  CHECK(e.token_type_ids == std::vector<int32_t>(7, 0));
  CHECK(e.attention_mask == std::vector<int32_t>(7, 1));
  // Truncation keeps [CLS] and [SEP]; padding fills with [PAD] and mask 0.
  e = t.encode("unwanted running", 4, /*pad=*/false);
  CHECK(e.input_ids == std::vector<int32_t>{cls, t.token_to_id("un"), t.token_to_id("##want"), sep});
  e = t.encode("want", 6, /*pad=*/true);
  CHECK(e.input_ids == std::vector<int32_t>{cls, t.token_to_id("want"), sep, pad, pad, pad});
  CHECK(e.attention_mask == std::vector<int32_t>{1, 1, 1, 0, 0, 0});
  CHECK(e.token_type_ids == std::vector<int32_t>(6, 0));
  // Pairs: [CLS] a [SEP] b [SEP], types 0 then 1; longest_first takes from the longer side.
  e = t.encode("want", "low lowest");
  CHECK(e.input_ids == std::vector<int32_t>{cls, t.token_to_id("want"), sep, t.token_to_id("low"),
                                            t.token_to_id("lowest"), sep});
  CHECK(e.token_type_ids == std::vector<int32_t>{0, 0, 0, 1, 1, 1});
  e = t.encode("want want want", "low", 6);  // 3 + 1 tokens into 3 slots: a loses two
  CHECK(e.input_ids == std::vector<int32_t>{cls, t.token_to_id("want"), t.token_to_id("want"), sep,
                                            t.token_to_id("low"), sep});
  e = t.encode("want want", "low lowest", 5);  // a tie: the second loses first, then the first
  CHECK(e.input_ids == std::vector<int32_t>{cls, t.token_to_id("want"), sep, t.token_to_id("low"), sep});
  CHECK_THROWS_WITH(t.encode("want", 1), doctest::Contains("no room"));
  // A batch: i32 [N, L] tensors, padded to max_length or to the longest.
  EncodedBatch b = t.encode_batch({"want", "unwanted running"}, 8);
  REQUIRE(b.input_ids.sizes() == Shape{2, 8});
  CHECK(b.attention_mask.to_vector<int32_t>() ==
        std::vector<int32_t>{1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0});
  CHECK(t.encode_batch({"want", "unwanted running"}, 8, /*pad_to_longest=*/true).input_ids.sizes() == Shape{2, 7});
}

TEST_CASE("wordpiece: decode glues continuations and leaves the specials out; id conversions") {
  auto t = hf_vocab();
  CHECK(t.decode(t.encode("unwanted, running").input_ids) == "unwanted , running");
  CHECK(t.decode(t.encode("want").input_ids, /*skip_special_tokens=*/false) == "[CLS] want [SEP]");
  CHECK(t.convert_tokens_to_ids({"want", "nope"}) == std::vector<int32_t>{t.token_to_id("want"), t.unk_id()});
  CHECK(t.convert_ids_to_tokens({t.cls_id()}) == Strings{"[CLS]"});
  CHECK_THROWS_WITH(t.convert_ids_to_tokens({999}), doctest::Contains("outside the vocabulary"));
}

TEST_CASE("wordpiece: invalid UTF-8 reads as U+FFFD and is dropped, never a crash") {
  auto t = hf_vocab();
  CHECK(t.basic_tokenize("wa\xFFnt") == Strings{"want"});
  CHECK(t.basic_tokenize("\xC3") == Strings{});           // truncated sequence
  CHECK(t.basic_tokenize("\xED\xA0\x80x") == Strings{"x"});  // an encoded surrogate
  CHECK(t.basic_tokenize("\xC0\xAF" "low") == Strings{"low"});  // overlong
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) & 0xff));
  CHECK_NOTHROW(t.encode(junk, 64));
}

TEST_CASE("wordpiece: vocab.txt round trip and its errors name the file and line") {
  TempDir dir;
  auto t = hf_vocab();
  t.save_vocab(dir.file("vocab.txt"));
  auto back = WordPieceTokenizer::from_vocab_file(dir.file("vocab.txt"));
  CHECK(back.vocab() == t.vocab());
  CHECK(back.tokenize("unwanted") == t.tokenize("unwanted"));
  {
    std::ofstream(dir.file("crlf.txt"), std::ios::binary) << "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nwant\r\n";
  }
  CHECK(read_vocab_file(dir.file("crlf.txt")) == Strings{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "want"});
  {
    std::ofstream(dir.file("dup.txt")) << "[PAD]\n[UNK]\nwant\n[CLS]\nwant\n";
  }
  CHECK_THROWS_WITH(read_vocab_file(dir.file("dup.txt")), doctest::Contains("dup.txt:5: token 'want' already on line 3"));
  {
    std::ofstream(dir.file("nounk.txt")) << "[PAD]\n[CLS]\n[SEP]\nwant\n";
  }
  CHECK_THROWS_WITH(WordPieceTokenizer::from_vocab_file(dir.file("nounk.txt")),
                    doctest::Contains("nounk.txt: WordPieceTokenizer: the vocabulary has no '[UNK]'"));
  {
    std::ofstream(dir.file("empty_line.txt")) << "[PAD]\n\n[UNK]\n";
  }
  CHECK_THROWS_WITH(read_vocab_file(dir.file("empty_line.txt")), doctest::Contains("empty_line.txt:2: empty token"));
  {
    std::ofstream(dir.file("bad_utf8.txt")) << "[PAD]\nw\xFF" "nt\n";
  }
  CHECK_THROWS_WITH(read_vocab_file(dir.file("bad_utf8.txt")), doctest::Contains("bad_utf8.txt:2: the token is not valid UTF-8"));
  CHECK_THROWS_WITH(read_vocab_file(dir.file("missing.txt")), doctest::Contains("missing.txt: cannot open"));
}
