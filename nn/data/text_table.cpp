#include "nn/data/text_table.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/error.hpp"

namespace quench::nn {

namespace {

constexpr size_t kMaxColumns = size_t{1} << 16;  // a header wider than this is not a text table

[[noreturn]] void fail(const std::string& path, size_t line, const std::string& reason) {
  throw Error("read_text_table: " + path + ":" + std::to_string(line) + ": " + reason);
}

[[noreturn]] void fail_file(const std::string& path, const std::string& reason) {
  throw Error("read_text_table: " + path + ": " + reason);
}

std::string squote(const std::string& s) {
  constexpr size_t kShown = 60;  // keep messages readable when a "label" is really a whole text
  std::string out = "'";
  out += s.size() > kShown ? s.substr(0, kShown) + "..." : s;
  return out + "'";
}

std::string list_names(const std::vector<std::string>& names) {
  constexpr size_t kShown = 20;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", " : "") + squote(names[i]);
  if (names.size() > kShown) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) fail_file(path, "cannot open: no such file");
  if (std::filesystem::is_directory(status)) fail_file(path, "cannot open: is a directory, expected a file");
  const uint64_t size = std::filesystem::is_regular_file(status) ? std::filesystem::file_size(path, ec) : 0;
  if (!ec && size > max_bytes) {
    fail_file(path, "file is " + std::to_string(size) + " bytes, over the limit of " + std::to_string(max_bytes) +
                        " (raise TextTableOptions::max_bytes to read it)");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, std::string("cannot open: ") + (errno ? std::strerror(errno) : "unknown error"));
  std::string bytes;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.append(buf, static_cast<size_t>(in.gcount()));
    if (bytes.size() > max_bytes) {  // a pipe or a file that grew while we read it
      fail_file(path, "file is over the limit of " + std::to_string(max_bytes) +
                          " bytes (raise TextTableOptions::max_bytes to read it)");
    }
  }
  if (in.bad()) fail_file(path, "read error");
  if (bytes.rfind("\xEF\xBB\xBF", 0) == 0) bytes.erase(0, 3);  // UTF-8 byte order mark (Excel writes one)
  return bytes;
}

// One record of a delimited file: the line it starts on, its fields (at most `max_fields` stored) and
// how many fields it really had.
struct Record {
  size_t line = 0;
  std::vector<std::string> fields;
  size_t n_fields = 0;
};
using RecordSink = std::function<void(Record&)>;

void add_field(Record& r, std::string& field, size_t max_fields) {
  if (r.n_fields++ < max_fields) r.fields.push_back(std::move(field));
  field.clear();
}

// RFC 4180 CSV. `max_fields` is a function of how many records came before (the header may be wide).
void parse_csv(const std::string& path, const std::string& s, const std::function<size_t()>& max_fields,
               const RecordSink& sink) {
  const size_t n = s.size();
  size_t i = 0, line = 1;
  std::string field;
  while (i < n) {
    if (s[i] == '\n') { ++i, ++line; continue; }  // empty line
    if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') { i += 2, ++line; continue; }
    Record rec;
    rec.line = line;
    const size_t cap = max_fields();
    bool end_of_record = false;
    while (!end_of_record) {
      field.clear();
      if (i < n && s[i] == '"') {
        const size_t open_line = line;
        ++i;
        for (;;) {
          if (i >= n) {
            fail(path, open_line, "unterminated quoted field " + std::to_string(rec.n_fields + 1) +
                                      " (the quote opened here is never closed); close it with '\"' and write "
                                      "each quote inside it as \"\"");
          }
          const char c = s[i];
          if (c == '"') {
            if (i + 1 < n && s[i + 1] == '"') { field += '"'; i += 2; continue; }
            ++i;
            break;
          }
          if (c == '\n') ++line;
          field += c;
          ++i;
        }
        if (i >= n) {
          end_of_record = true;
        } else if (s[i] == ',') {
          ++i;
        } else if (s[i] == '\n') {
          ++i, ++line, end_of_record = true;
        } else if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
          i += 2, ++line, end_of_record = true;
        } else if (s[i] == '\r' && i + 1 == n) {  // a CR ending the file
          i += 1, end_of_record = true;
        } else {
          fail(path, line, "unexpected character after the closing quote of field " +
                               std::to_string(rec.n_fields + 1) +
                               "; a quote inside a quoted field must be doubled (\"\")");
        }
      } else {
        size_t j = i;
        while (j < n && s[j] != ',' && s[j] != '\n' && s[j] != '"') ++j;
        if (j < n && s[j] == '"') {
          fail(path, line, "quote inside unquoted field " + std::to_string(rec.n_fields + 1) +
                               "; quote the whole field and double the quotes inside it (\"say \"\"hi\"\"\")");
        }
        size_t end = j;
        if ((j >= n || s[j] == '\n') && end > i && s[end - 1] == '\r') --end;  // CRLF, or a CR ending the file
        field.assign(s, i, end - i);
        if (j >= n) {
          i = j, end_of_record = true;
        } else if (s[j] == ',') {
          i = j + 1;
        } else {
          i = j + 1, ++line, end_of_record = true;
        }
      }
      add_field(rec, field, cap);
      // a record ending in ',' at the very end of the file still has its last, empty field
      if (!end_of_record && i >= n) { add_field(rec, field, cap); end_of_record = true; }
    }
    sink(rec);
  }
}

