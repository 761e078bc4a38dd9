// --task text end to end on a small synthetic corpus (two classes told apart by their words): the
// training loop and its files, the text checkpoint (HF names, vocabulary, classes), PTQ and QAT + the
// BERT recipe to int8 (fake quant and int8 agreeing), and the quench tool's train / eval / classify /
// quantize / distill / vocab with text.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/generator.hpp"
#include "nn/io/safetensors.hpp"
#include "tests/temp_dir.hpp"
#include "tools/cli/text_train.hpp"

using namespace quench;
using namespace quench::cli;
using quench::testing::TempDir;

namespace {

// n rows of "text,label": spam rows mix offer words into filler, ham rows meeting words; a few rows
// carry commas and quotes so the CSV reader's quoting is exercised on the way.
void write_corpus(const std::string& path, int n, uint64_t seed) {
  const char* spam[] = {"free", "money", "offer", "winner", "cash", "prize", "click", "viagra"};
  const char* ham[] = {"meeting", "project", "schedule", "report", "lunch", "review", "agenda", "team"};
  const char* filler[] = {"the", "a", "to", "and", "of", "we", "you", "this", "is", "for", "today", "now"};
  Generator g(seed);
  std::ofstream out(path);
  out << "text,label\n";
  for (int i = 0; i < n; ++i) {
    const bool is_spam = i % 2 == 0;
    std::string t;
    for (int w = 0; w < 6 + static_cast<int>(g.next_u64() % 6); ++w) {
      const bool topical = g.next_u64() % 3 == 0;
      t += std::string(w ? " " : "") +
           (topical ? (is_spam ? spam : ham)[g.next_u64() % 8] : filler[g.next_u64() % 12]);
    }
    if (i % 7 == 0) t = "\"" + t + ", really \"\"now\"\"!\"";
    out << t << "," << (is_spam ? "spam" : "ham") << "\n";
  }
}

TextTrainConfig tiny_text_config(const std::string& train_csv, const std::string& test_csv) {
  TextTrainConfig c;
  c.data.data = train_csv;
  c.data.test_data = test_csv;
  c.vocab_size = 120;
  c.max_length = 24;
  c.layers = 1;
  c.hidden = 32;
  c.heads = 2;
  c.intermediate = 64;
  c.epochs = 4;
  c.batch_size = 8;
  c.lr = 3e-3;
  c.warmup_ratio = 0.1;
  return c;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> v;
  for (std::string l; std::getline(in, l);) v.push_back(l);
  return v;
}

}  // namespace

