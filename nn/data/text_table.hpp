// A user's own labelled texts from a table file: CSV, TSV or JSON lines.
//
//   CSV   (.csv)            RFC 4180: comma separated; a field may be quoted with '"', a quote inside
//                           a quoted field is written "", and a quoted field may hold commas and line
//                           breaks. Lines end in LF or CRLF. The first row names the columns.
//   TSV   (.tsv, .tab)      tab separated, no quoting (a '"' is an ordinary character, a field cannot
//                           hold a tab or a line break). LF or CRLF. The first row names the columns.
//   JSONL (.jsonl, .ndjson) one JSON object per line, e.g. {"text": "...", "label": "spam"}; the label
//                           may be a string or an integer. Blank lines are skipped.
//
// Completely empty lines are skipped in all three formats; a UTF-8 byte order mark at the start is
// dropped. Texts and labels must be valid UTF-8. Every problem (wrong field count, unterminated quote,
// missing column or key, invalid JSON, invalid UTF-8, unknown label, empty file) throws quench::Error
// (a std::runtime_error) as "read_text_table: <file>:<line>: <reason>", with the fix where there is one.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nn/data/text_dataset.hpp"

namespace quench::nn {

enum class TextFormat { Auto, Csv, Tsv, JsonLines };

struct TextTableOptions {
  TextFormat format = TextFormat::Auto;  // Auto: from the file extension (case-insensitive), see above
  std::string text_column = "text";      // column (CSV/TSV) or key (JSONL) of the text
  // Second segment of a pair. Unset: "text_b" when the header has it (JSONL: when the first record
  // has it; then every record must). A name: that column is required. "": never read a second text.
  std::optional<std::string> text_b_column;
  std::string label_column = "label";
  // Class names in index order. Empty: the distinct labels, sorted lexicographically (byte order), or
  // numerically when every label is an integer ("2" before "10"). Given: each label must be one of
  // them, and classes absent from the file keep their index.
  std::vector<std::string> classes;
  uint64_t max_bytes = uint64_t{2} << 30;  // larger files are refused before reading (2 GiB)
};

LabeledTexts read_text_table(const std::string& path, const TextTableOptions& options = {});

// The format `path`'s extension implies, or TextFormat::Auto when it implies none.
TextFormat text_format_from_extension(const std::string& path);

// Whether `s` is valid UTF-8 (no overlong forms, surrogates or code points above U+10FFFF). When it is
// not and `bad_offset` is given, it receives the offset of the first byte of the offending sequence.
bool is_valid_utf8(const std::string& s, size_t* bad_offset = nullptr);

}  // namespace quench::nn
