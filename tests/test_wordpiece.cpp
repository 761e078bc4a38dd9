// WordPieceTokenizer against hand-worked cases of HF's BertTokenizer rules (many are the cases of
// transformers' tests/models/bert/test_tokenization_bert.py).
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <random>

#include "nn/text/wordpiece.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::read_bytes;
using quench::testing::TempDir;
using quench::testing::write_bytes;

namespace {

using Strings = std::vector<std::string>;
using namespace std::literals;

// HF's test vocab, plus [PAD] and a few more pieces.
Strings small_vocab() {
  return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want", "##want", "##ed", "wa", "un",
          "runn", "##ing", ",", "low", "lowest", "##aff", "##able", "aff", "a", "##a",
          "hello", "world", ".", "!", "?", "'", "s", "it"};
}

WordPieceTokenizer tok(WordPieceOptions o = {}) { return WordPieceTokenizer(small_vocab(), std::move(o)); }

Strings basic(std::string_view text, WordPieceOptions o = {}) { return tok(std::move(o)).basic_tokenize(text); }

WordPieceOptions no_lower(std::optional<bool> strip = std::nullopt) {
  WordPieceOptions o;
  o.do_lower_case = false;
  o.strip_accents = strip;
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("wordpiece: cleaning drops NUL, U+FFFD and control/format chars") {
  CHECK(basic("a\x00" "b\x05" "c\x7f" "d"sv) == Strings{"abcd"});
  CHECK(basic("a\xEF\xBF\xBD" "b") == Strings{"ab"});          // U+FFFD
  CHECK(basic("a\xC2\xAD" "b") == Strings{"ab"});              // U+00AD soft hyphen (Cf)
  CHECK(basic("a\xE2\x80\x8B" "b") == Strings{"ab"});          // U+200B zero width space (Cf)
  CHECK(basic("a\xC2\x85" "b") == Strings{"ab"});              // U+0085 NEL is Cc, not whitespace, for HF
  CHECK(basic("a\xEE\x80\x80" "b") == Strings{"ab"});          // U+E000 private use (Co)
  CHECK(basic("\xC2\xAD") == Strings{});
  // HF's test_clean_text: "\xad" tokenizes to nothing
  CHECK(tok().tokenize("\xC2\xAD").empty());
}

TEST_CASE("wordpiece: whitespace kinds split words") {
  CHECK(basic(" \tHeLLo!how  \n Are yoU?  ") == Strings{"hello", "!", "how", "are", "you", "?"});
  // \t \r \n, U+00A0 and U+3000 (Zs), U+2028 (Zl: Python's split() splits on it)
  CHECK(basic("a\tb\rc\nd\xC2\xA0" "e\xE3\x80\x80" "f\xE2\x80\xA8g\xE2\x80\xA9h") ==
        Strings{"a", "b", "c", "d", "e", "f", "g", "h"});
  CHECK(basic("   \t\n ").empty());
  CHECK(basic("").empty());
}

TEST_CASE("wordpiece: lower-casing and accent stripping") {
  CHECK(basic("H\xC3\xA9llo") == Strings{"hello"});                                   // Héllo
  CHECK(basic(" \tH\xC3\xA4LLo!how  \n Are yoU?  ") == Strings{"hallo", "!", "how", "are", "you", "?"});
  // strip_accents=false keeps them (lower-cased)
  WordPieceOptions keep;
  keep.strip_accents = false;
  CHECK(basic("H\xC3\xA9llo", keep) == Strings{"h\xC3\xA9llo"});
  CHECK(basic(" \tH\xC3\xA4LLo!how  \n Are yoU?  ", keep) == Strings{"h\xC3\xA4llo", "!", "how", "are", "you", "?"});
  // no lower-casing: accents kept unless asked
  CHECK(basic(" \tHeLLo!how  \n Are yoU?  ", no_lower()) == Strings{"HeLLo", "!", "how", "Are", "yoU", "?"});
  CHECK(basic(" \tH\xC3\xA4LLo!how  \n Are yoU?  ", no_lower(true)) ==
        Strings{"HaLLo", "!", "how", "Are", "yoU", "?"});
  // NFC first: e + U+0301 composes to é when nothing strips it
  CHECK(basic("e\xCC\x81", no_lower()) == Strings{"\xC3\xA9"});
  CHECK(basic("E\xCC\x81") == Strings{"e"});
  // Python's "İ".lower() is "i" U+0307
  CHECK(basic("\xC4\xB0", keep) == Strings{"i\xCC\x87"});
  CHECK(basic("\xC4\xB0") == Strings{"i"});
  // Greek and Cyrillic: simple lower-case mapping, sigma never final (HF lowers char by char)
  CHECK(basic("\xCE\xA3\xCE\x91\xCE\xA3") == Strings{"\xCF\x83\xCE\xB1\xCF\x83"});  // ΣΑΣ -> σασ
  CHECK(basic("\xD0\x9F\xD1\x80\xD0\x98\xD0\x92\xD0\x95\xD0\xA2") ==
        Strings{"\xD0\xBF\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82"});  // ПрИВЕТ -> привет
  // accented capitals lose case and accent: ÀÉÎÕÜ -> aeiou
  CHECK(basic("\xC3\x80\xC3\x89\xC3\x8E\xC3\x95\xC3\x9C") == Strings{"aeiou"});
}

TEST_CASE("wordpiece: punctuation splits, ASCII and Unicode") {
  CHECK(basic("a.b,c;d") == Strings{"a", ".", "b", ",", "c", ";", "d"});
  CHECK(basic("$5 `x` ~y^") == Strings{"$", "5", "`", "x", "`", "~", "y", "^"});  // ASCII ranges, not only P*
  CHECK(basic("...") == Strings{".", ".", "."});
  // ¿Qué? « hi » — (Po, Pi, Pf, Pd)
  CHECK(basic("\xC2\xBFQu\xC3\xA9?") == Strings{"\xC2\xBF", "que", "?"});
  CHECK(basic("\xC2\xABhi\xC2\xBB") == Strings{"\xC2\xAB", "hi", "\xC2\xBB"});
  CHECK(basic("a\xE2\x80\x94" "b") == Strings{"a", "\xE2\x80\x94", "b"});
  CHECK(basic("\xE3\x80\x82") == Strings{"\xE3\x80\x82"});  // ideographic full stop
  // symbols that are not P* stay inside words
  CHECK(basic("5\xE2\x82\xAC") == Strings{"5\xE2\x82\xAC"});  // 5€ (Sc)
  CHECK(basic("a+b") == Strings{"a", "+", "b"});           // '+' is ASCII 43
  // NFC makes '<' + U+0338 one symbol (U+226E, Sm); stripping accents takes it apart again
  CHECK(basic("a<\xCC\xB8" "b", no_lower()) == Strings{"a\xE2\x89\xAE" "b"});
  CHECK(basic("a<\xCC\xB8" "b") == Strings{"a", "<", "b"});
}

TEST_CASE("wordpiece: CJK ideographs are split one by one") {
  CHECK(basic("ah\xE5\x8D\x9A\xE6\x8E\xA8zz") == Strings{"ah", "\xE5\x8D\x9A", "\xE6\x8E\xA8", "zz"});  // ah博推zz
  CHECK(basic("\xF0\xA0\x80\x80x") == Strings{"\xF0\xA0\x80\x80", "x"});  // U+20000
  // compatibility ideograph U+F900 is split, and NFC maps it to U+8C48
  CHECK(basic("a\xEF\xA4\x80" "b") == Strings{"a", "\xE8\xB1\x88", "b"});
  // Hangul and kana are not in HF's ranges. Stripping accents leaves Hangul syllables as NFD jamo
  // (U+110B U+1161 U+11AB ...), as HF's uncased BERT does.
  WordPieceOptions keep;
  keep.strip_accents = false;
  CHECK(basic("\xEC\x95\x88\xEB\x85\x95", keep) == Strings{"\xEC\x95\x88\xEB\x85\x95"});  // 안녕
  CHECK(basic("\xEC\x95\x88\xEB\x85\x95") ==
        Strings{"\xE1\x84\x8B\xE1\x85\xA1\xE1\x86\xAB\xE1\x84\x82\xE1\x85\xA7\xE1\x86\xBC"});
  CHECK(basic("\xE3\x81\x93\xE3\x82\x93") == Strings{"\xE3\x81\x93\xE3\x82\x93"});
  WordPieceOptions off;
  off.tokenize_chinese_chars = false;
  CHECK(basic("ah\xE5\x8D\x9A\xE6\x8E\xA8zz", off) == Strings{"ah\xE5\x8D\x9A\xE6\x8E\xA8zz"});
}

TEST_CASE("wordpiece: special tokens are kept whole, even inside words") {
  CHECK(basic(" \tHeLLo!how  \n Are yoU? [UNK]", no_lower()) ==
        Strings{"HeLLo", "!", "how", "Are", "yoU", "?", "[UNK]"});
  CHECK(basic("hello[SEP]world [CLS][MASK]") == Strings{"hello", "[SEP]", "world", "[CLS]", "[MASK]"});
  CHECK(basic("[sep]") == Strings{"[", "sep", "]"});  // case-sensitive
  const WordPieceTokenizer t = tok();
  CHECK(t.tokenize("[CLS] hello [SEP]") == Strings{"[CLS]", "hello", "[SEP]"});
  CHECK(t.tokenize_to_ids("[PAD][MASK]") == std::vector<int32_t>{t.pad_id(), t.mask_id()});
  // the trainer's view: special tokens are plain text
  Strings plain;
  t.for_each_basic_word("a[SEP]b", false, [&](std::string_view w) { plain.emplace_back(w); });
  CHECK(plain == Strings{"a", "[", "sep", "]", "b"});
  WordPieceOptions extra;
  extra.never_split = {"<ent>"};
  CHECK(basic("x<ent>y", extra) == Strings{"x", "<ent>", "y"});
  CHECK(tok(extra).tokenize("<ent>") == Strings{"<ent>"});
  CHECK(tok(extra).tokenize_to_ids("<ent>") == std::vector<int32_t>{1});  // not in the vocab: [UNK]'s id
}

TEST_CASE("wordpiece: greedy longest match first") {
  const WordPieceTokenizer t = tok();
  CHECK(t.tokenize("unaffable") == Strings{"un", "##aff", "##able"});
  CHECK(t.tokenize("unwanted running") == Strings{"un", "##want", "##ed", "runn", "##ing"});
  CHECK(t.tokenize("UNwant\xC3\xA9" "d,running") == Strings{"un", "##want", "##ed", ",", "runn", "##ing"});
  CHECK(t.convert_tokens_to_ids(t.tokenize("UNwant\xC3\xA9" "d,running")) ==
        std::vector<int32_t>{9, 6, 7, 12, 10, 11});
  CHECK(t.tokenize("lowest") == Strings{"lowest"});  // the longer whole word wins over low + ...
  CHECK(t.tokenize("").empty());
}

TEST_CASE("wordpiece: [UNK] for an unmatched word and for a 101-char word") {
  const WordPieceTokenizer t = tok();
  CHECK(t.tokenize("unwantedX running") == Strings{"[UNK]", "runn", "##ing"});  // one [UNK] per word
  CHECK(t.tokenize("zzz hello") == Strings{"[UNK]", "hello"});
  CHECK(t.tokenize_to_ids("zzz") == std::vector<int32_t>{t.unk_id()});
  const Strings hundred = t.tokenize(std::string(100, 'a'));
  REQUIRE(hundred.size() == 100);
  CHECK(hundred[0] == "a");
  CHECK(hundred[99] == "##a");
  CHECK(t.tokenize(std::string(101, 'a')) == Strings{"[UNK]"});
  // the limit counts code points, not bytes: 60 x "é" (120 bytes) is within it
  WordPieceOptions keep;
  keep.strip_accents = false;
  WordPieceTokenizer accents({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xC3\xA9", "##\xC3\xA9"}, keep);
  std::string e60;
  for (int i = 0; i < 60; ++i) e60 += "\xC3\xA9";
  CHECK(accents.tokenize(e60).size() == 60);
  WordPieceOptions short_words;
  short_words.max_input_chars_per_word = 3;
  CHECK(tok(short_words).tokenize("want wa") == Strings{"[UNK]", "wa"});
}

TEST_CASE("wordpiece: encode single and pair with token type ids") {
  const WordPieceTokenizer t = tok();
  const Encoding e = t.encode("unwanted running");
  CHECK(e.input_ids == std::vector<int32_t>{2, 9, 6, 7, 10, 11, 3});
  CHECK(e.token_type_ids == std::vector<int32_t>(7, 0));
  CHECK(e.attention_mask == std::vector<int32_t>(7, 1));
  const Encoding p = t.encode("unwanted running", "want");
  CHECK(p.input_ids == std::vector<int32_t>{2, 9, 6, 7, 10, 11, 3, 5, 3});
  CHECK(p.token_type_ids == std::vector<int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1});
  CHECK(p.attention_mask == std::vector<int32_t>(9, 1));
  const Encoding empty = t.encode("");
  CHECK(empty.input_ids == std::vector<int32_t>{2, 3});
}

TEST_CASE("wordpiece: longest_first truncation") {
  const WordPieceTokenizer t = tok();
  // a = un ##want ##ed runn ##ing (5), b = want wa (2); 10 tokens into 8: both from a
  Encoding e = t.encode("unwanted running", "want wa", 8);
  CHECK(e.input_ids == std::vector<int32_t>{2, 9, 6, 7, 3, 5, 8, 3});
  CHECK(e.token_type_ids == std::vector<int32_t>{0, 0, 0, 0, 0, 1, 1, 1});
  // a = 3, b = 3 into 7: equal lengths take from b first, then a is longer
  e = t.encode("want wa low", "hello world it", 7);
  CHECK(e.input_ids == std::vector<int32_t>{2, 5, 8, 3, 20, 21, 3});
  // 3 + 3 into 6 -> 2 + 1 (b, a, then b again as they are equal)
  e = t.encode("want wa low", "hello world it", 6);
  CHECK(e.input_ids == std::vector<int32_t>{2, 5, 8, 3, 20, 3});
  // a single sequence loses its tail
  e = t.encode("unwanted running", 4);
  CHECK(e.input_ids == std::vector<int32_t>{2, 9, 6, 3});
  // room for only the specials
  e = t.encode("unwanted", "running", 3);
  CHECK(e.input_ids == std::vector<int32_t>{2, 3, 3});
  CHECK(e.token_type_ids == std::vector<int32_t>{0, 0, 1});
  CHECK(error_of([&] { t.encode("a", "b", 2); }).find("max_length 2") != std::string::npos);
  CHECK(error_of([&] { t.encode("a", 1); }).find("max_length 1") != std::string::npos);
}

TEST_CASE("wordpiece: padding and attention mask") {
  const WordPieceTokenizer t = tok();
  const Encoding e = t.encode("want", 6);
  CHECK(e.input_ids == std::vector<int32_t>{2, 5, 3, 0, 0, 0});
  CHECK(e.attention_mask == std::vector<int32_t>{1, 1, 1, 0, 0, 0});
  CHECK(e.token_type_ids == std::vector<int32_t>{0, 0, 0, 0, 0, 0});
  const Encoding p = t.encode("want", "wa", 7);
  CHECK(p.input_ids == std::vector<int32_t>{2, 5, 3, 8, 3, 0, 0});
  CHECK(p.attention_mask == std::vector<int32_t>{1, 1, 1, 1, 1, 0, 0});
  CHECK(p.token_type_ids == std::vector<int32_t>{0, 0, 0, 1, 1, 0, 0});

  const BatchEncoding b = t.encode_batch({"want", "unwanted running", ""});
  REQUIRE(b.input_ids.sizes() == Shape{3, 7});
  CHECK(b.input_ids.dtype() == DType::i32);
  CHECK(b.attention_mask.dtype() == DType::i32);
  CHECK(b.token_type_ids.dtype() == DType::i32);
  CHECK(b.input_ids.to_vector<int32_t>() == std::vector<int32_t>{2, 5, 3, 0, 0, 0, 0,  //
                                                                 2, 9, 6, 7, 10, 11, 3,  //
                                                                 2, 3, 0, 0, 0, 0, 0});
  CHECK(b.attention_mask.to_vector<int32_t>() == std::vector<int32_t>{1, 1, 1, 0, 0, 0, 0,  //
                                                                      1, 1, 1, 1, 1, 1, 1,  //
                                                                      1, 1, 0, 0, 0, 0, 0});
  const BatchEncoding fixed = t.encode_batch({"want", "unwanted running"}, 5);
  CHECK(fixed.input_ids.sizes() == Shape{2, 5});
  CHECK(fixed.input_ids.to_vector<int32_t>() == std::vector<int32_t>{2, 5, 3, 0, 0, 2, 9, 6, 7, 3});
  const BatchEncoding pairs = t.encode_batch({"want", "wa"}, {"wa", "unwanted"}, 6);
  CHECK(pairs.token_type_ids.to_vector<int32_t>() == std::vector<int32_t>{0, 0, 0, 1, 1, 0,  //
                                                                          0, 0, 0, 1, 1, 1});
  CHECK(pairs.input_ids.to_vector<int32_t>() == std::vector<int32_t>{2, 5, 3, 8, 3, 0,  //
                                                                     2, 8, 3, 9, 6, 3});
  CHECK(error_of([&] { t.encode_batch({"a"}, {"b", "c"}); }).find("second text") != std::string::npos);
}

TEST_CASE("wordpiece: decode round trip and ids <-> tokens") {
  const WordPieceTokenizer t = tok();
  const Encoding e = t.encode("Unwanted running");
  CHECK(t.decode(e.input_ids) == "[CLS] unwanted running [SEP]");
  CHECK(t.decode(e.input_ids, true) == "unwanted running");
  CHECK(t.decode(t.encode("hello, world . it's !", 12).input_ids, true) == "hello, world. it's!");
  CHECK(t.convert_ids_to_tokens({9, 6, 7}) == Strings{"un", "##want", "##ed"});
  CHECK(t.convert_tokens_to_ids({"un", "nope", "[SEP]"}) == std::vector<int32_t>{9, 1, 3});
  CHECK(t.token_to_id("##ing") == 11);
  CHECK(t.contains("##ing"));
  CHECK_FALSE(t.contains("ing"));
  WordPieceOptions raw;
  raw.clean_up_tokenization_spaces = false;
  CHECK(tok(raw).decode(t.tokenize_to_ids("hello, world.")) == "hello , world .");
  CHECK(error_of([&] { t.decode({999}); }).find("id 999") != std::string::npos);
  CHECK(error_of([&] { t.convert_ids_to_tokens({-1}); }).find("id -1") != std::string::npos);
}

TEST_CASE("wordpiece: invalid UTF-8 input does not crash; bad bytes are dropped") {
  const WordPieceTokenizer t = tok();
  CHECK(t.basic_tokenize("ab\xFF" "cd") == Strings{"abcd"});
  CHECK(t.basic_tokenize("hello \xC3") == Strings{"hello"});           // truncated sequence at the end
  CHECK(t.basic_tokenize("x\xE2\x82y") == Strings{"xy"});              // truncated, then ASCII
  CHECK(t.basic_tokenize("\xED\xA0\x80") == Strings{});                // an encoded surrogate
  CHECK(t.basic_tokenize("\xC0\xAF") == Strings{});                    // overlong '/'
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string junk(static_cast<size_t>(rng() % 64), '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    const Encoding e = t.encode(junk, "[SEP]" + junk, 32);
    CHECK(e.input_ids.size() == 32);
  }
}

TEST_CASE("wordpiece: vocab file read, save round trip and errors") {
  TempDir dir;
  const std::string path = dir.file("vocab.txt");
  std::string text;
  for (const std::string& s : small_vocab()) text += s + "\r\n";  // CRLF lines
  write_bytes(path, "\xEF\xBB\xBF" + text);
  const WordPieceTokenizer t = WordPieceTokenizer::from_vocab_file(path);
  CHECK(t.vocab() == small_vocab());
  CHECK(t.pad_id() == 0);
  CHECK(t.unk_id() == 1);
  CHECK(t.cls_id() == 2);
  CHECK(t.sep_id() == 3);
  CHECK(t.mask_id() == 4);
  CHECK(t.tokenize("unaffable") == Strings{"un", "##aff", "##able"});

  const std::string saved = dir.file("saved/vocab.txt");
  std::filesystem::create_directories(dir.file("saved"));
  t.save_vocab(saved);
  std::string expected;
  for (const std::string& s : small_vocab()) expected += s + "\n";
  CHECK(read_bytes(saved) == expected);
  CHECK(WordPieceTokenizer::from_vocab_file(saved).vocab() == small_vocab());
  for (const auto& entry : std::filesystem::directory_iterator(dir.file("saved")))
    CHECK(entry.path().filename() == "vocab.txt");  // no temp file left behind
  // no final newline is fine; a missing mask token is fine
  write_bytes(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]");
  CHECK(WordPieceTokenizer::from_vocab_file(path).vocab_size() == 4);
  CHECK(WordPieceTokenizer::from_vocab_file(path).mask_id() == -1);

  auto err = [](const std::string& p) { return error_of([&] { WordPieceTokenizer::from_vocab_file(p); }); };
  const std::string missing = dir.file("nope.txt");
  std::string msg = err(missing);
  CAPTURE(msg);
  CHECK(msg.find(missing) != std::string::npos);
  CHECK(msg.find("cannot open") != std::string::npos);
  CHECK(msg.find("fix:") != std::string::npos);

  write_bytes(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nworld\nhello\n");
  msg = err(path);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("line 7") != std::string::npos);
  CHECK(msg.find("duplicate token \"hello\"") != std::string::npos);
  CHECK(msg.find("line 5") != std::string::npos);
  CHECK(msg.find("fix:") != std::string::npos);

  write_bytes(path, "[PAD]\n[UNK]\n[CLS]\nhello\n");
  msg = err(path);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("\"[SEP]\"") != std::string::npos);
  CHECK(msg.find("no line") != std::string::npos);
  CHECK(msg.find("fix:") != std::string::npos);

  write_bytes(path, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nab\xFF" "c\n");
  msg = err(path);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("line 5") != std::string::npos);
  CHECK(msg.find("invalid UTF-8") != std::string::npos);

  // custom special token names
  write_bytes(path, "<pad>\n<unk>\n<cls>\n<sep>\nhi\n");
  WordPieceOptions o;
  o.pad_token = "<pad>";
  o.unk_token = "<unk>";
  o.cls_token = "<cls>";
  o.sep_token = "<sep>";
  const WordPieceTokenizer c = WordPieceTokenizer::from_vocab_file(path, o);
  CHECK(c.encode("hi there").input_ids == std::vector<int32_t>{2, 4, 1, 3});

  // the in-memory constructor checks the same things
  CHECK(error_of([] { WordPieceTokenizer({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[SEP]"}); })
            .find("entry 4: duplicate") != std::string::npos);
}
