#include "nn/text/vocab_trainer.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "engine/error.hpp"
#include "nn/text/wordpiece.hpp"

namespace quench::nn {

namespace {

using Pair = uint64_t;  // (left id << 32) | right id

Pair make_pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(Pair p) { return static_cast<int32_t>(p >> 32); }
int32_t right_of(Pair p) { return static_cast<int32_t>(p & 0xffffffffu); }

struct Word {
  std::vector<int32_t> syms;
  int64_t count = 0;
};

struct Candidate {
  int64_t count;
  Pair pair;
};

}  // namespace

std::vector<std::string> train_wordpiece_vocab(const std::vector<std::string>& corpus,
                                               const WordPieceTrainerOptions& o) {
  QUENCH_CHECK(o.vocab_size > 0, "train_wordpiece_vocab: vocab_size ", o.vocab_size,
               " must be positive; fix: pass the number of tokens wanted (e.g. 8000)");
  QUENCH_CHECK(o.min_frequency >= 0, "train_wordpiece_vocab: min_frequency ", o.min_frequency,
               " is negative; fix: pass 0 or more");
  const std::string& prefix = o.continuing_subword_prefix;

  // 1. word counts from the basic tokenizer (specials in the text are plain text, as in HF)
  WordPieceOptions basic_opt;
  basic_opt.do_lower_case = o.lowercase;
  const WordPieceTokenizer basic({"[PAD]", "[UNK]", "[CLS]", "[SEP]"}, basic_opt);
  std::unordered_map<std::string, int64_t> counts;
  std::string key;
  for (const std::string& text : corpus)
    basic.for_each_basic_word(text, false, [&](std::string_view w) {
      key.assign(w);
      ++counts[key];
    });
  std::vector<std::pair<std::string, int64_t>> word_counts(counts.begin(), counts.end());
  counts.clear();
  std::sort(word_counts.begin(), word_counts.end());  // a fixed order for everything below

  // 2. the alphabet
  std::unordered_map<int32_t, int64_t> char_counts;
  std::vector<std::vector<int32_t>> word_cps(word_counts.size());
  for (size_t w = 0; w < word_counts.size(); ++w) {
    const std::string& s = word_counts[w].first;
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
    for (size_t i = 0; i < s.size();) {
      utf8proc_int32_t cp;
      const auto n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
      if (n < 0) {  // cannot happen: the basic tokenizer emits valid UTF-8
        ++i;
        continue;
      }
      word_cps[w].push_back(cp);
      char_counts[cp] += word_counts[w].second;
      i += static_cast<size_t>(n);
    }
  }
  std::vector<std::pair<int32_t, int64_t>> chars(char_counts.begin(), char_counts.end());
  if (o.limit_alphabet > 0 && static_cast<int64_t>(chars.size()) > o.limit_alphabet) {
    std::sort(chars.begin(), chars.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    chars.resize(static_cast<size_t>(o.limit_alphabet));
  }
  std::sort(chars.begin(), chars.end());  // code point order

  // 3. the initial vocab: specials, chars, prefixed chars that occur after a word's first char
  std::vector<std::string> vocab;
  std::unordered_map<std::string, int32_t> ids;
  auto add = [&](const std::string& t) -> int32_t {
    auto [it, fresh] = ids.emplace(t, static_cast<int32_t>(vocab.size()));
    if (fresh) vocab.push_back(t);
    return it->second;
  };
  for (const std::string& t : o.special_tokens) add(t);
  std::unordered_map<int32_t, int32_t> initial_id, cont_id;
  std::unordered_set<int32_t> seen_later;
  for (const auto& cps : word_cps)
    for (size_t i = 1; i < cps.size(); ++i) seen_later.insert(cps[i]);
  auto utf8_of = [](int32_t cp) {
    utf8proc_uint8_t buf[4];
    const auto n = utf8proc_encode_char(cp, buf);
    return std::string(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  };
  for (const auto& [cp, count] : chars) initial_id[cp] = add(utf8_of(cp));
  for (const auto& [cp, count] : chars)
    if (seen_later.count(cp)) cont_id[cp] = add(prefix + utf8_of(cp));
  QUENCH_CHECK(static_cast<int64_t>(vocab.size()) <= o.vocab_size, "train_wordpiece_vocab: the ",
               o.special_tokens.size(), " special tokens and the alphabet make ", vocab.size(),
               " tokens, more than vocab_size ", o.vocab_size,
               "; fix: raise vocab_size or lower limit_alphabet");

  // 4. words as symbols
  std::vector<Word> words;
  words.reserve(word_counts.size());
  for (size_t w = 0; w < word_counts.size(); ++w) {
    Word word;
    word.count = word_counts[w].second;
    const auto& cps = word_cps[w];
    for (size_t i = 0; i < cps.size(); ++i) {
      const auto& table = i == 0 ? initial_id : cont_id;
      const auto it = table.find(cps[i]);
      if (it != table.end()) word.syms.push_back(it->second);
    }
    words.push_back(std::move(word));
  }
  word_cps.clear();
  word_counts.clear();

  // 5. pair counts and where each pair occurs
  std::unordered_map<Pair, int64_t> pair_counts;
  std::unordered_map<Pair, std::vector<int32_t>> where;
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].syms;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const Pair p = make_pair_key(s[i], s[i + 1]);
      pair_counts[p] += words[w].count;
      auto& list = where[p];
      if (list.empty() || list.back() != static_cast<int32_t>(w)) list.push_back(static_cast<int32_t>(w));
    }
  }
  // heap order: higher count first, then the lexicographically smaller (left, right) strings
  auto lower_priority = [&vocab](const Candidate& x, const Candidate& y) {
    if (x.count != y.count) return x.count < y.count;
    const std::string& xl = vocab[static_cast<size_t>(left_of(x.pair))];
    const std::string& yl = vocab[static_cast<size_t>(left_of(y.pair))];
    if (xl != yl) return xl > yl;
    return vocab[static_cast<size_t>(right_of(x.pair))] > vocab[static_cast<size_t>(right_of(y.pair))];
  };
  const int64_t threshold = std::max<int64_t>(1, o.min_frequency);
  std::vector<Candidate> init;
  for (const auto& [p, c] : pair_counts)
    if (c >= threshold) init.push_back({c, p});
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(lower_priority)> heap(lower_priority,
                                                                                        std::move(init));

