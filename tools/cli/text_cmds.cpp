#include "tools/cli/text_cmds.hpp"

#include "dist/process_group.hpp"

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>

#include "dist/process_group.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/text/vocab_trainer.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/npy.hpp"
#include "tools/cli/text_train.hpp"

namespace quench::cli {

namespace {

volatile std::sig_atomic_t g_text_stop = 0;
extern "C" void on_text_sigint(int) {
  g_text_stop = 1;
  std::signal(SIGINT, SIG_DFL);
}

// A shared flag's value when the user gave it, else the text default.
template <class T>
T given(const CLI::App& sub, const char* name, T text_default) {
  const CLI::Option* o = sub.get_option_no_throw(name);
  return o && o->count() > 0 ? o->as<T>() : text_default;
}

bool was_given(const CLI::App& sub, const char* name) {
  const CLI::Option* o = sub.get_option_no_throw(name);
  return o && o->count() > 0;
}

TextHooks make_hooks(ProgressBar* bar) {
  TextHooks h;
  h.progress = bar;
  h.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  h.stop_requested = [] { return g_text_stop != 0; };
  return h;
}

// The data a text checkpoint was trained on (the "train" record of a teacher, the "recipe" record of
// a quantized or distilled model), unless --data / --test-data say.
TextDataOptions data_for(const CLI::App& sub, const TextModel& m, const TextArgs& t) {
  TextDataOptions d;
  for (const char* record : {"train", "recipe"}) {
    auto it = m.metadata.find(record);
    if (it == m.metadata.end()) continue;
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    if (!j.is_discarded() && j.contains("data")) {
      d = text_data_options_from_json(j.at("data"));
      break;
    }
  }
  if (!t.data.empty()) {
    d = TextDataOptions{};
    d.data = t.data;
    d.test_data = t.test_data;
  }
  d.limit_train = given<int64_t>(sub, "--limit-train", 0);
  d.limit_test = given<int64_t>(sub, "--limit-test", given<int64_t>(sub, "--limit", 0));
  return d;
}

}  // namespace

void add_text_options(CLI::App* sub, const std::string& cmd, TextArgs& t) {
  const char* G = "Text (--task text)";
  sub->add_option("--task", t.task,
                  "image or text (auto: text when --data names text data or the checkpoint is a BERT)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "image", "text"}))
      ->group(G);
  if (cmd == "classify") return;
  sub->add_option("--data", t.data,
                  "text data: spam-assassin (the SpamAssassin corpus, tools/setup.sh --text) or a .csv / .tsv / "
                  ".jsonl table with columns text[, text_b], label")
      ->group(G);
  sub->add_option("--test-data", t.test_data, "a test table (default: a stratified --test-split hold-out)")
      ->group(G);
  if (cmd == "distill")
    sub->add_option("--calib-batches", t.calib_batches,
                    "calibrate the student's observers on N training batches first, as quantize does (0: the "
                    "observers start from the first step's batch)")
        ->capture_default_str()
        ->group(G);
  if (cmd == "distill")
    sub->add_flag("--add-origin-loss", t.add_origin_loss,
                  "also train on the labels' cross-entropy, added to the recipe's MSE terms (INC's add_origin_loss)")
        ->group(G);
  if (cmd != "train") return;
  sub->add_option("--vocab", t.vocab, "WordPiece vocab.txt (default: learn one from the training texts)")
      ->check(CLI::ExistingFile)
      ->group(G);
  sub->add_option("--vocab-size", t.vocab_size, "size of a learned vocabulary")->capture_default_str()->group(G);
  sub->add_option("--max-length", t.max_length, "tokens per text, [CLS] and [SEP] included (truncation)")
      ->capture_default_str()
      ->group(G);
  sub->add_option("--warmup-ratio", t.warmup_ratio, "linear warmup over this share of the steps")
      ->capture_default_str()
      ->group(G);
  sub->add_option("--dropout", t.dropout, "BERT's hidden and attention dropout")->capture_default_str()->group(G);
  sub->add_flag("--no-lower-case", t.no_lower_case, "keep case and accents (a cased vocabulary)")->group(G);
  sub->add_flag("--keep-headers", t.keep_headers, "SpamAssassin: keep each message's header block")->group(G);
}

bool is_text_train(const TextArgs& t) {
  if (t.task == "text") return true;
  if (t.task == "image") {
    QUENCH_CHECK(t.data.empty(), "--data is text data; drop --task image");
    return false;
  }
  if (!t.data.empty()) {
    QUENCH_CHECK(is_text_data(t.data), "--data ", t.data,
                 ": not text data (spam-assassin, or a file ending in .csv, .tsv or .jsonl); image folders go "
                 "to --data-dir");
    return true;
  }
  return false;
}

bool is_text_run(const TextArgs& t, const std::string& checkpoint) {
  const bool text = is_text_checkpoint_file(checkpoint);
  QUENCH_CHECK(!(t.task == "image" && text), checkpoint, " is a text model (BERT); drop --task image");
  QUENCH_CHECK(!(t.task == "text" && !text), checkpoint, " is not a text model; drop --task text");
  return text;
}

int run_text_train(const CLI::App& sub, const TrainConfig& image, const TextArgs& t, const std::string& out,
                   bool quiet) {
  QUENCH_CHECK(!was_given(sub, "--resume"), "train --task text: --resume is for image runs; start a new run");
  TextTrainConfig c;
  c.data.data = t.data.empty() ? "spam-assassin" : t.data;
  c.data.test_data = t.test_data;
  c.data.test_split = given(sub, "--test-split", c.data.test_split);
  c.data.strip_headers = !t.keep_headers;
  c.data.limit_train = given(sub, "--limit-train", c.data.limit_train);
  c.data.limit_test = given(sub, "--limit-test", c.data.limit_test);
  c.vocab = t.vocab;
  c.vocab_size = t.vocab_size;
  c.max_length = t.max_length;
  c.do_lower_case = !t.no_lower_case;
  c.warmup_ratio = t.warmup_ratio;
  c.dropout = t.dropout;
  c.hidden = given(sub, "--dim", c.hidden);
  c.layers = given(sub, "--depth", c.layers);
  c.heads = given(sub, "--heads", c.heads);
  c.intermediate = given(sub, "--hidden", c.intermediate);
  c.epochs = given(sub, "--epochs", c.epochs);
  c.batch_size = given(sub, "--batch-size", c.batch_size);
  c.lr = given(sub, "--lr", c.lr);
  c.weight_decay = given(sub, "--weight-decay", c.weight_decay);
  c.clip_grad = given(sub, "--clip-grad", c.clip_grad);
  c.seed = given(sub, "--seed", static_cast<uint64_t>(image.seed));
  TextSplits data = load_text_data(c.data);
  // Under mpirun every process trains its shard; rank 0 alone draws the bar and writes.
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  ProgressBar bar(quiet || !pg.is_main() ? nullptr : stderr, ProgressBar::stderr_is_tty());
  bar.message("quench train --task text: BERT layers " + std::to_string(c.layers) + " hidden " +
              std::to_string(c.hidden) + " heads " + std::to_string(c.heads) + " intermediate " +
              std::to_string(c.intermediate) + " max length " + std::to_string(c.max_length) + "; " +
              std::to_string(data.train.size()) + " train / " + std::to_string(data.test.size()) + " test texts (" +
              c.data.data + "); " +
              (pg.distributed() ? std::to_string(pg.size()) + " processes x " : "") +
              std::to_string(get_num_threads()) + " threads; writing " + out);
  std::signal(SIGINT, on_text_sigint);
  TextHooks hooks = make_hooks(&bar);
  hooks.process_group = &pg;
  TextTrainResult r = train_text(c, data, out, hooks);
  std::signal(SIGINT, SIG_DFL);
  switch (r.status) {
    case TextTrainResult::finished:
      bar.message(r.message);
      return 0;
    case TextTrainResult::interrupted:
      return 130;
    case TextTrainResult::non_finite:
      return 2;
  }
  return 1;
}

int run_text_eval(const CLI::App& sub, const std::string& checkpoint, const TextArgs& t, int64_t batch_size,
                  int64_t limit, const std::string& split, const std::string& logits_npy) {
  TextModel m = load_text_model(checkpoint);
  TextDataOptions d = data_for(sub, m, t);
  TextSplits data = load_text_data(d);
  nn::LabeledTexts& part = split == "train" ? data.train : data.test;
  if (limit > 0) part = stratified_sample(part, limit, d.split_seed + 2);
  QUENCH_CHECK(part.classes == m.classes, "eval --task text: the classes of ", d.data, " differ from ", checkpoint,
               "'s");
  EncodedTexts enc = encode_texts(part, *m.tokenizer, m.max_length);
  EvalResult r = evaluate_text(*m.bert, enc, m.pad_id(), m.bert->cfg.num_labels, batch_size, !logits_npy.empty());
  std::printf("%s (%s BERT): %lld texts of %s (%s)\nF1 %.4f\n%s", checkpoint.c_str(), m.int8 ? "int8" : "fp32",
              static_cast<long long>(r.n), d.data.c_str(), split.c_str(), r.f1(), format_report(r, m.classes).c_str());
  if (!logits_npy.empty()) {
    write_npy(logits_npy, r.logits);
    std::printf("logits [%lld, %lld] float32 written to %s\n", static_cast<long long>(r.n),
                static_cast<long long>(m.bert->cfg.num_labels), logits_npy.c_str());
  }
  return 0;
}

int run_text_classify(const std::string& checkpoint, const std::vector<std::string>& args, int64_t top_k) {
  TextModel m = load_text_model(checkpoint);
  std::vector<std::string> texts;
  for (const auto& a : args)
    if (a != "-") texts.push_back(a);
  if (args.empty() || std::find(args.begin(), args.end(), "-") != args.end())
    for (std::string line; std::getline(std::cin, line);)
      if (!line.empty()) texts.push_back(line);
  QUENCH_CHECK(!texts.empty(), "classify: no texts (give them as arguments, or one per line on stdin)");
  nn::LabeledTexts lt;
  lt.texts = texts;
  lt.labels.assign(texts.size(), 0);
  lt.classes = m.classes;
  EncodedTexts enc = encode_texts(lt, *m.tokenizer, m.max_length);
  const int64_t C = m.bert->cfg.num_labels, k = std::clamp<int64_t>(top_k, 1, C);
  NoGradGuard ng;
  for (int64_t start = 0; start < enc.size(); start += 64) {
    std::vector<int64_t> rows;
    for (int64_t i = start; i < std::min<int64_t>(start + 64, enc.size()); ++i) rows.push_back(i);
    Tensor probs = softmax((*m.bert)(text_batch(enc, rows, m.pad_id())), 1).contiguous();
    for (size_t r = 0; r < rows.size(); ++r) {
      const float* p = probs.data_ptr<float>() + r * C;
      std::vector<int64_t> order(C);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return p[x] > p[y]; });
      const std::string& text = texts[rows[r]];
      std::printf("%s\n", (text.size() > 70 ? text.substr(0, 67) + "..." : text).c_str());
      for (int64_t j = 0; j < k; ++j)
        std::printf("  %d. %-20s %6.2f%%  (class %lld)\n", static_cast<int>(j + 1), m.classes[order[j]].c_str(),
                    100.0 * p[order[j]], static_cast<long long>(order[j]));
    }
  }
  return 0;
}