// TSV: tab separated, no quoting, LF or CRLF.
void parse_tsv(const std::string& s, const std::function<size_t()>& max_fields, const RecordSink& sink) {
  const size_t n = s.size();
  size_t i = 0, line = 0;
  while (i < n) {
    ++line;
    size_t eol = s.find('\n', i);
    if (eol == std::string::npos) eol = n;
    size_t end = eol;
    if (end > i && s[end - 1] == '\r') --end;
    if (end > i) {
      Record rec;
      rec.line = line;
      const size_t cap = max_fields();
      std::string field;
      size_t a = i;
      for (;;) {
        size_t b = s.find('\t', a);
        if (b == std::string::npos || b > end) b = end;
        field.assign(s, a, b - a);
        add_field(rec, field, cap);
        if (b >= end) break;
        a = b + 1;
      }
      sink(rec);
    }
    i = eol + 1;
  }
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One labelled row before the labels become indices.
struct RawRows {
  std::vector<std::string> texts, texts_b, labels;
  std::vector<size_t> lines;
};

void check_utf8(const std::string& path, size_t line, const std::string& what, const std::string& s) {
  size_t bad = 0;
  if (!is_valid_utf8(s, &bad)) {
    fail(path, line, "invalid UTF-8 in " + what + " at byte " + std::to_string(bad) +
                         " of the field; save the file as UTF-8");
  }
}

RawRows read_delimited(const std::string& path, const std::string& bytes, bool tsv, const TextTableOptions& opt) {
  RawRows rows;
  std::vector<std::string> header;
  size_t header_line = 0;
  int64_t text_col = -1, text_b_col = -1, label_col = -1;

  auto find_column = [&](const std::string& name, const std::string& option, bool required) -> int64_t {
    int64_t found = -1;
    for (size_t c = 0; c < header.size(); ++c) {
      if (header[c] != name) continue;
      if (found >= 0) {
        fail(path, header_line, "column " + squote(name) + " appears twice in the header (fields " +
                                    std::to_string(found + 1) + " and " + std::to_string(c + 1) + ")");
      }
      found = static_cast<int64_t>(c);
    }
    if (found < 0 && required) {
      fail(path, header_line, "no column " + squote(name) + " in the header (columns: " + list_names(header) +
                                  "); name it there or set TextTableOptions::" + option);
    }
    return found;
  };

  const std::function<size_t()> max_fields = [&]() { return header_line == 0 ? kMaxColumns + 1 : header.size() + 1; };
  const std::string kind = tsv ? "TSV" : "CSV";
  RecordSink sink = [&](Record& rec) {
    if (header_line == 0) {
      if (rec.n_fields > kMaxColumns) {
        fail(path, rec.line, "the header has over " + std::to_string(kMaxColumns) + " columns");
      }
      header = std::move(rec.fields);
      header_line = rec.line;
      for (size_t c = 0; c < header.size(); ++c) check_utf8(path, rec.line, "header field " + std::to_string(c + 1), header[c]);
      text_col = find_column(opt.text_column, "text_column", true);
      label_col = find_column(opt.label_column, "label_column", true);
      if (!opt.text_b_column) {
        text_b_col = find_column("text_b", "text_b_column", false);
      } else if (!opt.text_b_column->empty()) {
        text_b_col = find_column(*opt.text_b_column, "text_b_column", true);
      }
      return;
    }
    if (rec.n_fields != header.size()) {
      fail(path, rec.line, "expected " + std::to_string(header.size()) + " fields as in the header, got " +
                               std::to_string(rec.n_fields) +
                               (tsv ? "; a TSV field cannot contain a tab (use CSV with quoting for such texts)"
                                    : "; quote fields that contain commas (\"a, b\")"));
    }
    auto take = [&](int64_t col, const std::string& what) {
      std::string& f = rec.fields[static_cast<size_t>(col)];
      check_utf8(path, rec.line, what, f);
      return std::move(f);
    };
    rows.texts.push_back(take(text_col, "column " + squote(header[text_col])));
    if (text_b_col >= 0) rows.texts_b.push_back(take(text_b_col, "column " + squote(header[text_b_col])));
    rows.labels.push_back(take(label_col, "column " + squote(header[label_col])));
    if (rows.labels.back().empty()) {
      fail(path, rec.line, "empty label in column " + squote(header[label_col]) + "; every row needs a class");
    }
    rows.lines.push_back(rec.line);
  };
  if (tsv) {
    parse_tsv(bytes, max_fields, sink);
  } else {
    parse_csv(path, bytes, max_fields, sink);
  }
  if (header_line == 0) {
    fail(path, 1, "empty file: expected a " + kind + " header row naming the columns, e.g. " +
                      (tsv ? "text<TAB>label" : "text,label"));
  }
  if (rows.texts.empty()) fail(path, header_line, "no data rows after the header");
  return rows;
}

std::string json_type(const nlohmann::json& j) { return j.type_name(); }

RawRows read_json_lines(const std::string& path, const std::string& bytes, const TextTableOptions& opt) {
  RawRows rows;
  const size_t n = bytes.size();
  size_t i = 0, line = 0;
  bool pairs_decided = false, pairs = false;
  std::string text_b_key = opt.text_b_column ? *opt.text_b_column : "text_b";
  if (opt.text_b_column) pairs_decided = true, pairs = !text_b_key.empty();
  while (i < n) {
    ++line;
    size_t eol = bytes.find('\n', i);
    if (eol == std::string::npos) eol = n;
    const std::string s = bytes.substr(i, eol - i);
    i = eol + 1;
    if (s.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    size_t bad = 0;
    if (!is_valid_utf8(s, &bad)) {
      fail(path, line, "invalid UTF-8 at byte " + std::to_string(bad) + " of the line; save the file as UTF-8");
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(s);
    } catch (const nlohmann::json::exception& e) {
      std::string m = e.what();
      if (size_t p = m.find("] "); p != std::string::npos) m = m.substr(p + 2);  // drop "[json.exception...]"
      // nlohmann counts lines within the one line it was given: keep only the column
      if (size_t p = m.find(" at line 1, column "); p != std::string::npos) m.replace(p, 19, " at column ");
      fail(path, line, "invalid JSON: " + m);
    }
    if (!j.is_object()) fail(path, line, "expected a JSON object such as {\"text\": \"...\", \"label\": \"...\"}, got " + json_type(j));
    auto get_text = [&](const std::string& key, const std::string& option) -> std::string {
      auto it = j.find(key);
      if (it == j.end()) {
        fail(path, line, "no " + squote(key) + " key; add it or set TextTableOptions::" + option);
      }
      if (!it->is_string()) fail(path, line, squote(key) + " must be a string, got " + json_type(*it));
      return it->get<std::string>();
    };
    rows.texts.push_back(get_text(opt.text_column, "text_column"));
    if (!pairs_decided) pairs_decided = true, pairs = j.contains(text_b_key);
    if (pairs) {
      if (!j.contains(text_b_key) && !opt.text_b_column) {
        fail(path, line, "no " + squote(text_b_key) + " key, which earlier records have; give every record "
                         "its second text or none");
      }
      rows.texts_b.push_back(get_text(text_b_key, "text_b_column"));
    } else if (!opt.text_b_column && j.contains(text_b_key)) {
      fail(path, line, squote(text_b_key) + " key, which the first record lacks; give every record its second "
                       "text or none");
    }
    auto it = j.find(opt.label_column);
    if (it == j.end()) fail(path, line, "no " + squote(opt.label_column) + " key; add it or set TextTableOptions::label_column");
    std::string label;
    if (it->is_string()) {
      label = it->get<std::string>();
    } else if (it->is_number_unsigned()) {
      label = std::to_string(it->get<uint64_t>());
    } else if (it->is_number_integer()) {
      label = std::to_string(it->get<int64_t>());
    } else {
      fail(path, line, squote(opt.label_column) + " must be a string or an integer, got " + it->dump());
    }
    if (label.empty()) fail(path, line, "empty label; every record needs a class");
    rows.labels.push_back(std::move(label));
    rows.lines.push_back(line);
  }
  if (rows.texts.empty()) fail(path, 1, "empty file: expected one JSON object per line, e.g. {\"text\": \"...\", \"label\": \"...\"}");
  return rows;
}

// The integer a label spells ("-3", "42"), if it spells one exactly.
std::optional<int64_t> integer_label(const std::string& s) {
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, v);
  if (r.ec != std::errc() || r.ptr != end) return std::nullopt;
  return v;
}

}  // namespace