  // 6. merges
  std::vector<uint32_t> stamp(words.size(), 0);
  uint32_t epoch = 0;
  std::vector<int32_t> merged;
  std::vector<Pair> touched;
  while (static_cast<int64_t>(vocab.size()) < o.vocab_size && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const auto pc = pair_counts.find(top.pair);
    const int64_t current = pc == pair_counts.end() ? 0 : pc->second;
    if (current != top.count) {  // stale: re-queue with the current count
      if (current >= threshold) heap.push({current, top.pair});
      continue;
    }
    if (current < threshold) break;
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    std::string right = vocab[static_cast<size_t>(b)];
    if (!prefix.empty() && right.compare(0, prefix.size(), prefix) == 0) right.erase(0, prefix.size());
    const int32_t id = add(vocab[static_cast<size_t>(a)] + right);

    ++epoch;
    touched.clear();
    std::vector<int32_t> occurs = std::move(where[top.pair]);
    where.erase(top.pair);
    for (const int32_t w : occurs) {
      if (stamp[static_cast<size_t>(w)] == epoch) continue;
      stamp[static_cast<size_t>(w)] = epoch;
      Word& word = words[static_cast<size_t>(w)];
      auto& s = word.syms;
      bool found = false;
      for (size_t i = 0; i + 1 < s.size() && !found; ++i) found = s[i] == a && s[i + 1] == b;
      if (!found) continue;
      // recount this word: take its pairs out, merge left to right, put its pairs back
      for (size_t i = 0; i + 1 < s.size(); ++i) pair_counts[make_pair_key(s[i], s[i + 1])] -= word.count;
      merged.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(s[i]);
        }
      }
      s.swap(merged);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const Pair p = make_pair_key(s[i], s[i + 1]);
        pair_counts[p] += word.count;
        if (s[i] == id || s[i + 1] == id) {  // only pairs with the new token can grow
          auto& list = where[p];
          if (list.empty() || list.back() != w) list.push_back(w);
          touched.push_back(p);
        }
      }
    }
    pair_counts.erase(top.pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (const Pair p : touched) {
      const int64_t c = pair_counts[p];
      if (c >= threshold) heap.push({c, p});
    }
  }
  return vocab;
}

}  // namespace quench::nn