int run_text_compress(const CLI::App& sub, const std::string& method, const std::string& checkpoint,
                      const TextArgs& t, const WeightPrecision& weights, const std::string& out, bool quiet) {
  TextModel teacher = load_text_model(checkpoint);
  TextCompressOptions o;
  o.method = method;
  if (method == "ptq")
    o.calib_batches = given(sub, "--calib-batches", o.calib_batches);
  else
    o.qat_calib_batches = given(sub, "--calib-batches", o.qat_calib_batches);
  o.epochs = given(sub, "--epochs", o.epochs);
  o.batch_size = given(sub, "--batch-size", o.batch_size);
  o.lr = given(sub, "--lr", o.lr);
  o.weight_decay = given(sub, "--weight-decay", o.weight_decay);
  o.hidden_weight = given(sub, "--layer-weight", o.hidden_weight);
  o.attn_weight = given(sub, "--attn-weight", o.attn_weight);
  o.freeze_observers_epoch = given(sub, "--freeze-observers-epoch", o.freeze_observers_epoch);
  o.seed = given(sub, "--seed", o.seed);
  o.add_origin_loss = t.add_origin_loss;
  QUENCH_CHECK(!was_given(sub, "--dim") && !was_given(sub, "--depth") && !was_given(sub, "--heads") &&
                   !was_given(sub, "--hidden"),
               method, " --task text: the student is a copy of the teacher; drop --dim / --depth / --heads / --hidden");
  o.weights = weights;
  o.data = data_for(sub, teacher, t);
  TextSplits data = load_text_data(o.data);
  QUENCH_CHECK(data.train.classes == teacher.classes, checkpoint, ": the data's classes differ from the model's");
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  ProgressBar bar(quiet || !pg.is_main() ? nullptr : stderr, ProgressBar::stderr_is_tty());
  bar.message("quench " + std::string(method == "ptq" ? "quantize" : "distill") + " --task text: " + method +
              " of " + checkpoint + "; " + std::to_string(data.train.size()) + " train / " +
              std::to_string(data.test.size()) + " test texts; writing " + out);
  TextHooks hooks = make_hooks(&bar);
  hooks.process_group = &pg;
  TextCompressResult r = compress_text(o, teacher, data, out, hooks);
  char buf[320];
  std::snprintf(buf, sizeof buf, "%s: FP32 test accuracy %.2f%% -> int8 %.2f%% (F1 %.4f)%s; saved %s",
                method.c_str(), 100 * r.fp32_acc, 100 * r.int8_acc, r.int8_f1,
                r.agreement >= 0 ? (", fake-quant and int8 agree on " + std::to_string(100 * r.agreement).substr(0, 6) +
                                    "% of the test texts").c_str()
                                 : "",
                r.int8_path.c_str());
  bar.message(buf);
  if (quiet && pg.is_main()) std::printf("%s\n", buf);
  return 0;
}

