#include "nn/text/wordpiece.hpp"

#include <unistd.h>
#include <utf8proc.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include "nn/io/atomic_file.hpp"

namespace quench::nn {

bool is_cjk_ideograph(int32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

namespace {

constexpr bool ascii_punct(uint32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

struct AsciiPunctTable {
  bool v[256] = {};
  constexpr AsciiPunctTable() {
    for (uint32_t c = 0; c < 128; ++c) v[c] = ascii_punct(c);
  }
};
constexpr AsciiPunctTable kAsciiPunct;

// Python's unicodedata.category(c).startswith("C"): Cc, Cf, Cs, Co and unassigned Cn.
bool is_other_category(utf8proc_category_t cat) {
  return cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
         cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO;
}

uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ULL * (n + 1);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = mix64(h ^ v);
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  return mix64(h ^ v ^ (uint64_t{n} << 59));
}

int64_t count_code_points(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

void append_utf8(std::string& out, int32_t cp) {
  utf8proc_uint8_t buf[4];
  const auto n = utf8proc_encode_char(cp, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// utf8proc_decompose of valid UTF-8 into `buf` (grown as needed); returns the code point count.
size_t decompose_into(std::string_view u8, utf8proc_option_t options, std::vector<int32_t>& buf) {
  if (buf.size() < u8.size() + 16) buf.resize(u8.size() * 2 + 16);
  auto run = [&] {
    return utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(u8.data()),
                              static_cast<utf8proc_ssize_t>(u8.size()), buf.data(),
                              static_cast<utf8proc_ssize_t>(buf.size()), options);
  };
  utf8proc_ssize_t r = run();
  if (r > static_cast<utf8proc_ssize_t>(buf.size())) {
    buf.resize(static_cast<size_t>(r));
    r = run();
  }
  if (r < 0) throw Error(std::string("WordPieceTokenizer: utf8proc: ") + utf8proc_errmsg(r));
  return static_cast<size_t>(r);
}

// Checks a vocab: unique tokens, the required special tokens present. `where` names the source for
// errors; `file` says whether ids are lines of a file (line = id + 1).
void check_vocab(const std::vector<std::string>& vocab, const WordPieceOptions& opt, const std::string& where,
                 bool file) {
  auto place = [&](size_t id) {
    return file ? "line " + std::to_string(id + 1) : "entry " + std::to_string(id);
  };
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(vocab.size());
  for (size_t i = 0; i < vocab.size(); ++i) {
    auto [it, fresh] = seen.emplace(vocab[i], i);
    if (!fresh)
      throw Error(where + ": " + place(i) + ": duplicate token \"" + vocab[i] + "\" (also " +
                  place(it->second) + "); fix: remove one of them (a token's id is its " +
                  (file ? "line number" : "index") + ", so each token must appear once)");
  }
  const std::pair<const char*, const std::string*> required[] = {
      {"unk_token", &opt.unk_token}, {"cls_token", &opt.cls_token},
      {"sep_token", &opt.sep_token}, {"pad_token", &opt.pad_token}};
  for (const auto& [name, tok] : required) {
    if (seen.count(*tok)) continue;
    throw Error(where + ": no " + (file ? "line" : "entry") + " is the " + name + " \"" + *tok +
                "\"; fix: add it (" + (file ? "as a line at the end, which keeps every other id" :
                                              "at the end, which keeps every other id") +
                ") or set WordPieceOptions::" + name + " to the vocab's own token");
  }
}

}  // namespace

// ---- Table ----

void WordPieceTokenizer::Table::build(const std::vector<std::pair<std::string_view, int32_t>>& entries) {
  size_t cap = 16;
  while (cap < entries.size() * 2 + 1) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  pool_.clear();
  size_t total = 0;
  for (const auto& e : entries) total += e.first.size();
  pool_.reserve(total);
  max_chars_ = 0;
  for (const auto& [key, id] : entries) {
    const uint64_t h = hash_bytes(key.data(), key.size());
    uint64_t idx = h & mask_;
    while (slots_[idx].id >= 0) idx = (idx + 1) & mask_;
    slots_[idx] = Slot{h, static_cast<uint32_t>(pool_.size()), static_cast<uint32_t>(key.size()), id};
    pool_.append(key);
    max_chars_ = std::max(max_chars_, count_code_points(key));
  }
}

int32_t WordPieceTokenizer::Table::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash_bytes(key.data(), key.size());
  for (uint64_t idx = h & mask_;; idx = (idx + 1) & mask_) {
    const Slot& s = slots_[idx];
    if (s.id < 0) return -1;
    if (s.hash == h && s.len == key.size() && std::memcmp(pool_.data() + s.off, key.data(), key.size()) == 0)
      return s.id;
  }
}

// ---- construction and vocab I/O ----

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), opt_(std::move(options)) {
  check_vocab(vocab_, opt_, "WordPieceTokenizer: vocab", false);
  QUENCH_CHECK(vocab_.size() < (size_t{1} << 31), "WordPieceTokenizer: vocab of ", vocab_.size(),
               " tokens does not fit int32 ids");
  strip_accents_ = opt_.strip_accents.value_or(opt_.do_lower_case);
  std::vector<std::pair<std::string_view, int32_t>> all, cont;
  all.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    const std::string& t = vocab_[i];
    all.emplace_back(t, static_cast<int32_t>(i));
    if (t.size() > 2 && t[0] == '#' && t[1] == '#') cont.emplace_back(std::string_view(t).substr(2), static_cast<int32_t>(i));
  }
  full_.build(all);
  cont_.build(cont);
  unk_id_ = full_.find(opt_.unk_token);
  cls_id_ = full_.find(opt_.cls_token);
  sep_id_ = full_.find(opt_.sep_token);
  pad_id_ = full_.find(opt_.pad_token);
  mask_id_ = full_.find(opt_.mask_token);
  specials_ = {opt_.unk_token, opt_.sep_token, opt_.pad_token, opt_.cls_token, opt_.mask_token};
  specials_.insert(specials_.end(), opt_.never_split.begin(), opt_.never_split.end());
  specials_.erase(std::remove(specials_.begin(), specials_.end(), std::string()), specials_.end());
  std::sort(specials_.begin(), specials_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  specials_.erase(std::unique(specials_.begin(), specials_.end()), specials_.end());
  for (const std::string& s : specials_) special_first_byte_[static_cast<unsigned char>(s[0])] = true;
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path, WordPieceOptions options) {
  const std::string where = "WordPiece vocab " + path;
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(where + ": cannot open: " + (errno ? std::strerror(errno) : "unknown error") +
                "; fix: pass the vocab.txt of the model (one token per line)");
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(where + ": read error; fix: check the file and the disk");
  size_t pos = 0;
  if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) pos = 3;  // BOM (Python's utf-8 would keep it in token 0)
  std::vector<std::string> vocab;
  while (pos < data.size()) {
    size_t end = data.find_first_of("\r\n", pos);
    const size_t stop = end == std::string::npos ? data.size() : end;
    std::string_view line(data.data() + pos, stop - pos);
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(line.data());
    for (size_t i = 0; i < line.size();) {
      utf8proc_int32_t cp;
      const auto n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(line.size() - i), &cp);
      if (n < 0)
        throw Error(where + ": line " + std::to_string(vocab.size() + 1) + ": invalid UTF-8 at byte " +
                    std::to_string(i + 1) + " of the line; fix: re-save the file as UTF-8");
      i += static_cast<size_t>(n);
    }
    vocab.emplace_back(line);
    if (end == std::string::npos) break;
    pos = end + ((data[end] == '\r' && end + 1 < data.size() && data[end + 1] == '\n') ? 2 : 1);
  }
  check_vocab(vocab, options, where, true);
  return WordPieceTokenizer(std::move(vocab), std::move(options));
}

