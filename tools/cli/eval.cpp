// `quench eval CHECKPOINT`: accuracy, per-class accuracy and confusion matrix on the Fashion-MNIST test
// set (or train set) or an image folder; optionally the logits as .npy in data-set order.
#include <cstdio>
#include <memory>
#include <string>

#include "kernels/parallel.hpp"
#include "nn/data/idx.hpp"
#include "nn/data/image_folder.hpp"
#include "tools/cli/checkpoint.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/data.hpp"
#include "tools/cli/evaluate.hpp"
#include "tools/cli/npy.hpp"
#include "tools/cli/text_cmds.hpp"
#include "tools/cli/text_model.hpp"

namespace quench::cli {

namespace {

struct EvalArgs {
  std::string checkpoint, data_dir, fashion_root = nn::kFashionMnistRoot, split = "test", logits;
  int64_t batch_size = 256, limit = 0;
  int threads = 0;
  TextArgs text;
  CLI::App* sub = nullptr;
};

int run_eval(const EvalArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (is_text_run(a.text, a.checkpoint))
    return run_text_eval(*a.sub, a.checkpoint, a.text, a.batch_size, a.limit, a.split, a.logits);
  LoadedModel loaded = load_model(a.checkpoint);  // FP32 or int8 (metadata format quench-int8)
  auto model = loaded.vit;
  const nn::ViTConfig& mc = model->cfg;
  std::vector<std::string> classes = loaded.classes;
  nn::LabeledImages data;
  if (a.data_dir.empty()) {
    QUENCH_CHECK(mc.chans == 1 && mc.img == 28 && mc.classes == 10, "eval: ", a.checkpoint, " is a model of ",
                 mc.chans, "x", mc.img, "x", mc.img, " images and ", mc.classes,
                 " classes, not Fashion-MNIST; give --data-dir");
    data = nn::FashionMNIST(a.fashion_root, a.split == "train");
  } else {
    data = nn::ImageFolder(a.data_dir, mc.chans, mc.img, mc.img);
    QUENCH_CHECK(static_cast<int64_t>(data.classes.size()) == mc.classes, "eval: ", a.data_dir, " has ",
                 data.classes.size(), " class folders but the model has ", mc.classes, " classes");
    if (data.classes != classes)
      std::fprintf(stderr,
                   "quench eval: warning: the class folders of %s differ from the checkpoint's class names\n",
                   a.data_dir.c_str());
    classes = data.classes;
  }
  data = take_first(data, a.limit);
  EvalResult r = evaluate(*model, data, loaded.preprocess, mc.classes, a.batch_size, !a.logits.empty());
  std::printf("%s (%s): %lld images\n%s", a.checkpoint.c_str(), loaded.int8 ? "int8" : "fp32", static_cast<long long>(r.n),
              format_report(r, classes).c_str());
  if (!a.logits.empty()) {
    write_npy(a.logits, r.logits);
    std::printf("logits [%lld, %lld] float32 written to %s\n", static_cast<long long>(r.n),
                static_cast<long long>(mc.classes), a.logits.c_str());
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub =
      app.add_subcommand("eval", "Accuracy, per-class accuracy and confusion matrix of a checkpoint");
  sub->add_option("checkpoint", a->checkpoint,
                  "a .safetensors checkpoint written by quench, or a Hugging Face BERT folder")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("--data-dir", a->data_dir, "evaluate on this image folder (root/<class>/images) instead");
  sub->add_option("--fashion-root", a->fashion_root, "Fashion-MNIST folder")->capture_default_str();
  sub->add_option("--split", a->split, "Fashion-MNIST split")
      ->capture_default_str()
      ->check(CLI::IsMember({"test", "train"}));
  sub->add_option("--limit", a->limit, "only the first N images (0: all)");
  sub->add_option("--batch-size,-b", a->batch_size, "batch size")->capture_default_str();
  sub->add_option("--logits", a->logits,
                  "write the logits, float32 [N, classes] in data-set order, to FILE.npy");
  sub->add_option("--threads,-j", a->threads, "worker threads (0: all cores)");
  add_text_options(sub, "eval", a->text);
  a->sub = sub;
  return {sub, [a] { return run_eval(*a); }};
}

}  // namespace quench::cli
