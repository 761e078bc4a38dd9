#include "nn/text/wordpiece.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.hpp"

namespace quench::nn {

namespace {

// ---- code point classes (HF's _is_whitespace, _is_control, _is_punctuation, _is_chinese_char) ----

bool is_whitespace(int32_t c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return true;
  return c >= 0x80 && utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

bool is_control(int32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c < 0x80) return c < 0x20 || c == 0x7f;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    default:
      return false;
  }
}

bool is_punctuation(int32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  if (c < 0x80) return false;
  const utf8proc_category_t k = utf8proc_category(c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

bool is_cjk(int32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// ---- UTF-8 <-> code points ----

// Appends the code points of s; an invalid byte becomes U+FFFD and decoding goes on at the next byte.
void utf8_decode(std::string_view s, std::vector<int32_t>& out) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  utf8proc_ssize_t n = static_cast<utf8proc_ssize_t>(s.size());
  while (n > 0) {
    if (*p < 0x80) {
      out.push_back(*p++);
      --n;
      continue;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t len = utf8proc_iterate(p, n, &c);
    if (len <= 0) {
      out.push_back(0xFFFD);
      len = 1;
    } else {
      out.push_back(c);
    }
    p += len;
    n -= len;
  }
}

void encode_cp(int32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
    return;
  }
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t len = utf8proc_encode_char(c, buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
}

// utf8proc_map on a code point range (NFC, or NFD for accent stripping).
void map_cps(const int32_t* c, size_t n, utf8proc_option_t opts, std::vector<int32_t>& out) {
  std::string s;
  for (size_t i = 0; i < n; ++i) encode_cp(c[i], s);
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t len =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                   &mapped, static_cast<utf8proc_option_t>(opts | UTF8PROC_STABLE));
  if (len < 0) {  // cannot happen on valid code points; keep them as they are
    out.insert(out.end(), c, c + n);
    return;
  }
  utf8_decode(std::string_view(reinterpret_cast<const char*>(mapped), static_cast<size_t>(len)), out);
  std::free(mapped);
}

bool all_ascii(const int32_t* c, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (c[i] >= 0x80) return false;
  return true;
}

}  // namespace

// ---- the tokenizer ----

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions o)
    : vocab_(std::move(vocab)), opt_(std::move(o)) {
  strip_accents_ = opt_.strip_accents.value_or(opt_.do_lower_case);
  QUENCH_CHECK(vocab_.size() < static_cast<size_t>(INT32_MAX), "WordPieceTokenizer: vocabulary too large");
  ids_.reserve(vocab_.size());
  for (size_t i = 0; i < vocab_.size(); ++i) {
    auto [it, fresh] = ids_.emplace(vocab_[i], static_cast<int32_t>(i));
    QUENCH_CHECK(fresh, "WordPieceTokenizer: token '", vocab_[i], "' appears twice (ids ", it->second, " and ", i, ")");
  }
  auto special = [&](const std::string& t) {
    auto it = ids_.find(t);
    QUENCH_CHECK(it != ids_.end(), "WordPieceTokenizer: the vocabulary has no '", t,
                 "' token; every BERT vocabulary needs [PAD], [UNK], [CLS] and [SEP] (quench vocab adds them)");
    return it->second;
  };
  unk_id_ = special(opt_.unk_token);
  cls_id_ = special(opt_.cls_token);
  sep_id_ = special(opt_.sep_token);
  pad_id_ = special(opt_.pad_token);
  for (const std::string* t : {&opt_.unk_token, &opt_.sep_token, &opt_.pad_token, &opt_.cls_token, &opt_.mask_token})
    if (!t->empty()) special_first_.push_back((*t)[0]);
  for (const auto& t : opt_.never_split)
    if (!t.empty()) special_first_.push_back(t[0]);
  QUENCH_CHECK(opt_.max_input_chars_per_word >= 1, "WordPieceTokenizer: max_input_chars_per_word must be >= 1");
}

WordPieceTokenizer WordPieceTokenizer::from_vocab_file(const std::string& path, WordPieceOptions options) {
  try {
    return WordPieceTokenizer(read_vocab_file(path), std::move(options));
  } catch (const Error& e) {
    const std::string what = e.what();
    throw Error(what.rfind(path, 0) == 0 ? what : path + ": " + what);
  }
}

bool WordPieceTokenizer::is_never_split(std::string_view w) const {
  if (w == opt_.unk_token || w == opt_.sep_token || w == opt_.pad_token || w == opt_.cls_token ||
      w == opt_.mask_token)
    return true;
  return std::find(opt_.never_split.begin(), opt_.never_split.end(), w) != opt_.never_split.end();
}

// Calls emit(std::string_view) for every basic token of text, in order.
template <class F>
void WordPieceTokenizer::for_each_word(std::string_view text, F&& emit) const {
  thread_local std::vector<int32_t> cps, clean, word, tmp;
  thread_local std::string piece;
  cps.clear();
  clean.clear();
  utf8_decode(text, cps);
  // 1-2: clean, CJK spacing.
  for (int32_t c : cps) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      clean.push_back(' ');
    } else if (opt_.tokenize_chinese_chars && c >= 0x3400 && is_cjk(c)) {
      clean.push_back(' ');
      clean.push_back(c);
      clean.push_back(' ');
    } else {
      clean.push_back(c);
    }
  }
  // 3: NFC (nothing to do for ASCII).
  if (!all_ascii(clean.data(), clean.size())) {
    tmp.clear();
    map_cps(clean.data(), clean.size(), UTF8PROC_COMPOSE, tmp);
    clean.swap(tmp);
  }
  auto flush = [&](const int32_t* c, size_t n) {
    piece.clear();
    for (size_t i = 0; i < n; ++i) encode_cp(c[i], piece);
    emit(std::string_view(piece));
  };
  // 4: per space-separated word.
  size_t i = 0;
  while (i < clean.size()) {
    while (i < clean.size() && clean[i] == ' ') ++i;
    size_t j = i;
    while (j < clean.size() && clean[j] != ' ') ++j;
    if (j == i) break;
    const int32_t* w = clean.data() + i;
    const size_t n = j - i;
    i = j;
    if (w[0] < 0x80 && special_first_.find(static_cast<char>(w[0])) != std::string::npos) {
      piece.clear();
      for (size_t k = 0; k < n; ++k) encode_cp(w[k], piece);
      if (is_never_split(piece)) {
        emit(std::string_view(piece));
        continue;
      }
    }
    word.assign(w, w + n);
    if (opt_.do_lower_case)
      for (int32_t& c : word) c = c < 0x80 ? (c >= 'A' && c <= 'Z' ? c + 32 : c) : utf8proc_tolower(c);
    if (strip_accents_ && !all_ascii(word.data(), word.size())) {
      tmp.clear();
      map_cps(word.data(), word.size(), UTF8PROC_DECOMPOSE, tmp);
      word.clear();
      for (int32_t c : tmp)
        if (c < 0x80 || utf8proc_category(c) != UTF8PROC_CATEGORY_MN) word.push_back(c);
    }
    // Punctuation split: each punctuation character alone, the runs between as words.
    size_t s = 0;
    for (size_t k = 0; k < word.size(); ++k) {
      if (!is_punctuation(word[k])) continue;
      if (k > s) flush(word.data() + s, k - s);
      flush(word.data() + k, 1);
      s = k + 1;
    }
    if (s < word.size()) flush(word.data() + s, word.size() - s);
  }
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for_each_word(text, [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

void WordPieceTokenizer::wordpiece(std::string_view word, std::vector<int32_t>& out) const {
  thread_local std::vector<size_t> off;  // byte offset of each code point, and the end
  thread_local std::string key;
  off.clear();
  for (size_t b = 0; b < word.size(); ++b)
    if ((static_cast<unsigned char>(word[b]) & 0xC0) != 0x80) off.push_back(b);
  off.push_back(word.size());
  const size_t n = off.size() - 1;
  if (static_cast<int64_t>(n) > opt_.max_input_chars_per_word) {
    out.push_back(unk_id_);
    return;
  }
  const size_t mark = out.size();
  size_t start = 0;
  while (start < n) {
    size_t end = n;
    int32_t found = -1;
    while (start < end) {
      std::string_view sub = word.substr(off[start], off[end] - off[start]);
      decltype(ids_)::const_iterator it;
      if (start == 0) {
        it = ids_.find(sub);
      } else {
        key.assign("##");
        key.append(sub);
        it = ids_.find(std::string_view(key));
      }
      if (it != ids_.end()) {
        found = it->second;
        break;
      }
      --end;
    }
    if (found < 0) {  // the word cannot be covered: one [UNK] for all of it
      out.resize(mark);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

std::vector<int32_t> WordPieceTokenizer::encode_ids(std::string_view text) const {
  std::vector<int32_t> ids;
  for_each_word(text, [&](std::string_view w) {
    auto it = ids_.find(w);
    if (it != ids_.end() && is_never_split(w))
      ids.push_back(it->second);
    else
      wordpiece(w, ids);
  });
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (int32_t id : encode_ids(text)) out.push_back(vocab_[id]);
  return out;
}

namespace {
void finish(Encoding& e, int64_t max_length, bool pad, int32_t pad_id) {
  e.attention_mask.assign(e.input_ids.size(), 1);
  if (pad && max_length > 0)
    while (static_cast<int64_t>(e.input_ids.size()) < max_length) {
      e.input_ids.push_back(pad_id);
      e.token_type_ids.push_back(0);
      e.attention_mask.push_back(0);
    }
}
}  // namespace

Encoding WordPieceTokenizer::encode(std::string_view text, int64_t max_length, bool pad) const {
  QUENCH_CHECK(max_length == 0 || max_length >= 2, "WordPieceTokenizer::encode: max_length ", max_length,
               " leaves no room for [CLS] and [SEP] (use >= 2, or 0 for no limit)");
  std::vector<int32_t> a = encode_ids(text);
  if (max_length > 0 && static_cast<int64_t>(a.size()) > max_length - 2) a.resize(max_length - 2);
  Encoding e;
  e.input_ids.reserve(a.size() + 2);
  e.input_ids.push_back(cls_id_);
  e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
  e.input_ids.push_back(sep_id_);
  e.token_type_ids.assign(e.input_ids.size(), 0);
  finish(e, max_length, pad, pad_id_);
  return e;
}

Encoding WordPieceTokenizer::encode(std::string_view text, std::string_view text_b, int64_t max_length,
                                    bool pad) const {
  QUENCH_CHECK(max_length == 0 || max_length >= 3, "WordPieceTokenizer::encode: max_length ", max_length,
               " leaves no room for [CLS] and two [SEP] (use >= 3, or 0 for no limit)");
  std::vector<int32_t> a = encode_ids(text), b = encode_ids(text_b);
  // HF's longest_first: a token at a time from the longer sequence (the second on a tie).
  if (max_length > 0)
    while (static_cast<int64_t>(a.size() + b.size()) > max_length - 3) (a.size() > b.size() ? a : b).pop_back();
  Encoding e;
  e.input_ids.push_back(cls_id_);
  e.input_ids.insert(e.input_ids.end(), a.begin(), a.end());
  e.input_ids.push_back(sep_id_);
  e.token_type_ids.assign(e.input_ids.size(), 0);
  e.input_ids.insert(e.input_ids.end(), b.begin(), b.end());
  e.input_ids.push_back(sep_id_);
  e.token_type_ids.resize(e.input_ids.size(), 1);
  finish(e, max_length, pad, pad_id_);
  return e;
}

EncodedBatch WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts, int64_t max_length,
                                              bool pad_to_longest) const {
  std::vector<Encoding> enc;
  enc.reserve(texts.size());
  int64_t L = pad_to_longest ? 0 : max_length;
  for (const auto& t : texts) {
    enc.push_back(encode(t, max_length));
    L = std::max<int64_t>(L, static_cast<int64_t>(enc.back().input_ids.size()));
  }
  const int64_t N = static_cast<int64_t>(texts.size());
  EncodedBatch b{Tensor::empty({N, L}, kInt32), Tensor::empty({N, L}, kInt32), Tensor::empty({N, L}, kInt32)};
  int32_t *pi = b.input_ids.data_ptr<int32_t>(), *pm = b.attention_mask.data_ptr<int32_t>(),
          *pt = b.token_type_ids.data_ptr<int32_t>();
  for (int64_t r = 0; r < N; ++r) {
    const Encoding& e = enc[r];
    for (int64_t j = 0; j < L; ++j) {
      const bool real = j < static_cast<int64_t>(e.input_ids.size());
      pi[r * L + j] = real ? e.input_ids[j] : pad_id_;
      pm[r * L + j] = real ? 1 : 0;
      pt[r * L + j] = real ? e.token_type_ids[j] : 0;
    }
  }
  return b;
}

std::string WordPieceTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string out;
  for (const std::string& t : convert_ids_to_tokens(ids)) {
    if (skip_special_tokens && is_never_split(t) && std::find(opt_.never_split.begin(), opt_.never_split.end(), t) ==
                                                        opt_.never_split.end())
      continue;
    if (t.size() > 2 && t[0] == '#' && t[1] == '#' && !out.empty()) {
      out.append(t, 2);
    } else {
      if (!out.empty()) out.push_back(' ');
      out += t;
    }
  }
  return out;
}

std::vector<int32_t> WordPieceTokenizer::convert_tokens_to_ids(const std::vector<std::string>& tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) ids.push_back(token_to_id(t));
  return ids;
}

std::vector<std::string> WordPieceTokenizer::convert_ids_to_tokens(const std::vector<int32_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    QUENCH_CHECK(id >= 0 && id < vocab_size(), "WordPieceTokenizer: token id ", id, " outside the vocabulary [0, ",
                 vocab_size(), ")");
    out.push_back(vocab_[id]);
  }
  return out;
}

int32_t WordPieceTokenizer::token_to_id(std::string_view token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? unk_id_ : it->second;
}

bool WordPieceTokenizer::contains(std::string_view token) const { return ids_.find(token) != ids_.end(); }

void WordPieceTokenizer::save_vocab(const std::string& path) const { write_vocab_file(path, vocab_); }

// ---- vocab.txt ----

std::vector<std::string> read_vocab_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QUENCH_CHECK(in, path, ": cannot open the vocabulary (a vocab.txt, one token per line; quench vocab writes one)");
  std::vector<std::string> vocab;
  std::unordered_map<std::string, size_t> seen;
  size_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    QUENCH_CHECK(!line.empty(), path, ":", line_no, ": empty token (a vocabulary has one token per line)");
    QUENCH_CHECK(utf8proc_decompose(reinterpret_cast<const utf8proc_uint8_t*>(line.data()),
                                    static_cast<utf8proc_ssize_t>(line.size()), nullptr, 0,
                                    static_cast<utf8proc_option_t>(0)) >= 0,
                 path, ":", line_no, ": the token is not valid UTF-8");
    auto [it, fresh] = seen.emplace(line, line_no);
    QUENCH_CHECK(fresh, path, ":", line_no, ": token '", line, "' already on line ", it->second,
                 " (each token once; its line number is its id)");
    vocab.push_back(std::move(line));
  }
  QUENCH_CHECK(!vocab.empty(), path, ": the vocabulary is empty");
  return vocab;
}

void write_vocab_file(const std::string& path, const std::vector<std::string>& vocab) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    QUENCH_CHECK(out, path, ": cannot write the vocabulary");
    for (const auto& t : vocab) {
      QUENCH_CHECK(!t.empty() && t.find('\n') == std::string::npos, path, ": token '", t,
                   "' cannot be written to a vocab.txt (empty or holding a line break)");
      out << t << '\n';
    }
    out.flush();
    QUENCH_CHECK(out, path, ": writing the vocabulary failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw Error(path + ": cannot replace the file: " + ec.message());
  }
}

}  // namespace quench::nn
