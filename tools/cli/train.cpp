// `quench train`: flags -> TrainConfig, data loading, Ctrl-C handling; the loop is in trainer.cpp.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/error.hpp"
#include "kernels/parallel.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/text_cmds.hpp"
#include "tools/cli/trainer.hpp"

namespace quench::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;

// First Ctrl-C: finish the step, save, exit. The default action is restored, so a second one kills.
extern "C" void on_sigint(int) {
  g_stop = 1;
  static const char msg[] = "\nquench: Ctrl-C: stopping after this step and saving (Ctrl-C again to abort)\n";
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
  std::signal(SIGINT, SIG_DFL);
}

struct TrainArgs {
  TrainConfig cfg;
  std::string data_dir, out = "runs/train", resume;
  int threads = 0;
  bool quiet = false;
  std::vector<CLI::Option*> config_options;  // not allowed with --resume
  TextArgs text;
  CLI::App* sub = nullptr;
};

int run_train(TrainArgs& a) {
  if (is_text_train(a.text)) {
    if (a.threads > 0) set_num_threads(a.threads);
    return run_text_train(*a.sub, a.cfg, a.text, a.out, a.quiet);
  }
  TrainConfig cfg = a.cfg;
  std::unique_ptr<Checkpoint> ckpt;
  std::string out = a.out;
  if (!a.resume.empty()) {
    for (CLI::Option* o : a.config_options)
      if (o->count() > 0)
        throw Error("--resume continues the run stored in " + a.resume +
                    " with its own configuration; drop " + o->get_name());
    ckpt = std::make_unique<Checkpoint>(load_checkpoint(a.resume));
    cfg = ckpt->train_config();
    // --out defaults to the checkpoint's folder when resuming.
    if (out == "runs/train") out = std::filesystem::path(a.resume).parent_path().string();
    if (out.empty()) out = ".";
  } else if (!a.data_dir.empty()) {
    namespace fs = std::filesystem;
    if (fs::is_directory(fs::path(a.data_dir) / "train") && fs::is_directory(fs::path(a.data_dir) / "test")) {
      cfg.train_dir = (fs::path(a.data_dir) / "train").string();
      cfg.test_dir = (fs::path(a.data_dir) / "test").string();
    } else {
      cfg.train_dir = a.data_dir;  // split by --test-split
    }
  }
  if (a.threads > 0) set_num_threads(a.threads);

  // Under mpirun every process trains its shard; rank 0 alone draws the bar and writes.
  dist::ProcessGroup& pg = dist::ProcessGroup::world();
  const bool tty = ProgressBar::stderr_is_tty();
  ProgressBar bar(a.quiet || !pg.is_main() ? nullptr : stderr, tty);
  TrainHooks hooks;
  hooks.progress = &bar;
  hooks.process_group = &pg;
  hooks.log = [&pg](const std::string& s) {
    if (pg.is_main()) std::fprintf(stderr, "%s\n", s.c_str());
  };
  hooks.stop_requested = [] { return g_stop != 0; };

  DataSplits data = load_data(cfg);
  bar.message("quench train: ViT img " + std::to_string(cfg.model.img) + " patch " +
              std::to_string(cfg.model.patch) + " dim " + std::to_string(cfg.model.dim) + " depth " +
              std::to_string(cfg.model.depth) + " heads " + std::to_string(cfg.model.heads) + " hidden " +
              std::to_string(cfg.model.hidden) + "; " + std::to_string(data.train.size()) + " train / " +
              std::to_string(data.test.size()) + " test images; " +
              (pg.distributed() ? std::to_string(pg.size()) + " processes x " : "") + std::to_string(get_num_threads()) +
              " threads; writing " + out + (ckpt ? "; resuming " + a.resume : ""));
  std::signal(SIGINT, on_sigint);
  TrainResult r = train(cfg, data, out, hooks, ckpt.get());
  std::signal(SIGINT, SIG_DFL);
  if (a.quiet && pg.is_main() && r.status != TrainStatus::finished) std::fprintf(stderr, "quench: %s\n", r.message.c_str());
  switch (r.status) {
    case TrainStatus::finished:
      bar.message(r.message);
      return 0;
    case TrainStatus::interrupted:
      return 130;  // the shell's code for "stopped by SIGINT"; the run is saved and resumable
    case TrainStatus::non_finite:
      return 2;
  }
  return 1;
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  TrainConfig& c = a->cfg;
  CLI::App* sub =
      app.add_subcommand("train", "Train a ViT classifier (Fashion-MNIST by default, or an image folder), or with "
                                  "--task text a BERT classifier (SpamAssassin or a table of texts)");
  auto cfg_opt = [&](CLI::Option* o, const char* group) {
    o->group(group);
    a->config_options.push_back(o);
    return o;
  };
  const char* M = "Model";
  cfg_opt(sub->add_option("--img", c.model.img, "input image size (square)")->capture_default_str(), M);
  cfg_opt(sub->add_option("--patch", c.model.patch, "patch size")->capture_default_str(), M);
  cfg_opt(sub->add_option("--chans", c.model.chans, "input channels (1 grey, 3 RGB)")->capture_default_str(),
          M);
  cfg_opt(sub->add_option("--dim", c.model.dim, "embedding width")->capture_default_str(), M);
  cfg_opt(sub->add_option("--depth", c.model.depth, "transformer blocks")->capture_default_str(), M);
  cfg_opt(sub->add_option("--heads", c.model.heads, "attention heads")->capture_default_str(), M);
  cfg_opt(sub->add_option("--hidden", c.model.hidden, "MLP hidden width")->capture_default_str(), M);
  cfg_opt(sub->add_option("--classes", c.model.classes, "number of classes")->capture_default_str(), M);
  const char* D = "Data";
  cfg_opt(sub->add_option("--fashion-root", c.fashion_root, "Fashion-MNIST folder (IDX .gz files)")
              ->capture_default_str(),
          D);
  cfg_opt(
      sub->add_option("--data-dir", a->data_dir,
                      "image folder root/<class>/*.png|jpg|bmp instead of Fashion-MNIST; with root/train and "
                      "root/test sub-folders those are used, else --test-split of it is held out"),
      D);
  cfg_opt(sub->add_option("--train-dir", c.train_dir, "training image folder (root/<class>/images)"), D);
  cfg_opt(sub->add_option("--test-dir", c.test_dir, "test image folder (default: a --test-split hold-out)"),
          D);
  cfg_opt(sub->add_option("--test-split", c.test_split, "hold-out fraction when there is no test folder")
              ->capture_default_str()
              ->check(CLI::Range(0.0, 1.0)),
          D);
  cfg_opt(sub->add_option("--limit-train", c.limit_train, "use only the first N training images (0: all)"),
          D);
  cfg_opt(sub->add_option("--limit-test", c.limit_test, "use only the first N test images (0: all)"), D);
  cfg_opt(sub->add_option("--mean", c.preprocess.mean, "normalization mean (one value or one per channel)")
              ->capture_default_str()
              ->expected(1, 4),
          D);
  cfg_opt(sub->add_option("--std", c.preprocess.std, "normalization std (one value or one per channel)")
              ->capture_default_str()
              ->expected(1, 4),
          D);
  cfg_opt(sub->add_option("--crop-padding", c.crop_padding,
                          "random crop from the image padded by N pixels (0: off)")
              ->capture_default_str(),
          D);
  cfg_opt(sub->add_flag("--hflip", c.hflip, "random horizontal flips"), D);
  cfg_opt(sub->add_option("--random-erase", c.random_erase,
                          "random erasing probability (torchvision RandomErasing: 2-33% of the area, aspect "
                          "0.3-3.3, set to the mean pixel; 0: off)")
              ->capture_default_str()
              ->check(CLI::Range(0.0, 1.0)),
          D);
  cfg_opt(sub->add_option("--patch-dropout", c.patch_dropout,
                          "PatchDropout: share of each training image's patch tokens dropped (CLS kept; "
                          "fewer rows, cheaper steps; evaluation sees all; 0: off)")
              ->capture_default_str()
              ->check(CLI::Range(0.0, 0.99)),
          D);
  cfg_opt(sub->add_option("--patch-dropout-epochs", c.patch_dropout_epochs,
                          "apply --patch-dropout in the first N epochs only, the rest on every token (0: all)")
              ->capture_default_str()
              ->check(CLI::NonNegativeNumber),
          D);
  const char* O = "Optimization";
  cfg_opt(sub->add_option("--epochs", c.epochs, "epochs")->capture_default_str(), O);
  cfg_opt(sub->add_option("--batch-size,-b", c.batch_size, "batch size")->capture_default_str(), O);
  cfg_opt(sub->add_option("--lr", c.lr, "AdamW peak learning rate")->capture_default_str(), O);
  cfg_opt(
      sub->add_option("--min-lr", c.min_lr, "learning rate at the end of the cosine")->capture_default_str(),
      O);
  cfg_opt(sub->add_option("--weight-decay,--wd", c.weight_decay,
                          "AdamW weight decay (not on biases, norms, pos_embed, cls_token)")
              ->capture_default_str(),
          O);
  cfg_opt(sub->add_option("--beta1", c.beta1, "AdamW beta1")->capture_default_str(), O);
  cfg_opt(sub->add_option("--beta2", c.beta2, "AdamW beta2")->capture_default_str(), O);
  cfg_opt(sub->add_option("--warmup-epochs", c.warmup_epochs,
                          "linear warmup length in epochs (fractions allowed)")
              ->capture_default_str(),
          O);
  cfg_opt(sub->add_option("--label-smoothing", c.label_smoothing, "cross-entropy label smoothing")
              ->capture_default_str(),
          O);
  cfg_opt(sub->add_option("--clip-grad", c.clip_grad, "clip gradients to this global L2 norm (0: off)")
              ->capture_default_str(),
          O);
  cfg_opt(sub->add_option("--ema", c.ema,
                          "EMA decay of the weights, e.g. 0.999 (0: off); evaluation and "
                          "best.safetensors then use the EMA weights")
              ->capture_default_str(),
          O);
  cfg_opt(sub->add_option("--seed", c.seed, "seed of the init, shuffling and augmentation")
              ->capture_default_str(),
          O);
  cfg_opt(sub->add_option("--init", c.init,
                          "weight init: timm (trunc-normal .02 Linears) or torch (vit_reference.py's "
                          "PyTorch module defaults, faster in short schedules)")
              ->capture_default_str()
              ->check(CLI::IsMember({"timm", "torch"})),
          O);
  sub->add_option("--out,-o", a->out, "output folder (last/best.safetensors, metrics.jsonl)")
      ->capture_default_str();
  sub->add_option("--resume", a->resume,
                  "continue the run saved in DIR/last.safetensors exactly (its configuration is used)")
      ->check(CLI::ExistingFile);
  sub->add_option("--threads,-j", a->threads, "worker threads (0: all cores)");
  sub->add_flag("--quiet,-q", a->quiet, "no progress bar or epoch lines");
  add_text_options(sub, "train", a->text);
  a->sub = sub;
  return {sub, [a] { return run_train(*a); }};
}

}  // namespace quench::cli