TEST_CASE("cli text: train a BERT, its files, then PTQ and QAT + the BERT recipe to int8") {
  TempDir dir;
  write_corpus(dir.file("train.csv"), 96, 1);
  write_corpus(dir.file("test.csv"), 32, 2);
  const TextTrainConfig cfg = tiny_text_config(dir.file("train.csv"), dir.file("test.csv"));
  const TextSplits data = load_text_data(cfg.data);
  REQUIRE(data.train.size() == 96);
  CHECK(data.train.classes == std::vector<std::string>{"ham", "spam"});
  const std::string run = dir.file("run");
  TextTrainResult r = train_text(cfg, data, run);
  REQUIRE(r.status == TextTrainResult::finished);
  REQUIRE(r.epochs.size() == 4);
  CHECK(r.best_acc >= 0.9);
  CHECK(r.epochs.back().train_loss < r.epochs.front().train_loss);
  CHECK(read_lines(run + "/metrics.jsonl").size() == 4);
  CHECK(std::filesystem::exists(run + "/vocab.txt"));

  // The checkpoint: HF's names, no optimizer state in best, which last has; it reloads to the same
  // accuracy; its vocabulary is the one written beside it.
  nn::SafeTensorsFile best = nn::load_safetensors(run + "/best.safetensors");
  CHECK(best.contains("bert.encoder.layer.0.attention.self.query.weight"));
  CHECK(best.contains("classifier.bias"));
  for (const auto& n : best.names) CHECK(n.rfind("optim.", 0) != 0);
  bool has_optim = false;
  for (const auto& n : nn::load_safetensors(run + "/last.safetensors").names) has_optim |= n.rfind("optim.", 0) == 0;
  CHECK(has_optim);
  TextModel m = load_text_model(run + "/best.safetensors");
  CHECK_FALSE(m.int8);
  CHECK(m.classes == data.train.classes);
  CHECK(m.vocab == read_lines(run + "/vocab.txt"));
  CHECK(m.bert->cfg.id2label == m.classes);
  const EncodedTexts test = encode_texts(data.test, *m.tokenizer, m.max_length);
  CHECK(evaluate_text(*m.bert, test, m.pad_id(), 2).accuracy() == doctest::Approx(r.best_acc));

  SUBCASE("a Hugging Face folder: written, read back, the same logits to the bit") {
    const std::string hf = dir.file("hf");
    save_hf_bert_folder(hf, m);
    for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"})
      CHECK_MESSAGE(std::filesystem::exists(hf + "/" + f), f);
    CHECK(is_hf_bert_folder(hf));
    CHECK(is_text_checkpoint_file(hf));
    const nn::SafeTensorsFile w = nn::load_safetensors(hf + "/model.safetensors");
    CHECK(w.metadata.at("format") == "pt");  // what transformers writes and checks
    CHECK(w.contains("bert.encoder.layer.0.output.LayerNorm.weight"));
    TextModel h = load_text_model(hf);
    CHECK(h.classes == m.classes);
    CHECK(h.vocab == m.vocab);
    CHECK(h.max_length == m.max_length);
    CHECK(h.do_lower_case == m.do_lower_case);
    const EvalResult a = evaluate_text(*m.bert, test, m.pad_id(), 2, 64, true);
    const EvalResult b = evaluate_text(*h.bert, test, h.pad_id(), 2, 64, true);
    CHECK(a.logits.to_vector<float>() == b.logits.to_vector<float>());
    // A folder missing a file names it.
    std::filesystem::remove(hf + "/vocab.txt");
    CHECK_THROWS_WITH_AS(load_text_model(hf), doctest::Contains("needs vocab.txt"), Error);
    CHECK_THROWS_WITH_AS(save_hf_bert_folder(dir.file("hf8"), [&] {
                           TextModel q = m;
                           q.int8 = true;
                           return q;
                         }()),
                         doctest::Contains("no Hugging Face form"), Error);
  }
  // QAT + KD on the small teacher: batches of 8 at 1e-4.
  auto kd_options = [](int64_t epochs) {
    TextCompressOptions o;
    o.method = "qat+kd";
    o.epochs = epochs;
    o.batch_size = 8;
    o.lr = 1e-4;
    return o;
  };
  SUBCASE("PTQ") {
    TextCompressOptions o;
    o.method = "ptq";
    o.calib_batches = 4;
    o.batch_size = 8;
    TextCompressResult c = compress_text(o, m, data, dir.file("ptq"));
    CHECK(c.int8_acc >= r.best_acc - 0.1);
    TextModel q = load_text_model(c.int8_path);
    CHECK(q.int8);
    CHECK(evaluate_text(*q.bert, test, q.pad_id(), 2).accuracy() == doctest::Approx(c.int8_acc));
  }
  SUBCASE("QAT + KD: int8 within reach of the teacher, fake quant and int8 agreeing") {
    TextCompressOptions o = kd_options(2);
    TextCompressResult c = compress_text(o, m, data, dir.file("qat"));
    REQUIRE(c.epochs.size() == 2);
    CHECK(c.int8_acc >= r.best_acc - 0.1);
    CHECK(c.agreement >= 0.96);
    CHECK(read_lines(dir.file("qat/metrics.jsonl")).size() == 2);
    // The student starts as the teacher, so it classifies its training rows about as well.
    for (const auto& e : c.epochs) CHECK(e["train_acc"].get<double>() >= r.best_acc - 0.15);
    TextModel q = load_text_model(c.int8_path);
    CHECK(q.int8);
    CHECK(q.vocab == m.vocab);
    CHECK(evaluate_text(*q.bert, test, q.pad_id(), 2).accuracy() == doctest::Approx(c.int8_acc));
  }
  SUBCASE("QAT + KD from PTQ's calibration, observers frozen, the labels' loss added") {
    TextCompressOptions o = kd_options(1);
    o.qat_calib_batches = 3;
    o.freeze_observers_epoch = 0;
    o.add_origin_loss = true;
    TextCompressResult c = compress_text(o, m, data, dir.file("calib"));
    TextCompressOptions p;
    p.method = "ptq";
    p.calib_batches = 3;
    p.batch_size = 8;
    TextCompressResult ptq = compress_text(p, m, data, dir.file("calib_ptq"));
    // The activation grids are the calibration's, never moved by training: PTQ's own.
    const auto trained = load_text_model(c.int8_path).bert->state_dict();
    const auto calibrated = load_text_model(ptq.int8_path).bert->state_dict();
    int64_t compared = 0;
    for (const auto& kv : calibrated)
      if (kv.first.find("input_scale") != std::string::npos || kv.first.find("fake_quant.scale") != std::string::npos) {
        CAPTURE(kv.first);
        CHECK(trained.at(kv.first).to_vector<float>() == kv.second.to_vector<float>());
        ++compared;
      }
    const int64_t layers = m.bert->cfg.num_hidden_layers;
    CHECK(compared == 10 * layers + 2);  // each layer's 6 Linears and 4 attention operands, pooler, classifier
    // The minimized loss holds the labels' cross-entropy beside the recipe's MSE terms.
    CHECK(c.epochs[0]["train_loss"].get<double>() > c.epochs[0]["train_task_loss"].get<double>());
    CHECK(c.int8_acc >= r.best_acc - 0.1);
  }
  SUBCASE("W4A8: QAT + KD with 4-bit weights per group of 16 to packed int4 layers") {
    TextCompressOptions o = kd_options(2);
    o.weights.bits = 4;
    o.weights.group_size = 16;
    TextCompressResult c = compress_text(o, m, data, dir.file("w4"));
    CHECK(c.int8_acc >= r.best_acc - 0.15);
    CHECK(c.agreement >= 0.96);
    TextModel q = load_text_model(c.int8_path);
    int64_t int4_layers = 0;
    for (const auto& [name, mod] : q.bert->named_modules()) int4_layers += mod->type_name() == "Int4Linear";
    CHECK(int4_layers == 8);  // query, key, value, attention output, intermediate, output, pooler, classifier
    CHECK(evaluate_text(*q.bert, test, q.pad_id(), 2).accuracy() == doctest::Approx(c.int8_acc));
    // Half a byte per weight: the file is smaller than the int8 one of the same model.
    TextCompressOptions o8 = o;
    o8.weights = WeightPrecision{};
    o8.epochs = 1;
    const TextCompressResult c8 = compress_text(o8, m, data, dir.file("w8"));
    CHECK(std::filesystem::file_size(c.int8_path) < std::filesystem::file_size(c8.int8_path));
  }
}

