// `quench quantize FP32_CHECKPOINT`: post-training quantization (calibrate observers on N training
// batches, convert), saves the int8 checkpoint and prints its test accuracy next to the FP32 one.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "kernels/parallel.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/evaluate.hpp"
#include "tools/cli/text_cmds.hpp"
#include "tools/cli/text_model.hpp"

namespace quench::cli {

namespace {

struct QuantizeArgs {
  std::string checkpoint, out = "runs/quantize/int8.safetensors", fashion_root = "/usr/share/datasets/fashion-mnist/";
  PtqOptions ptq;
  int64_t limit_test = 0, limit_train = 0;
  int threads = 0;
  bool quiet = false;
  TextArgs text;
  CLI::App* sub = nullptr;
};

int run_quantize(const QuantizeArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (is_text_run(a.text, a.checkpoint)) {
    const std::string out = a.out == "runs/quantize/int8.safetensors" ? "runs/quantize" : std::filesystem::path(a.out).parent_path().string();
    return run_text_compress(*a.sub, "ptq", a.checkpoint, a.text, a.ptq.weights, out.empty() ? "." : out, a.quiet);
  }
  LoadedModel fp32 = load_model(a.checkpoint);
  QUENCH_CHECK(!fp32.int8, "quantize: ", a.checkpoint, " is already an int8 checkpoint");
  TrainConfig cfg;
  cfg.model = fp32.vit->cfg;
  cfg.fashion_root = a.fashion_root;
  cfg.limit_test = a.limit_test;
  DataSplits data = load_data(cfg);
  auto int8 = ptq_quantize(*fp32.vit, data.train, fp32.preprocess, a.ptq);
  if (auto dir = std::filesystem::path(a.out).parent_path(); !dir.empty()) std::filesystem::create_directories(dir);
  nlohmann::json recipe = {{"method", "PTQ"},
                           {"from", a.checkpoint},
                           {"calib_batches", a.ptq.calib_batches},
                           {"batch_size", a.ptq.batch_size},
                           {"activation_observer", a.ptq.observer},
                           {"weight_observer", "per-channel min/max"},
                           {"weights", a.ptq.weights.to_json()}};
  save_int8_model(a.out, *int8, fp32.preprocess, fp32.classes, recipe);
  EvalResult e32 = evaluate(*fp32.vit, data.test, fp32.preprocess, cfg.model.classes);
  EvalResult e8 = evaluate(*int8, data.test, fp32.preprocess, cfg.model.classes);
  std::printf("PTQ (%lld calibration batches of %lld, %s observer) -> %s\n",
              static_cast<long long>(a.ptq.calib_batches), static_cast<long long>(a.ptq.batch_size),
              a.ptq.observer.c_str(), a.out.c_str());
  std::printf("test accuracy on %lld images: FP32 %.2f%%  int8 %.2f%%  (size %.2f MiB -> %.2f MiB)\n",
              static_cast<long long>(e32.n), 100 * e32.accuracy(), 100 * e8.accuracy(),
              std::filesystem::file_size(a.checkpoint) / 1048576.0, std::filesystem::file_size(a.out) / 1048576.0);
  return 0;
}

}  // namespace

Command add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand("quantize", "Post-training quantization of an FP32 checkpoint to int8");
  sub->add_option("checkpoint", a->checkpoint,
                  "FP32 checkpoint (quench train's best.safetensors, or a Hugging Face BERT folder)")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--calib-batches", a->ptq.calib_batches, "calibration batches of training images")
      ->capture_default_str();
  sub->add_option("--batch-size,-b", a->ptq.batch_size, "calibration batch size")->capture_default_str();
  sub->add_option("--observer", a->ptq.observer, "activation observer")
      ->capture_default_str()
      ->check(CLI::IsMember({"histogram", "minmax"}));
  sub->add_option("--out,-o", a->out, "int8 checkpoint to write")->capture_default_str();
  sub->add_option("--fashion-root", a->fashion_root, "Fashion-MNIST folder")->capture_default_str();
  sub->add_option("--limit-test", a->limit_test, "evaluate on the first N test images only (0: all)");
  sub->add_option("--seed", a->ptq.seed, "order of the calibration images")->capture_default_str();
  add_weight_precision_options(sub, a->ptq.weights);
  sub->add_option("--threads,-j", a->threads, "worker threads (0: all cores)");
  sub->add_option("--limit-train", a->limit_train, "text: calibrate on a stratified sample of N texts (0: all)");
  sub->add_flag("--quiet,-q", a->quiet, "no progress messages");
  add_text_options(sub, "quantize", a->text);
  a->sub = sub;
  return {sub, [a] { return run_quantize(*a); }};
}

void add_weight_precision_options(CLI::App* sub, WeightPrecision& w) {
  const char* g = "Weight precision";
  sub->add_option("--weight-bits", w.bits,
                  "weight bits, 2..8, symmetric per output channel (4 or fewer: packed int4 layers, W4A8)")
      ->capture_default_str()
      ->check(CLI::Range(2, 8))
      ->group(g);
  sub->add_option("--group-size", w.group_size, "one weight scale per group of N along K (0: per channel)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber)
      ->group(g);
  sub->add_option("--precision", w.rules,
                  "mixed precision, comma-separated PATTERN=BITS[gGROUP]|fp32, e.g. 'head=8,patch_embed*=fp32' "
                  "(type:Linear=... or type:Embedding=... for a module type)")
      ->group(g);
}

}  // namespace quench::cli