namespace {

// Median of `reps` timed runs of one padded batch of the test texts `r` (after a warm-up run).
double time_batch_ms(nn::Module& model, const EncodedTexts& data, int32_t pad, const std::vector<int64_t>& r,
                     int reps) {
  const tensor_list x = text_batch(data, r, pad);
  NoGradGuard ng;
  model(x);
  std::vector<double> ms;
  for (int k = 0; k < reps; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    model(x);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The timed inputs: the first 32 test texts, and the longest one alone (a single request).
std::vector<int64_t> first_rows(const EncodedTexts& data, int64_t n) {
  std::vector<int64_t> r;
  for (int64_t i = 0; i < std::min<int64_t>(n, data.size()); ++i) r.push_back(i);
  return r;
}
std::vector<int64_t> longest_row(const EncodedTexts& data) {
  int64_t best = 0;
  for (int64_t i = 1; i < data.size(); ++i)
    if (data.ids[i].size() > data.ids[best].size()) best = i;
  return {best};
}

// Every line of a metrics.jsonl (those that parse).
std::vector<nlohmann::json> json_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> v;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) v.push_back(std::move(j));
  }
  return v;
}

nlohmann::json last_line(const std::string& path) {
  std::vector<nlohmann::json> v = json_lines(path);
  return v.empty() ? nlohmann::json() : v.back();
}

}  // namespace