void WordPieceTokenizer::save_vocab(const std::string& path) const {
  for (size_t i = 0; i < vocab_.size(); ++i)
    QUENCH_CHECK(vocab_[i].find_first_of("\r\n") == std::string::npos, "save_vocab: ", path, ": token ", i,
                 " holds a line break and cannot be written one per line; fix: remove it from the vocab");
  std::string text;
  for (const std::string& t : vocab_) text += t + '\n';
  write_file_atomic(path, {text}, "save_vocab: " + path);
}

// ---- tokenization ----

struct WordPieceTokenizer::Scratch {
  std::string tok;                 // the current whitespace-delimited token, cleaned
  std::string word;                // one word of a non-ASCII token
  std::string utf8;                // re-encoded code points
  std::string one;                 // one punctuation char
  std::vector<int32_t> cps, cps2;  // code points of a non-ASCII token
  std::vector<uint32_t> offs;      // byte offset of each code point of a word, then its size
  struct Piece {
    int32_t id;
    uint32_t begin, end;  // code point range
  };
  std::vector<Piece> pieces;
};

size_t WordPieceTokenizer::match_special(std::string_view text, size_t pos) const {
  for (const std::string& s : specials_)
    if (text.size() - pos >= s.size() && text.compare(pos, s.size(), s) == 0) return s.size();
  return 0;
}

