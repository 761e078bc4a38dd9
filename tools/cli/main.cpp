// quench: train, evaluate and use ViT classifiers with the quench engine.
//   quench train [options]                  train on Fashion-MNIST or an image folder
//   quench eval CHECKPOINT [options]        accuracy, per-class accuracy, confusion matrix, logits
//   quench classify CHECKPOINT IMAGE...     top-k classes of images
//   quench quantize CHECKPOINT [options]    post-training quantization to int8
//   quench distill --teacher CKPT [options] QAT (+ logit and layer-wise KD) to int8
//   quench report [options]                 FP32 vs PTQ vs QAT vs QAT+KD: report.json / report.md
//   quench vocab [options]                  learn a WordPiece vocabulary (vocab.txt) from a corpus
// train / eval / classify / quantize / distill also run BERT text classifiers (--task text).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "dist/process_group.hpp"
#include "tools/cli/commands.hpp"
#include "tools/cli/text_cmds.hpp"

int main(int argc, char** argv) {
  CLI::App app{"quench: quantization-aware training engine; train, evaluate and run ViT classifiers"};
  app.require_subcommand(1);
  std::vector<quench::cli::Command> commands = {quench::cli::add_train_command(app),
                                                quench::cli::add_eval_command(app),
                                                quench::cli::add_classify_command(app),
                                                quench::cli::add_quantize_command(app),
                                                quench::cli::add_distill_command(app),
                                                quench::cli::add_report_command(app),
                                                quench::cli::add_vocab_command(app),
                                                quench::cli::add_export_command(app)};
  CLI11_PARSE(app, argc, argv);
  try {
    for (auto& c : commands)
      if (c.app->parsed()) return c.run();
  } catch (const std::exception& e) {
    // Under mpirun a failing process stops the job rather than leave the others in a collective.
    quench::dist::ProcessGroup& pg = quench::dist::ProcessGroup::world();
    if (pg.distributed()) pg.abort(std::string("error: ") + e.what());
    std::fprintf(stderr, "quench: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