bool is_valid_utf8(const std::string& s, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else len = 0, cp = 0;  // continuation byte, overlong lead 0xC0/0xC1, or 0xF5..0xFF
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (p[i + k] & 0xC0) == 0x80;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (ok) {
      if (len == 3) ok = cp >= 0x800 && !(cp >= 0xD800 && cp <= 0xDFFF);
      if (len == 4) ok = cp >= 0x10000 && cp <= 0x10FFFF;
    }
    if (!ok) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

TextFormat text_format_from_extension(const std::string& path) {
  const std::string ext = lower(std::filesystem::path(path).extension().string());
  if (ext == ".csv") return TextFormat::Csv;
  if (ext == ".tsv" || ext == ".tab") return TextFormat::Tsv;
  if (ext == ".jsonl" || ext == ".ndjson") return TextFormat::JsonLines;
  return TextFormat::Auto;
}

LabeledTexts read_text_table(const std::string& path, const TextTableOptions& options) {
  TextFormat format = options.format;
  if (format == TextFormat::Auto) {
    format = text_format_from_extension(path);
    if (format == TextFormat::Auto) {
      fail_file(path, "cannot tell the format from the extension " +
                          squote(std::filesystem::path(path).extension().string()) +
                          " (expected .csv, .tsv, .tab, .jsonl or .ndjson); set TextTableOptions::format");
    }
  }
  {  // a fixed class list must name each class once
    std::set<std::string> seen;
    for (const auto& c : options.classes) {
      if (!seen.insert(c).second) fail_file(path, "TextTableOptions::classes lists " + squote(c) + " twice");
    }
  }
  const std::string bytes = read_file(path, options.max_bytes);
  RawRows raw = format == TextFormat::JsonLines ? read_json_lines(path, bytes, options)
                                                : read_delimited(path, bytes, format == TextFormat::Tsv, options);

  LabeledTexts out;
  if (!options.classes.empty()) {
    out.classes = options.classes;
  } else {
    std::set<std::string> distinct(raw.labels.begin(), raw.labels.end());
    out.classes.assign(distinct.begin(), distinct.end());  // byte-wise lexicographic
    std::vector<std::pair<int64_t, std::string>> numeric;
    for (const auto& c : out.classes) {
      auto v = integer_label(c);
      if (!v) break;
      numeric.emplace_back(*v, c);
    }
    if (numeric.size() == out.classes.size()) {
      std::sort(numeric.begin(), numeric.end());
      for (size_t k = 0; k < numeric.size(); ++k) out.classes[k] = numeric[k].second;
    }
  }
  std::map<std::string, int32_t> index;
  for (size_t k = 0; k < out.classes.size(); ++k) index.emplace(out.classes[k], static_cast<int32_t>(k));
  out.labels.reserve(raw.labels.size());
  for (size_t r = 0; r < raw.labels.size(); ++r) {
    auto it = index.find(raw.labels[r]);
    if (it == index.end()) {
      fail(path, raw.lines[r], "label " + squote(raw.labels[r]) + " is not one of TextTableOptions::classes (" +
                                   list_names(out.classes) + ")");
    }
    out.labels.push_back(it->second);
  }
  out.texts = std::move(raw.texts);
  out.texts_b = std::move(raw.texts_b);
  return out;
}

}  // namespace quench::nn
