// distill_example: distillation through the CompressionManager's hooks in a hand-written loop, as in
// Intel Neural Compressor's documentation (prepare_compression + callbacks).
//
// A small ViT teacher is trained briefly on a few hundred Fashion-MNIST images; then a student (by
// default a narrower ViT, so projections are created; `distill_example copy` uses a copy of the
// teacher, the usual QAT + KD setup) is trained with logit KD (T = 2, KL) plus every block's output
// hidden state and attention probabilities (MSE), the task loss added. Losses and accuracies print per
// epoch. Runs in well under a minute on 2 cores.
//
//   distill_example [copy|small] [fashion-mnist dir]
#include <chrono>
#include <cstdio>
#include <string>

#include "distill/compression.hpp"
#include "distill/distillation.hpp"
#include "engine/ops.hpp"
#include "nn/data/idx.hpp"
#include "nn/data/loader.hpp"
#include "nn/layers/vit.hpp"
#include "nn/optim/adamw.hpp"

using namespace quench;
using namespace quench::distill;

namespace {

nn::ViTConfig vit_config(int64_t dim) {
  nn::ViTConfig c;
  c.img = 28;
  c.patch = 7;  // 16 patches + CLS
  c.dim = dim;
  c.depth = 2;
  c.heads = 2;
  c.hidden = 2 * dim;
  return c;
}

nn::DataLoaderOptions loader_options(bool train) {
  nn::DataLoaderOptions o;
  o.batch_size = 64;
  o.shuffle = train;
  o.seed = 1;
  o.mean = {0.2860f};
  o.std = {0.3530f};
  return o;
}

double accuracy(nn::Module& model, nn::DataLoader& loader) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  int64_t right = 0, total = 0;
  for (const nn::Batch& b : loader) {
    Tensor pred = argmax(model(b.images), 1);
    auto p = pred.to_vector<int32_t>(), y = b.labels.to_vector<int32_t>();
    for (size_t i = 0; i < p.size(); ++i) right += p[i] == y[i];
    total += static_cast<int64_t>(p.size());
  }
  model.train(was_training);
  return 100.0 * static_cast<double>(right) / static_cast<double>(total);
}

}  // namespace

int main(int argc, char** argv) try {
  const std::string mode = argc > 1 ? argv[1] : "small";
  const std::string root = argc > 2 ? argv[2] : nn::kFashionMnistRoot;
  if (mode != "small" && mode != "copy") {
    std::fprintf(stderr, "usage: distill_example [copy|small] [fashion-mnist dir]\n");
    return 2;
  }
  const auto t0 = std::chrono::steady_clock::now();
  nn::LabeledImages train = nn::FashionMNIST(root, true), test = nn::FashionMNIST(root, false);
  nn::DataLoader train_loader(train.images.narrow(0, 0, 1024).contiguous(),
                              train.labels.narrow(0, 0, 1024).contiguous(), loader_options(true));
  nn::DataLoader test_loader(test.images.narrow(0, 0, 512).contiguous(),
                             test.labels.narrow(0, 0, 512).contiguous(), loader_options(false));

  // 1. A teacher, trained briefly.
  Generator gen(0);
  auto teacher = std::make_shared<nn::ViT>(vit_config(32), gen);
  {
    optim::AdamW opt(teacher->parameters(), optim::AdamWOptions(2e-3).weight_decay(0.05));
    for (int epoch = 0; epoch < 5; ++epoch)
      for (const nn::Batch& b : train_loader) {
        Tensor loss = cross_entropy((*teacher)(b.images), b.labels);
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
  }
  std::printf("teacher: %.1f%% on %lld test images\n", accuracy(*teacher, test_loader),
              static_cast<long long>(test_loader.dataset_size()));

  // 2. The student: a copy of the teacher, or a narrower ViT from scratch.
  std::shared_ptr<nn::ViT> student;
  if (mode == "copy") {
    student = std::make_shared<nn::ViT>(teacher->cfg, gen);
    student->load_state_dict(teacher->state_dict());
  } else {
    student = std::make_shared<nn::ViT>(vit_config(16), gen);
  }

  // 3. The configs, as INC: logit KD plus every block's output and attention probabilities.
  // Hidden states by MSE (through a projection when the student is narrower), attention maps by KL.
  std::vector<LayerMapping> maps;
  std::vector<std::string> types;
  for (int64_t i = 0; i < student->cfg.depth; ++i) {
    maps.emplace_back("blocks." + std::to_string(i));
    types.push_back("MSE");
    maps.emplace_back("blocks." + std::to_string(i) + ".attn:probs");
    types.push_back("KL");
  }
  KnowledgeDistillationLossConfig kd(2.0, {"CE", "KL"}, {0.5, 0.5});
  IntermediateLayersKnowledgeDistillationLossConfig layers(maps, types,
                                                           std::vector<double>(maps.size(), 1.0));
  CompressionManager cm = prepare_compression(student, {DistillationConfig(teacher, {kd, layers})});
  auto dc = cm.component<DistillationComponent>();
  std::printf("student (%s): dim %lld, %zu projections\n", mode.c_str(),
              static_cast<long long>(student->cfg.dim), dc->projections()->named_children().size());

  // 4. The loop with the hooks.
  cm.on_train_begin();
  optim::AdamW opt(cm.trainable_parameters(), optim::AdamWOptions(2e-3).weight_decay(0.05));
  int64_t step = 0;
  for (int epoch = 0; epoch < 4; ++epoch) {
    cm.on_epoch_begin(epoch);
    std::vector<std::pair<std::string, double>> sums;
    double total = 0;
    int64_t steps = 0;
    for (const nn::Batch& b : train_loader) {
      cm.on_step_begin(step++);
      Tensor out = (*cm.model())(b.images);
      Tensor loss = cross_entropy(out, b.labels);
      loss = cm.on_after_compute_loss(b.images, out, loss);
      opt.zero_grad();
      loss.backward();
      cm.on_before_optimizer_step();
      opt.step();
      // Read the terms before on_step_end drops them.
      const auto& terms = dc->last_terms();
      if (sums.empty())
        for (const auto& [n, t] : terms) sums.emplace_back(n, 0.0);
      for (size_t i = 0; i < terms.size(); ++i) sums[i].second += terms[i].second.item<float>();
      total += loss.item<float>();
      ++steps;
      cm.on_step_end();
    }
    cm.on_epoch_end();
    std::printf("epoch %d  loss %.4f  |", epoch, total / steps);
    for (const auto& [n, s] : sums) std::printf(" %s %.3g", n.c_str(), s / steps);
    std::printf("  | student test acc %.1f%%\n", accuracy(*cm.model(), test_loader));
  }
  cm.on_train_end();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("done in %.1f s; state_dict has %zu entries (student + distill_projections.*)\n", secs,
              cm.state_dict().size());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "distill_example: %s\n", e.what());
  return 1;
}