TEST_CASE("cli text: a non-finite loss stops training before the step and keeps the last good files") {
  TempDir dir;
  write_corpus(dir.file("train.csv"), 32, 3);
  write_corpus(dir.file("test.csv"), 8, 4);
  TextTrainConfig cfg = tiny_text_config(dir.file("train.csv"), dir.file("test.csv"));
  cfg.epochs = 3;
  cfg.lr = 1e30;  // the first steps blow the weights up
  cfg.clip_grad = 0;
  cfg.warmup_ratio = 0;
  TextTrainResult r = train_text(cfg, load_text_data(cfg.data), dir.file("run"));
  REQUIRE(r.status == TextTrainResult::non_finite);
  CHECK(r.message.find("non-finite loss") != std::string::npos);
  if (std::filesystem::exists(dir.file("run/last.safetensors")))
    CHECK_NOTHROW(load_text_model(dir.file("run/last.safetensors")));
}

TEST_CASE("cli text: data errors name the file and the line; --data that is not text is refused") {
  TempDir dir;
  {
    std::ofstream(dir.file("bad.csv")) << "text,label\nhello,ham\n\"unterminated,spam\n";
  }
  TextDataOptions o;
  o.data = dir.file("bad.csv");
  CHECK_THROWS_WITH(load_text_data(o), doctest::Contains("bad.csv:3"));
  {
    std::ofstream(dir.file("one.csv")) << "text,label\na,ham\nb,ham\n";
  }
  o.data = dir.file("one.csv");
  CHECK_THROWS_WITH(load_text_data(o), doctest::Contains("a classifier needs at least 2"));
  CHECK(is_text_data("spam-assassin"));
  CHECK(is_text_data("x.jsonl"));
  CHECK_FALSE(is_text_data("images/"));
}

