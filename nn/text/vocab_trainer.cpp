#include "nn/text/vocab_trainer.hpp"

#include <algorithm>
#include <map>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "engine/error.hpp"
#include "nn/text/wordpiece.hpp"

namespace quench::nn {

namespace {

std::vector<std::string> code_points(const std::string& w) {
  std::vector<std::string> out;
  for (size_t b = 0; b < w.size();) {
    size_t e = b + 1;
    while (e < w.size() && (static_cast<unsigned char>(w[e]) & 0xC0) == 0x80) ++e;
    out.push_back(w.substr(b, e - b));
    b = e;
  }
  return out;
}

uint64_t pair_key(int32_t a, int32_t b) { return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b); }

}  // namespace

std::vector<std::string> train_wordpiece_vocab(const std::vector<std::string>& corpus, const WordPieceTrainerOptions& o) {
  QUENCH_CHECK(o.vocab_size > static_cast<int64_t>(o.special_tokens.size()), "train_wordpiece_vocab: vocab_size ",
               o.vocab_size, " leaves no room beside the ", o.special_tokens.size(), " special tokens");
  QUENCH_CHECK(o.min_frequency >= 1 && o.limit_alphabet >= 1,
               "train_wordpiece_vocab: min_frequency and limit_alphabet must be >= 1");
  const std::string& prefix = o.continuing_subword_prefix;

  // 1. Word counts from the basic tokenizer (its own specials only; the user's are never split).
  WordPieceOptions wo;
  wo.do_lower_case = o.lowercase;
  wo.never_split = o.special_tokens;
  const WordPieceTokenizer basic({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}, wo);
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& text : corpus)
    for (auto& w : basic.basic_tokenize(text)) ++counts[std::move(w)];
  for (const auto& s : o.special_tokens) counts.erase(s);
  std::vector<std::pair<std::string, int64_t>> words(counts.begin(), counts.end());
  std::sort(words.begin(), words.end());

  // 2. The alphabet by weighted frequency.
  std::map<std::string, int64_t> chars;
  for (const auto& [w, c] : words)
    for (const auto& ch : code_points(w)) chars[ch] += c;
  std::vector<std::pair<std::string, int64_t>> alpha(chars.begin(), chars.end());
  std::stable_sort(alpha.begin(), alpha.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  if (static_cast<int64_t>(alpha.size()) > o.limit_alphabet) alpha.resize(o.limit_alphabet);
  std::vector<std::string> kept;
  for (const auto& a : alpha) kept.push_back(a.first);
  std::sort(kept.begin(), kept.end());

  // The vocabulary so far: specials, characters, their continuation forms.
  std::vector<std::string> tok;
  std::unordered_map<std::string, int32_t> tid;
  auto add = [&](const std::string& t) {
    auto it = tid.find(t);
    if (it != tid.end()) return it->second;
    tok.push_back(t);
    return tid[t] = static_cast<int32_t>(tok.size() - 1);
  };
  for (const auto& s : o.special_tokens) add(s);
  std::unordered_set<std::string> alphabet(kept.begin(), kept.end());
  for (const auto& c : kept) add(c);

  // 3. Words as symbols.
  std::vector<std::vector<int32_t>> syms(words.size());
  std::vector<std::string> cont;  // continuation forms seen, added in sorted order
  std::vector<std::vector<std::string>> raw(words.size());
  for (size_t i = 0; i < words.size(); ++i) {
    std::vector<std::string> cps = code_points(words[i].first);
    for (size_t k = 0; k < cps.size(); ++k) {
      if (!alphabet.count(cps[k])) continue;
      raw[i].push_back(k == 0 ? cps[k] : prefix + cps[k]);
      if (k > 0) cont.push_back(raw[i].back());
    }
  }
  std::sort(cont.begin(), cont.end());
  cont.erase(std::unique(cont.begin(), cont.end()), cont.end());
  for (const auto& c : cont) add(c);
  for (size_t i = 0; i < words.size(); ++i)
    for (const auto& s : raw[i]) syms[i].push_back(tid.at(s));
  raw.clear();

  // 4. Pair counts with the words they occur in; a max-heap with lazy invalidation.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (size_t i = 0; i < words.size(); ++i)
    for (size_t k = 0; k + 1 < syms[i].size(); ++k) {
      const uint64_t key = pair_key(syms[i][k], syms[i][k + 1]);
      pair_count[key] += words[i].second;
      auto& w = where[key];
      if (w.empty() || w.back() != static_cast<int32_t>(i)) w.push_back(static_cast<int32_t>(i));
    }
  struct Entry {
    int64_t count;
    int32_t a, b;
  };
  auto worse = [&](const Entry& x, const Entry& y) {  // true when x ranks below y
    if (x.count != y.count) return x.count < y.count;
    if (tok[x.a] != tok[y.a]) return tok[x.a] > tok[y.a];
    return tok[x.b] > tok[y.b];
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(worse)> heap(worse);
  for (const auto& [key, c] : pair_count)
    heap.push({c, static_cast<int32_t>(key >> 32), static_cast<int32_t>(key & 0xffffffffu)});

  std::unordered_set<uint64_t> touched;
  while (static_cast<int64_t>(tok.size()) < o.vocab_size && !heap.empty()) {
    const Entry top = heap.top();
    heap.pop();
    const uint64_t key = pair_key(top.a, top.b);
    auto pc = pair_count.find(key);
    const int64_t cur = pc == pair_count.end() ? 0 : pc->second;
    if (cur != top.count) {  // stale entry
      if (cur > 0) heap.push({cur, top.a, top.b});
      continue;
    }
    if (cur < o.min_frequency) break;
    const std::string& sb = tok[top.b];
    const std::string merged =
        tok[top.a] + (sb.compare(0, prefix.size(), prefix) == 0 ? sb.substr(prefix.size()) : sb);
    const int32_t m = add(merged);
    touched.clear();
    std::vector<int32_t> affected = std::move(where[key]);
    where.erase(key);
    for (int32_t wi : affected) {
      std::vector<int32_t>& s = syms[wi];
      const int64_t wc = words[wi].second;
      bool has = false;
      for (size_t k = 0; k + 1 < s.size() && !has; ++k) has = s[k] == top.a && s[k + 1] == top.b;
      if (!has) continue;
      for (size_t k = 0; k + 1 < s.size(); ++k) {
        const uint64_t pk = pair_key(s[k], s[k + 1]);
        pair_count[pk] -= wc;
        touched.insert(pk);
      }
      std::vector<int32_t> next;
      next.reserve(s.size());
      for (size_t k = 0; k < s.size(); ++k) {
        if (k + 1 < s.size() && s[k] == top.a && s[k + 1] == top.b) {
          next.push_back(m);
          ++k;
        } else {
          next.push_back(s[k]);
        }
      }
      s.swap(next);
      for (size_t k = 0; k + 1 < s.size(); ++k) {
        const uint64_t pk = pair_key(s[k], s[k + 1]);
        pair_count[pk] += wc;
        touched.insert(pk);
        if (pk != key) {
          auto& w = where[pk];
          if (w.empty() || w.back() != wi) w.push_back(wi);
        }
      }
    }
    for (uint64_t pk : touched) {
      auto it = pair_count.find(pk);
      if (it == pair_count.end()) continue;
      if (it->second <= 0) {
        pair_count.erase(it);
        continue;
      }
      if (pk != key) heap.push({it->second, static_cast<int32_t>(pk >> 32), static_cast<int32_t>(pk & 0xffffffffu)});
    }
    pair_count.erase(key);
  }
  return tok;
}

}  // namespace quench::nn
