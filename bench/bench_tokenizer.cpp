// WordPieceTokenizer throughput, one thread: BM_tokenize runs text -> ids (tokenize_to_ids) over a
// synthetic ~4 MB corpus of English-like email text (capitals, punctuation, numbers, addresses, ~3%
// accented words, ~1% CJK), with a vocab of 8000 trained on that corpus; bytes/second is the input
// size. BM_encode_batch adds [CLS]/[SEP], truncation to 128 and the i32 tensors. BM_train_vocab times
// train_wordpiece_vocab (vocab 8000) on the same corpus. The target is >= 5 MB/s for BM_tokenize.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "nn/text/vocab_trainer.hpp"
#include "nn/text/wordpiece.hpp"

namespace {

using namespace quench;
using namespace quench::nn;

std::vector<std::string> make_corpus(size_t target_bytes) {
  const std::vector<std::string> common = {
      "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "with", "as", "was", "on", "be",
      "at", "by", "this", "have", "from", "or", "we", "will", "you", "are", "please", "meeting",
      "schedule", "tomorrow", "energy", "trading", "contract", "review", "attached", "report", "gas",
      "price", "market", "deal", "transaction", "agreement", "forward", "questions", "thanks", "regards",
      "information", "company", "power", "management", "business", "group", "call", "week", "position"};
  const std::vector<std::string> accented = {"caf\xC3\xA9", "na\xC3\xAFve", "r\xC3\xA9sum\xC3\xA9",
                                             "Z\xC3\xBCrich", "se\xC3\xB1or", "fa\xC3\xA7" "ade",
                                             "M\xC3\xBCnchen", "d\xC3\xA9j\xC3\xA0"};
  const std::vector<std::string> cjk = {"\xE4\xB8\xAD\xE6\x96\x87", "\xE5\xB8\x82\xE5\x9C\xBA",
                                        "\xE8\x83\xBD\xE6\xBA\x90", "\xE4\xBB\xB7\xE6\xA0\xBC"};
  const std::vector<std::string> punct = {",", ".", "!", "?", ";", ":", "'s", ")", " -", "\""};
  const std::vector<std::string> syll = {"ka", "lo", "mi", "ter", "son", "vel", "qua", "rix",
                                         "pen", "dor", "ul", "sha", "bre", "tion", "ing", "ex"};
  std::mt19937 rng(2024);
  std::vector<std::string> rare;
  for (int i = 0; i < 5000; ++i) {
    std::string w;
    for (size_t k = 0, n = 2 + rng() % 3; k < n; ++k) w += syll[rng() % syll.size()];
    rare.push_back(w);
  }
  std::vector<std::string> out;
  size_t total = 0;
  while (total < target_bytes) {
    std::string doc;
    const size_t sentences = 3 + rng() % 8;
    for (size_t s = 0; s < sentences; ++s) {
      const size_t len = 5 + rng() % 15;
      for (size_t k = 0; k < len; ++k) {
        const uint32_t r = rng() % 1000;
        std::string w;
        if (r < 600) {
          const size_t z = rng() % 1000;
          w = common[z * z / 1000 * common.size() / 1000];
        } else if (r < 940) {
          w = rare[rng() % rare.size()];
        } else if (r < 970) {
          w = accented[rng() % accented.size()];
        } else if (r < 980) {
          w = cjk[rng() % cjk.size()];
        } else if (r < 992) {
          w = std::to_string(rng() % 100000);
        } else {
          w = rare[rng() % rare.size()] + "." + rare[rng() % rare.size()] + "@enron.com";
        }
        if (k == 0) w[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(w[0])));
        doc += w;
        if (rng() % 8 == 0) doc += punct[rng() % punct.size()];
        doc += ' ';
      }
      doc += rng() % 2 ? ".\n" : ". ";
    }
    total += doc.size();
    out.push_back(std::move(doc));
  }
  return out;
}

const std::vector<std::string>& corpus() {
  static const std::vector<std::string> c = make_corpus(size_t{4} << 20);
  return c;
}

const WordPieceTokenizer& tokenizer() {
  static const WordPieceTokenizer t(train_wordpiece_vocab(corpus(), WordPieceTrainerOptions{}));
  return t;
}

int64_t corpus_bytes() {
  int64_t n = 0;
  for (const std::string& s : corpus()) n += static_cast<int64_t>(s.size());
  return n;
}

void BM_tokenize(benchmark::State& state) {
  const WordPieceTokenizer& t = tokenizer();
  int64_t ids = 0;
  for (auto _ : state)
    for (const std::string& s : corpus()) {
      std::vector<int32_t> v = t.tokenize_to_ids(s);
      ids += static_cast<int64_t>(v.size());
      benchmark::DoNotOptimize(v.data());
    }
  state.SetBytesProcessed(state.iterations() * corpus_bytes());
  state.counters["ids_per_byte"] =
      static_cast<double>(ids) / static_cast<double>(state.iterations() * corpus_bytes());
}
BENCHMARK(BM_tokenize)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_encode_batch(benchmark::State& state) {
  const WordPieceTokenizer& t = tokenizer();
  const std::vector<std::string>& c = corpus();
  for (auto _ : state)
    for (size_t i = 0; i < c.size(); i += 32) {
      std::vector<std::string> batch(c.begin() + static_cast<std::ptrdiff_t>(i),
                                     c.begin() + static_cast<std::ptrdiff_t>(std::min(c.size(), i + 32)));
      BatchEncoding b = t.encode_batch(batch, 128);
      benchmark::DoNotOptimize(b.input_ids.raw_data());
    }
  state.SetBytesProcessed(state.iterations() * corpus_bytes());
}
BENCHMARK(BM_encode_batch)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_train_vocab(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(train_wordpiece_vocab(corpus(), WordPieceTrainerOptions{}).size());
  state.SetBytesProcessed(state.iterations() * corpus_bytes());
}
BENCHMARK(BM_train_vocab)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