#ifdef QUENCH_TOOL_PATH
namespace {
int run_text_tool(const std::string& args, std::string& out) {
  REQUIRE_MESSAGE(std::filesystem::exists(QUENCH_TOOL_PATH), "build the tool first: ninja -C build tools/quench");
  FILE* p = popen((std::string(QUENCH_TOOL_PATH) + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(p);
  out.clear();
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
}  // namespace

TEST_CASE("cli tool: train / eval / classify / quantize / distill / vocab with --task text") {
  TempDir dir;
  write_corpus(dir.file("train.csv"), 96, 1);
  write_corpus(dir.file("test.csv"), 32, 2);
  const std::string data = "--data " + dir.file("train.csv") + " --test-data " + dir.file("test.csv");
  std::string out;
  REQUIRE(run_text_tool("vocab " + std::string("--data ") + dir.file("train.csv") +
                            " --vocab-size 120 --out " + dir.file("vocab.txt"),
                        out) == 0);
  CHECK(out.find("tokens learned") != std::string::npos);
  // --task is inferred from --data.
  REQUIRE(run_text_tool("train " + data + " --vocab " + dir.file("vocab.txt") +
                            " --max-length 24 --depth 1 --dim 32 --heads 2 --hidden 64 --epochs 4 -b 8 --lr 3e-3 -q "
                            "--out " + dir.file("run"),
                        out) == 0);
  const std::string best = dir.file("run/best.safetensors");
  REQUIRE(std::filesystem::exists(best));
  CHECK_FALSE(std::filesystem::exists(dir.file("run/vocab.txt")));  // given, not learned

  REQUIRE(run_text_tool("eval " + best + " --logits " + dir.file("l.npy"), out) == 0);  // its own test data
  CHECK(out.find("32 texts") != std::string::npos);
  CHECK(out.find("F1") != std::string::npos);
  CHECK(out.find("confusion matrix") != std::string::npos);

  REQUIRE(run_text_tool("classify " + best + " \"free money offer winner\" \"project meeting agenda\"", out) == 0);
  const size_t a = out.find("free money"), b = out.find("project meeting");
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  CHECK(out.find("1. spam", a) < b);
  CHECK(out.find("1. ham", b) != std::string::npos);
  REQUIRE(run_text_tool("classify " + best + " < " + dir.file("test.csv"), out) == 0);  // stdin, one per line
  CHECK(out.find("1. ") != std::string::npos);

  REQUIRE(run_text_tool("quantize " + best + " --calib-batches 4 -b 8 -q --out " + dir.file("ptq/int8.safetensors"),
                        out) == 0);
  // The three embedding tables are int8 codes too, unless a rule keeps them FP32.
  auto tables = [&](const std::string& file) {
    const nn::Metadata md = nn::load_safetensors(file).metadata;
    const auto it = md.find("quantized_embedding");
    return it == md.end() ? std::string("(none)") : it->second;
  };
  const std::string t8 = tables(dir.file("ptq/int8.safetensors"));
  CHECK(t8.find("bert.embeddings.word_embeddings:") != std::string::npos);
  CHECK(t8.find("bert.embeddings.position_embeddings:") != std::string::npos);
  CHECK(t8.find("bert.embeddings.token_type_embeddings:2:32:-1:8:0;") != std::string::npos);
  REQUIRE(run_text_tool("quantize " + best + " --calib-batches 4 -b 8 -q --precision type:Embedding=fp32 --out " +
                            dir.file("ptq_fp32_tables/int8.safetensors"), out) == 0);
  CHECK(tables(dir.file("ptq_fp32_tables/int8.safetensors")) == "(none)");
  REQUIRE(run_text_tool("distill --teacher " + best + " --epochs 1 -b 8 --lr 1e-4 -q --out " + dir.file("kd"), out) ==
          0);
  CHECK(out.find("agree on") != std::string::npos);
  REQUIRE(run_text_tool("eval " + dir.file("kd/int8.safetensors"), out) == 0);
  CHECK(out.find("int8 BERT") != std::string::npos);
  CHECK(out.find("32 texts") != std::string::npos);  // the teacher's test data, recorded in the recipe

  // W4A8: 4-bit weights through quantize and distill, and the report's low-bit rows beside int8's.
  REQUIRE(run_text_tool("quantize " + best + " --weight-bits 4 --calib-batches 4 -b 8 -q --out " +
                            dir.file("ptq4/int8.safetensors"), out) == 0);
  CHECK(tables(dir.file("ptq4/int8.safetensors")).find("bert.embeddings.word_embeddings:") != std::string::npos);
  CHECK(tables(dir.file("ptq4/int8.safetensors")).find(":4:0;") != std::string::npos);
  REQUIRE(run_text_tool("distill --teacher " + best + " --no-kd --weight-bits 4 --epochs 1 -b 8 --lr 1e-4 -q --out " +
                            dir.file("qat4"), out) == 0);
  REQUIRE(run_text_tool("distill --teacher " + best + " --weight-bits 4 --epochs 1 -b 8 --lr 1e-4 -q --out " +
                            dir.file("kd4"), out) == 0);
  REQUIRE(run_text_tool("report --teacher " + best + " --ptq " + dir.file("ptq/int8.safetensors") + " --qat " +
                            dir.file("kd") + " --qat-kd " + dir.file("kd") + " --low-bit-ptq " +
                            dir.file("ptq4/int8.safetensors") + " --low-bit-qat " + dir.file("qat4") +
                            " --low-bit-qat-kd " + dir.file("kd4") + " --out " + dir.file("report"), out) == 0);
  for (const char* row : {"| FP32 teacher |", "| PTQ int8 |", "| QAT+KD int8 |", "| PTQ W4A8 |", "| QAT W4A8 |",
                          "| QAT+KD W4A8 |", "Low-bit QAT+KD: the fake-quant student",
                          "| epoch | QAT int8 | QAT+KD int8 | QAT W4A8 | QAT+KD W4A8 |"})
    CHECK_MESSAGE(out.find(row) != std::string::npos, std::string(row));
  CHECK(out.find("threads) | one text |") != std::string::npos);
  REQUIRE(std::filesystem::exists(dir.file("report/report.json")));
  {
    std::ifstream f(dir.file("report/report.json"));
    const nlohmann::json j = nlohmann::json::parse(f);
    REQUIRE(j["models"].size() == 7);
    for (const auto& m : j["models"]) CHECK(m["single_ms"].get<double>() > 0);
    CHECK(j["single_tokens"].get<int64_t>() > 0);
  }

  // export: a Hugging Face folder that the tool itself reads back (eval, classify).
  REQUIRE(run_text_tool("export " + best + " --out " + dir.file("hf"), out) == 0);
  REQUIRE(run_text_tool("eval " + dir.file("hf") + " " + data, out) == 0);
  CHECK(out.find("32 texts") != std::string::npos);
  CHECK(run_text_tool("export " + dir.file("kd/int8.safetensors") + " --out " + dir.file("hf8"), out) != 0);
  CHECK(out.find("no Hugging Face form") != std::string::npos);

  // A text checkpoint with --task image, and a student resize, are refused with the reason.
  CHECK(run_text_tool("eval " + best + " --task image", out) != 0);
  CHECK(out.find("drop --task image") != std::string::npos);
  CHECK(run_text_tool("distill --teacher " + best + " --dim 16 -q --out " + dir.file("kd2"), out) != 0);
  CHECK(out.find("copy of the teacher") != std::string::npos);
}
#endif