// emit(std::string_view word, bool special) for every word of HF's basic tokenizer.
template <class Emit>
void WordPieceTokenizer::basic_words(std::string_view text, Scratch& s, Emit&& emit, bool split_specials) const {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const size_t n = text.size();
  s.tok.clear();
  bool ascii = true;
  auto flush = [&] {
    if (!s.tok.empty()) {
      process_token(s, ascii, emit);
      s.tok.clear();
    }
    ascii = true;
  };
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (split_specials && special_first_byte_[c]) {
      if (const size_t m = match_special(text, i)) {
        flush();
        emit(text.substr(i, m), true);
        i += m;
        continue;
      }
    }
    if (c < 0x80) {
      if (c > 32 && c < 127) {
        // a run of printable ASCII
        size_t j = i + 1;
        while (j < n && p[j] > 32 && p[j] < 127 && !special_first_byte_[p[j]]) ++j;
        s.tok.append(text.data() + i, j - i);
        i = j;
        continue;
      }
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') flush();
      ++i;  // other ASCII controls (and NUL) are dropped
      continue;
    }
    utf8proc_int32_t cp;
    const auto len = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(n - i), &cp);
    if (len < 0) {  // invalid UTF-8: HF sees U+FFFD, which cleaning drops
      ++i;
      continue;
    }
    const auto cat = utf8proc_category(cp);
    if (cp == 0xFFFD || is_other_category(cat)) {
      // dropped
    } else if (cat == UTF8PROC_CATEGORY_ZS || cp == 0x2028 || cp == 0x2029) {
      flush();  // Zs is cleaned to a space; U+2028/2029 are split on by Python's str.split()
    } else if (opt_.tokenize_chinese_chars && is_cjk_ideograph(cp)) {
      flush();
      s.tok.append(text.data() + i, static_cast<size_t>(len));
      ascii = false;
      flush();
    } else {
      s.tok.append(text.data() + i, static_cast<size_t>(len));
      ascii = false;
    }
    i += static_cast<size_t>(len);
  }
  flush();
}

// One whitespace-delimited token: NFC, lower-case, strip accents, split off punctuation.
template <class Emit>
void WordPieceTokenizer::process_token(Scratch& s, bool ascii, Emit&& emit) const {
  std::string& t = s.tok;
  if (ascii) {  // NFC, accent stripping are the identity; lower-casing is A-Z only
    if (opt_.do_lower_case)
      for (char& ch : t)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch + 32);
    size_t start = 0;
    for (size_t j = 0; j < t.size(); ++j) {
      if (kAsciiPunct.v[static_cast<unsigned char>(t[j])]) {
        if (j > start) emit(std::string_view(t.data() + start, j - start), false);
        emit(std::string_view(t.data() + j, 1), false);
        start = j + 1;
      }
    }
    if (start < t.size()) emit(std::string_view(t.data() + start, t.size() - start), false);
    return;
  }
  // NFC (HF normalizes the whole text; composition never crosses a space)
  const auto nfc = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  size_t n = decompose_into(t, nfc, s.cps);
  const auto r = utf8proc_normalize_utf32(s.cps.data(), static_cast<utf8proc_ssize_t>(n), nfc);
  if (r < 0) throw Error(std::string("WordPieceTokenizer: utf8proc: ") + utf8proc_errmsg(r));
  n = static_cast<size_t>(r);
  const std::vector<int32_t>* cps = &s.cps;
  if (opt_.do_lower_case) {
    s.cps2.clear();
    for (size_t k = 0; k < n; ++k) {
      const int32_t cp = s.cps[k];
      if (cp == 0x130) {  // Python: "İ".lower() == "i\u0307"
        s.cps2.push_back('i');
        s.cps2.push_back(0x307);
      } else {
        s.cps2.push_back(utf8proc_tolower(cp));
      }
    }
    cps = &s.cps2;
    n = s.cps2.size();
  }
  if (strip_accents_) {  // NFD, then drop Mn
    s.utf8.clear();
    for (size_t k = 0; k < n; ++k) append_utf8(s.utf8, (*cps)[k]);
    const auto nfd = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    n = decompose_into(s.utf8, nfd, s.cps);
    size_t kept = 0;
    for (size_t k = 0; k < n; ++k)
      if (utf8proc_category(s.cps[k]) != UTF8PROC_CATEGORY_MN) s.cps[kept++] = s.cps[k];
    n = kept;
    cps = &s.cps;
  }
  s.word.clear();
  for (size_t k = 0; k < n; ++k) {
    const int32_t cp = (*cps)[k];
    if (is_bert_punctuation(cp)) {
      if (!s.word.empty()) emit(std::string_view(s.word), false);
      s.word.clear();
      s.one.clear();
      append_utf8(s.one, cp);
      emit(std::string_view(s.one), false);
    } else {
      append_utf8(s.word, cp);
    }
  }
  if (!s.word.empty()) emit(std::string_view(s.word), false);
}

