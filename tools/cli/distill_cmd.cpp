// `quench distill --teacher CKPT`: quantization-aware training of a student (a copy of the teacher, or
// a smaller ViT) with logit and layer-wise distillation from the FP32 teacher; see compress.hpp.
#include <cstdio>
#include <memory>
#include <string>

#include "distill/taps.hpp"
#include "kernels/parallel.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/text_cmds.hpp"
#include "tools/cli/text_model.hpp"

namespace quench::cli {

namespace {

struct DistillArgs {
  std::string teacher, out = "runs/distill", fashion_root = "/usr/share/datasets/fashion-mnist/";
  DistillOptions o;
  bool no_kd = false, list_taps = false, quiet = false;
  int64_t limit_train = 0, limit_test = 0;
  int threads = 0;
  CLI::Option *dim = nullptr, *depth = nullptr, *heads = nullptr, *hidden = nullptr;
  CLI::Option *lr = nullptr, *warmup = nullptr, *wd = nullptr;
  TextArgs text;
  CLI::App* sub = nullptr;
};

// A fresh (random) student learns from scratch, not fine-tunes: these replace the fine-tuning
// defaults (lr 5e-5, no warmup, wd 0.01) unless given on the command line.
constexpr double kScratchLr = 1e-3, kScratchWarmupEpochs = 0.5, kScratchWeightDecay = 0.05;

int run_distill(DistillArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (is_text_run(a.text, a.teacher))
    return run_text_compress(*a.sub, a.no_kd ? "qat" : "qat+kd", a.teacher, a.text, a.o.weights, a.out, a.quiet);
  for (const char* flag : {"--calib-batches", "--add-origin-loss"})
    QUENCH_CHECK(a.sub->get_option(flag)->count() == 0, "distill: ", flag,
                 " is for text (a BERT teacher or --task text); ", a.teacher, " is an image model");
  LoadedModel t = load_model(a.teacher);
  QUENCH_CHECK(!t.int8, "distill: the teacher ", a.teacher, " must be an FP32 checkpoint");
  DistillOptions o = a.o;
  o.kd = !a.no_kd;
  const bool sized = a.dim->count() + a.depth->count() + a.heads->count() + a.hidden->count() > 0;
  if (sized) {
    nn::ViTConfig s = t.vit->cfg;
    if (a.dim->count()) s.dim = a.o.student.dim;
    if (a.depth->count()) s.depth = a.o.student.depth;
    if (a.heads->count()) s.heads = a.o.student.heads;
    if (a.hidden->count()) s.hidden = a.o.student.hidden;
    o.student = s;
    o.copy_teacher = false;
    if (!a.lr->count()) o.lr = kScratchLr;
    if (!a.warmup->count()) o.warmup_epochs = kScratchWarmupEpochs;
    if (!a.wd->count()) o.weight_decay = kScratchWeightDecay;
  }
  if (a.list_taps) {
    Generator g(0);
    auto student = std::make_shared<nn::ViT>(o.copy_teacher ? t.vit->cfg : o.student, g);
    std::printf("student taps:\n");
    for (const auto& n : distill::list_taps(*student)) std::printf("  %s\n", n.c_str());
    std::printf("teacher taps:\n");
    for (const auto& n : distill::list_taps(*t.vit)) std::printf("  %s\n", n.c_str());
    return 0;
  }
  TrainConfig cfg;
  cfg.model = t.vit->cfg;
  cfg.fashion_root = a.fashion_root;
  cfg.limit_train = a.limit_train;
  cfg.limit_test = a.limit_test;
  DataSplits data = load_data(cfg);
  // Under mpirun every process trains its shard; rank 0 alone draws the bar and writes.
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  ProgressBar bar(a.quiet || !pg.is_main() ? nullptr : stderr, ProgressBar::stderr_is_tty());
  TrainHooks hooks;
  hooks.progress = &bar;
  hooks.process_group = &pg;
  bar.message("quench distill: " + std::string(o.kd ? "QAT + KD" : "QAT only") + " from " + a.teacher + "; " +
              std::to_string(data.train.size()) + " train / " + std::to_string(data.test.size()) +
              " test images; writing " + a.out);
  DistillResult r = distill(o, t.vit, t.preprocess, data, a.out, hooks);
  char buf[256];
  std::snprintf(buf, sizeof buf, "done: best int8 test accuracy %.2f%% at epoch %lld, saved %s",
                100 * r.best_int8_acc, static_cast<long long>(r.best_epoch), r.int8_path.c_str());
  bar.message(buf);
  return 0;
}

}  // namespace

Command add_distill_command(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  DistillOptions& o = a->o;
  CLI::App* sub = app.add_subcommand(
      "distill", "Quantization-aware training with logit and layer-wise distillation from an FP32 teacher");
  sub->add_option("--teacher", a->teacher, "FP32 teacher checkpoint (or a Hugging Face BERT folder)")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_flag("--no-kd", a->no_kd, "QAT alone (task loss only, no teacher)");
  sub->add_flag("--list-taps", a->list_taps, "print the tap names of student and teacher and exit");
  a->dim = sub->add_option("--dim", o.student.dim,
                           "student width (default: a copy of the teacher; any of --dim/--depth/--heads/"
                           "--hidden starts a fresh random student with from-scratch defaults)");
  a->depth = sub->add_option("--depth", o.student.depth, "student blocks");
  a->heads = sub->add_option("--heads", o.student.heads, "student heads");
  a->hidden = sub->add_option("--hidden", o.student.hidden, "student MLP width");
  sub->add_option("--layers", o.layers,
                  "taps distilled by MSE (default: every blocks.i and blocks.i.attn:probs)");
  sub->add_option("--temperature,-T", o.temperature, "logit KD temperature")->capture_default_str();
  sub->add_option("--kd-weight", o.kd_weight, "weight of the logit KD term (the task loss gets 1 - it)")
      ->capture_default_str();
  sub->add_option("--layer-weight", o.layer_weight, "weight of each block-output (or --layers) MSE term")
      ->capture_default_str();
  sub->add_option("--attn-weight", o.attn_weight, "weight of each attention-probability MSE term (0: none)")
      ->capture_default_str();
  sub->add_option("--epochs", o.epochs, "epochs")->capture_default_str();
  sub->add_option("--batch-size,-b", o.batch_size, "batch size")->capture_default_str();
  a->lr = sub->add_option("--lr", o.lr, "AdamW peak learning rate (a fresh student: 1e-3)")->capture_default_str();
  sub->add_option("--min-lr", o.min_lr, "learning rate at the end of the cosine")->capture_default_str();
  a->wd = sub->add_option("--weight-decay", o.weight_decay, "AdamW weight decay (a fresh student: 0.05)")
              ->capture_default_str();
  a->warmup = sub->add_option("--warmup-epochs", o.warmup_epochs, "linear warmup (epochs; a fresh student: 0.5)")
                  ->capture_default_str();
  sub->add_option("--freeze-observers-epoch", o.freeze_observers_epoch,
                  "freeze the observers at the start of this 0-based epoch (-1: never)")
      ->capture_default_str();
  sub->add_option("--seed", o.seed, "seed (student init, shuffling)")->capture_default_str();
  add_weight_precision_options(sub, o.weights);
  sub->add_option("--limit-train", a->limit_train, "use only the first N training images (0: all)");
  sub->add_option("--limit-test", a->limit_test, "use only the first N test images (0: all)");
  sub->add_option("--fashion-root", a->fashion_root, "Fashion-MNIST folder")->capture_default_str();
  sub->add_option("--out,-o", a->out, "output folder (int8.safetensors, metrics.jsonl)")->capture_default_str();
  sub->add_option("--threads,-j", a->threads, "worker threads (0: all cores)");
  sub->add_flag("--quiet,-q", a->quiet, "no progress bar or epoch lines");
  add_text_options(sub, "distill", a->text);
  a->sub = sub;
  return {sub, [a] { return run_distill(*a); }};
}

}  // namespace quench::cli