int run_text_report(const std::string& teacher_path, const std::string& ptq, const std::string& qat_dir,
                    const std::string& qat_kd_dir, const LowBitRows& low_bit, const std::string& out, int threads,
                    int64_t limit_test) {
  set_num_threads(threads);
  TextModel teacher = load_text_model(teacher_path);
  QUENCH_CHECK(!teacher.int8, "report --task text: ", teacher_path, " must be the FP32 teacher");
  TextArgs none;
  CLI::App dummy;
  TextDataOptions d = data_for(dummy, teacher, none);
  d.limit_test = limit_test;
  const TextSplits data = load_text_data(d);
  const EncodedTexts test = encode_texts(data.test, *teacher.tokenizer, teacher.max_length);
  struct Row {
    std::string method, path;  // the name: method and the model's precision
  };
  std::vector<Row> rows = {{"FP32 teacher", teacher_path},
                           {"PTQ", ptq},
                           {"QAT", qat_dir + "/int8.safetensors"},
                           {"QAT+KD", qat_kd_dir + "/int8.safetensors"}};
  if (!low_bit.ptq.empty()) rows.push_back({"PTQ", low_bit.ptq});
  if (!low_bit.qat_dir.empty()) rows.push_back({"QAT", low_bit.qat_dir + "/int8.safetensors"});
  if (!low_bit.qat_kd_dir.empty()) rows.push_back({"QAT+KD", low_bit.qat_kd_dir + "/int8.safetensors"});
  nlohmann::json j = {{"task", "text"}, {"data", d.data}, {"test_texts", data.test.size()}, {"threads", threads},
                      {"infer_batch", 32}, {"single_tokens", test.size() ? test.ids[longest_row(test)[0]].size() : 0},
                      {"models", nlohmann::json::array()}};
  // Per epoch, the labels' cross-entropy of every QAT run (with KD too: what the student learned of
  // the task, not the loss it minimized) and its integer model's test accuracy.
  std::vector<std::pair<std::string, std::vector<nlohmann::json>>> curves;
  std::string md = "| model | test accuracy | F1 | size | inference (batch 32, " + std::to_string(threads) +
                   " threads) | one text |\n|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    TextModel m = r.path == teacher_path ? teacher : load_text_model(r.path);
    QUENCH_CHECK(m.int8 == (r.path != teacher_path), "report --task text: ", r.path,
                 r.path == teacher_path ? " is not an FP32 model" : " is not an int8 model");
    QUENCH_CHECK(m.vocab == teacher.vocab, "report --task text: ", r.path, " has another vocabulary than the teacher");
    EvalResult e = evaluate_text(*m.bert, test, m.pad_id(), m.bert->cfg.num_labels);
    const double ms = time_batch_ms(*m.bert, test, m.pad_id(), first_rows(test, 32), 5);
    const double ms1 = time_batch_ms(*m.bert, test, m.pad_id(), longest_row(test), 21);
    const double mib = static_cast<double>(std::filesystem::file_size(r.path)) / 1048576.0;
    const std::string name = m.int8 ? r.method + " " + precision_label(recipe_of(m.metadata, r.path)) : r.method;
    if (r.method == "QAT" || r.method == "QAT+KD") {
      std::vector<nlohmann::json> lines =
          json_lines(std::filesystem::path(r.path).parent_path().string() + "/metrics.jsonl");
      if (!lines.empty()) curves.emplace_back(name, std::move(lines));
    }
    j["models"].push_back({{"name", name}, {"path", r.path}, {"accuracy", e.accuracy()}, {"f1", e.f1()},
                           {"size_mib", mib}, {"infer_ms", ms}, {"single_ms", ms1}});
    char buf[256];
    std::snprintf(buf, sizeof buf, "| %s | %.2f%% | %.4f | %.2f MiB | %.1f ms | %.2f ms |\n", name.c_str(),
                  100 * e.accuracy(), e.f1(), mib, ms, ms1);
    md += buf;
  }
  md += "\nInference: one forward of the first 32 test texts, median of 5; one text: the longest test text alone (" +
        j["single_tokens"].dump() + " tokens), median of 21.\n";
  for (const auto& [key, dir] : {std::pair<std::string, std::string>{"qat_kd", qat_kd_dir}, {"low_bit_qat_kd", low_bit.qat_kd_dir}}) {
    if (dir.empty()) continue;
    nlohmann::json kd = last_line(dir + "/metrics.jsonl");
    if (!kd.is_object() || !kd.contains("fq_int8_agreement")) continue;
    j[key + "_fq_int8_agreement"] = kd["fq_int8_agreement"];
    md += "\n" + std::string(key == "qat_kd" ? "QAT+KD" : "Low-bit QAT+KD") +
          ": the fake-quant student and its integer conversion predict the same class for " +
          std::to_string(100 * kd["fq_int8_agreement"].get<double>()).substr(0, 6) + "% of the test texts.\n";
  }
  if (!curves.empty()) {
    md += "\nPer epoch: the training set's cross-entropy on the labels | the integer model's test accuracy.\n\n| epoch |";
    std::string rule = "|---|";
    size_t epochs = 0;
    for (const auto& [name, lines] : curves) {
      md += " " + name + " |";
      rule += "---|";
      epochs = std::max(epochs, lines.size());
    }
    md += "\n" + rule + "\n";
    for (size_t e = 0; e < epochs; ++e) {
      md += "| " + std::to_string(e + 1) + " |";
      for (const auto& [name, lines] : curves) {
        char cell[64] = " - |";
        if (e < lines.size() && lines[e].contains("train_task_loss"))
          std::snprintf(cell, sizeof cell, " %.4f \\| %.2f%% |", lines[e]["train_task_loss"].get<double>(),
                        100 * lines[e].value("int8_test_acc", 0.0));
        md += cell;
      }
      md += "\n";
    }
    nlohmann::json jc = nlohmann::json::object();
    for (const auto& [name, lines] : curves) jc[name] = lines;
    j["curves"] = jc;
  }
  std::filesystem::create_directories(out);
  std::ofstream(out + "/report.json") << j.dump(2) << "\n";
  std::ofstream(out + "/report.md") << "# quench report: text (" << d.data << ", " << data.test.size()
                                    << " test texts)\n\n" << md;
  std::printf("%swritten: %s/report.json, %s/report.md\n", md.c_str(), out.c_str(), out.c_str());
  return 0;
}

