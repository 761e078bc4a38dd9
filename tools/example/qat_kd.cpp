// The README's library example as a program the build compiles and the test command runs: a ViT
// teacher, a student copied from it, QAT + distillation through the compression manager's hooks in a
// hand-written loop, conversion to int8 at on_train_end, and an int8 checkpoint. Random images stand
// in for a data set so it runs anywhere in a second.
//
//   qat_kd [out.safetensors]
#include <quench/quench.hpp>

#include <cstdio>
#include <memory>
#include <string>

using namespace quench;

int main(int argc, char** argv) try {
  const std::string out = argc > 1 ? argv[1] : "student.int8.safetensors";
  Generator gen(0);
  nn::ViTConfig cfg;
  cfg.patch = 7, cfg.dim = 32, cfg.depth = 2, cfg.heads = 2, cfg.hidden = 64;
  Tensor images = randint(0, 256, {256, 1, 28, 28}, gen, DType::u8);  // pixels, as a data set holds them
  Tensor labels = randint(0, cfg.classes, {256}, gen);
  nn::DataLoaderOptions opts;
  opts.batch_size = 64;
  nn::DataLoader loader(images, labels, opts);

  // --- the README snippet ---
  auto teacher = std::make_shared<nn::ViT>(cfg, gen);  // in practice: a trained FP32 checkpoint
  auto student = std::make_shared<nn::ViT>(cfg, gen);
  student->load_state_dict(teacher->state_dict());
  distill::KnowledgeDistillationLossConfig kd(2.0, {"CE", "KL"}, {0.5, 0.5});
  auto cm = distill::prepare_compression(
      student, {distill::DistillationConfig(teacher, kd), quant::QuantizationAwareTrainingConfig{}});
  cm.on_train_begin();  // QAT: fake quantization and observers go into the student
  optim::AdamW opt(cm.trainable_parameters(), optim::AdamWOptions(5e-5));
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    cm.on_epoch_begin(epoch);
    for (const nn::Batch& b : loader) {
      cm.on_step_begin(step++);
      Tensor logits = (*cm.model())(b.images);
      Tensor loss = cm.on_after_compute_loss(b.images, logits, cross_entropy(logits, b.labels));
      opt.zero_grad();
      loss.backward();
      cm.on_before_optimizer_step();
      opt.step();
      cm.on_step_end();
    }
    cm.on_epoch_end();
  }
  cm.on_train_end();  // QAT: the student becomes a real int8 model
  quant::save_int8_vit(out, dynamic_cast<nn::ViT&>(*cm.model()));
  // --- end of the snippet ---

  auto int8 = quant::load_int8_vit(out);
  NoGradGuard no_grad;
  int8->eval();
  Tensor logits = (*int8)(randn({8, 1, 28, 28}, gen));
  QUENCH_CHECK(logits.sizes() == Shape({8, cfg.classes}), "qat_kd: unexpected logits shape");
  std::printf("qat_kd: %lld steps, int8 model saved to %s and reloaded\n", static_cast<long long>(step),
              out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "qat_kd: %s\n", e.what());
  return 1;
}
