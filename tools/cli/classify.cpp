// `quench classify CHECKPOINT IMAGE...`: the top-k classes of each image with their probabilities.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "nn/data/image_folder.hpp"
#include "nn/data/loader.hpp"
#include "tools/cli/checkpoint.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/compress.hpp"
#include "tools/cli/text_cmds.hpp"
#include "tools/cli/text_model.hpp"

namespace quench::cli {

namespace {

struct ClassifyArgs {
  std::string checkpoint;
  std::vector<std::string> images;
  int64_t top_k = 3;
  int threads = 0;
  TextArgs text;
};

int run_classify(const ClassifyArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (is_text_run(a.text, a.checkpoint)) return run_text_classify(a.checkpoint, a.images, a.top_k);
  QUENCH_CHECK(!a.images.empty(), "classify: give one or more image files");
  for (const auto& f : a.images)
    QUENCH_CHECK(std::filesystem::is_regular_file(f), "classify: ", f, ": no such image file");
  LoadedModel loaded = load_model(a.checkpoint);  // FP32 or int8 (metadata format quench-int8)
  auto model = loaded.vit;
  const nn::ViTConfig& mc = model->cfg;
  const Preprocess pp = loaded.preprocess;
  const std::vector<std::string> classes = loaded.classes;
  const int64_t n = static_cast<int64_t>(a.images.size()), chw = mc.chans * mc.img * mc.img;
  Tensor batch = Tensor::empty({n, mc.chans, mc.img, mc.img}, kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    Tensor img = nn::load_image(a.images[i], mc.chans, mc.img, mc.img);  // u8 [C, img, img]
    Tensor x = nn::transform_image(img, nn::CropFlip{}, pp.mean, pp.std);
    std::memcpy(batch.data_ptr<float>() + i * chw, x.data_ptr<float>(), chw * sizeof(float));
  }
  NoGradGuard no_grad;
  Tensor probs = softmax((*model)(batch), 1).contiguous();  // [n, classes]
  const int64_t C = mc.classes, k = std::min<int64_t>(std::max<int64_t>(a.top_k, 1), C);
  for (int64_t i = 0; i < n; ++i) {
    const float* p = probs.data_ptr<float>() + i * C;
    std::vector<int64_t> order(C);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return p[x] > p[y]; });
    std::printf("%s\n", a.images[i].c_str());
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = order[j];
      const std::string name = c < static_cast<int64_t>(classes.size()) ? classes[c] : std::to_string(c);
      std::printf("  %d. %-20s %6.2f%%  (class %lld)\n", static_cast<int>(j + 1), name.c_str(), 100.0 * p[c],
                  static_cast<long long>(c));
    }
  }
  return 0;
}

}  // namespace

Command add_classify_command(CLI::App& app) {
  auto a = std::make_shared<ClassifyArgs>();
  CLI::App* sub = app.add_subcommand("classify", "Top-k classes of images (or texts) with their probabilities");
  sub->add_option("checkpoint", a->checkpoint,
                  "a .safetensors checkpoint written by quench, or a Hugging Face BERT folder")
      ->required()
      ->check(CLI::ExistingPath);
  sub->add_option("inputs", a->images,
                  "image files (PNG, JPEG, BMP, ...), resized to the model's input; for a text model, texts "
                  "(none or '-': one per line from stdin)");
  sub->add_option("--top-k,-k", a->top_k, "classes to show per image")->capture_default_str();
  sub->add_option("--threads,-j", a->threads, "worker threads (0: all cores)");
  add_text_options(sub, "classify", a->text);
  return {sub, [a] { return run_classify(*a); }};
}

}  // namespace quench::cli