Command add_vocab_command(CLI::App& app) {
  struct Args {
    std::string data = "spam-assassin", out = "vocab.txt";
    nn::WordPieceTrainerOptions o;
    bool no_lower_case = false, keep_headers = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("vocab", "Learn a WordPiece vocabulary (vocab.txt) from a text corpus");
  sub->add_option("--data", a->data, "spam-assassin (its training split) or a .csv / .tsv / .jsonl table")
      ->capture_default_str();
  sub->add_option("--vocab-size", a->o.vocab_size, "tokens in the vocabulary, special tokens included")
      ->capture_default_str();
  sub->add_option("--min-frequency", a->o.min_frequency, "least count of a merged pair")->capture_default_str();
  sub->add_flag("--no-lower-case", a->no_lower_case, "keep case and accents");
  sub->add_flag("--keep-headers", a->keep_headers, "SpamAssassin: keep each message's header block");
  sub->add_option("--out,-o", a->out, "vocab.txt to write")->capture_default_str();
  return {sub, [a] {
            TextDataOptions d;
            d.data = a->data;
            d.strip_headers = !a->keep_headers;
            TextSplits s = load_text_data(d);
            nn::WordPieceTrainerOptions o = a->o;
            o.lowercase = !a->no_lower_case;
            std::vector<std::string> vocab = nn::train_wordpiece_vocab(s.train.texts, o);
            nn::WordPieceTokenizer(vocab).save_vocab(a->out);  // checks the specials, writes atomically
            std::printf("vocab: %zu tokens learned from %lld training texts of %s -> %s\n", vocab.size(),
                        static_cast<long long>(s.train.size()), a->data.c_str(), a->out.c_str());
            return 0;
          }};
}

Command add_export_command(CLI::App& app) {
  struct Args {
    std::string checkpoint, out, format = "hf";
  };
  auto a = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("export", "Write an FP32 BERT checkpoint as a Hugging Face model folder");
  sub->add_option("checkpoint", a->checkpoint, "FP32 text checkpoint (quench train --task text's best.safetensors)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--out,-o", a->out, "folder to write (config.json, model.safetensors, vocab.txt, "
                                      "tokenizer_config.json)")
      ->required();
  sub->add_option("--format", a->format, "hf: transformers' save_pretrained layout")
      ->capture_default_str()
      ->check(CLI::IsMember({"hf"}));
  return {sub, [a] {
            QUENCH_CHECK(is_text_checkpoint_file(a->checkpoint), "export: ", a->checkpoint,
                         " is not a text model; image checkpoints already carry the PyTorch reference's names "
                         "(tests/golden/vit_reference.py loads them as they are)");
            const TextModel m = load_text_model(a->checkpoint);
            save_hf_bert_folder(a->out, m);
            std::printf("export: %s -> %s (config.json, model.safetensors, vocab.txt, tokenizer_config.json)\n",
                        a->checkpoint.c_str(), a->out.c_str());
            return 0;
          }};
}

}  // namespace quench::cli
