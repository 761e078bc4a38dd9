// `--task text` in the commands: each image command registers these options too and hands over to
// the text path when the task is text (asked for, or inferred from --data or the checkpoint). Shared
// flags keep their meaning (--epochs, --batch-size, --lr, --weight-decay, --seed, --out, --limit-*,
// --test-split, --clip-grad); the model's sizes reuse the ViT flags: --dim is BERT's hidden_size,
// --depth its num_hidden_layers, --heads its num_attention_heads, --hidden its intermediate_size.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "tools/cli/compress.hpp"
#include "tools/cli/config.hpp"

namespace quench::cli {

// The text options of a command (those that apply to it).
struct TextArgs {
  std::string task = "auto";  // "auto", "image" or "text"
  std::string data;           // "spam-assassin" or a .csv / .tsv / .jsonl table
  std::string test_data;
  std::string vocab;
  int64_t vocab_size = 8000, max_length = 128;
  double warmup_ratio = 0.1, dropout = 0.1;
  bool no_lower_case = false, keep_headers = false;
  int64_t calib_batches = 0;  // distill: calibrate the student's observers first
  bool add_origin_loss = false;  // distill: the labels' cross-entropy beside the recipe's MSE terms
  std::string method;  // distill: "qat+kd" (default) or "qat" (--no-kd)
};

// Registers --task and the text options of command `cmd` ("train", "eval", "classify", "quantize",
// "distill") on `sub`, in the group "Text (--task text)".
void add_text_options(CLI::App* sub, const std::string& cmd, TextArgs& t);

// train: --task text, or --data naming text data.
bool is_text_train(const TextArgs& t);
// eval / classify / quantize / distill: --task text, or a checkpoint whose metadata says BERT. With
// --task image a text checkpoint is an error, and the reverse.
bool is_text_run(const TextArgs& t, const std::string& checkpoint);

// The text runs. `sub` is the parsed subcommand (its shared flags are read from it when given), `image`
// the image command's configuration those flags were parsed into.
int run_text_train(const CLI::App& sub, const TrainConfig& image, const TextArgs& t, const std::string& out,
                   bool quiet);
int run_text_eval(const CLI::App& sub, const std::string& checkpoint, const TextArgs& t, int64_t batch_size,
                  int64_t limit, const std::string& split, const std::string& logits_npy);
int run_text_classify(const std::string& checkpoint, const std::vector<std::string>& texts, int64_t top_k);
int run_text_compress(const CLI::App& sub, const std::string& method, const std::string& checkpoint,
                      const TextArgs& t, const WeightPrecision& weights, const std::string& out, bool quiet);

// report --task text: the teacher and its three int8 models (PTQ file, QAT and QAT + KD folders) on
// the teacher's test split: accuracy, F1, file size, batch-32 inference time; report.md / report.json.
struct LowBitRows {  // optional: a low-bit PTQ file and QAT / QAT + KD folders (e.g. W4A8)
  std::string ptq, qat_dir, qat_kd_dir;
};
int run_text_report(const std::string& teacher, const std::string& ptq, const std::string& qat_dir,
                    const std::string& qat_kd_dir, const LowBitRows& low_bit, const std::string& out, int threads,
                    int64_t limit_test);

struct Command;
// `quench vocab`: learns a WordPiece vocabulary from a corpus and writes vocab.txt.
Command add_vocab_command(CLI::App& app);
// quench export: an FP32 text checkpoint as a Hugging Face folder (config.json, model.safetensors,
// vocab.txt, tokenizer_config.json) for transformers or the PyTorch reference.
Command add_export_command(CLI::App& app);

}  // namespace quench::cli