// out(int32_t id, std::string_view piece, bool continuation) for the pieces of one word; one
// out(unk_id_, unk_token, false) when the word is too long or cannot be matched whole.
template <class Out>
void WordPieceTokenizer::wordpiece(std::string_view w, Scratch& s, Out&& out) const {
  // whole-word hit first: the common case
  if (static_cast<int64_t>(w.size()) <= opt_.max_input_chars_per_word) {
    const int32_t id = full_.find(w);
    if (id >= 0) {
      out(id, w, false);
      return;
    }
  }
  auto& offs = s.offs;
  offs.clear();
  for (size_t j = 0; j < w.size(); ++j)
    if ((static_cast<unsigned char>(w[j]) & 0xC0) != 0x80) offs.push_back(static_cast<uint32_t>(j));
  const size_t n = offs.size();
  offs.push_back(static_cast<uint32_t>(w.size()));
  if (static_cast<int64_t>(n) > opt_.max_input_chars_per_word) {
    out(unk_id_, std::string_view(opt_.unk_token), false);
    return;
  }
  s.pieces.clear();
  size_t start = 0;
  while (start < n) {
    const Table& t = start == 0 ? full_ : cont_;
    size_t end = std::min<size_t>(n, start + static_cast<size_t>(t.max_key_chars()));
    int32_t id = -1;
    for (; end > start; --end) {
      id = t.find(w.substr(offs[start], offs[end] - offs[start]));
      if (id >= 0) break;
    }
    if (id < 0) {
      out(unk_id_, std::string_view(opt_.unk_token), false);
      return;
    }
    s.pieces.push_back({id, static_cast<uint32_t>(start), static_cast<uint32_t>(end)});
    start = end;
  }
  for (const auto& pc : s.pieces)
    out(pc.id, w.substr(offs[pc.begin], offs[pc.end] - offs[pc.begin]), pc.begin > 0);
}

template <class Out>
void WordPieceTokenizer::run(std::string_view text, Out&& out) const {
  thread_local Scratch s;
  basic_words(text, s, [&](std::string_view word, bool special) {
    if (special) {
      const int32_t id = full_.find(word);
      out(id >= 0 ? id : unk_id_, word, false);
    } else {
      wordpiece(word, s, out);
    }
  });
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> words;
  Scratch s;
  basic_words(text, s, [&](std::string_view w, bool) { words.emplace_back(w); });
  return words;
}

void WordPieceTokenizer::for_each_basic_word(std::string_view text, bool split_specials,
                                             const std::function<void(std::string_view)>& fn) const {
  thread_local Scratch s;
  basic_words(text, s, [&](std::string_view w, bool) { fn(w); }, split_specials);
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  run(text, [&](int32_t, std::string_view piece, bool cont) {
    if (cont) {
      std::string p = "##";
      p.append(piece);
      pieces.push_back(std::move(p));
    } else {
      pieces.emplace_back(piece);
    }
  });
  return pieces;
}

std::vector<int32_t> WordPieceTokenizer::tokenize_to_ids(std::string_view text) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 4);
  run(text, [&](int32_t id, std::string_view, bool) { ids.push_back(id); });
  return ids;
}

bool is_bert_punctuation(int32_t cp) {
  if (cp < 128) return cp >= 0 && ascii_punct(static_cast<uint32_t>(cp));
  const auto cat = utf8proc_category(cp);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

}  // namespace quench::nn
