// The subcommands of the `quench` tool. Each add_*_command registers its options on `app` and returns
// the subcommand plus the function that runs it after parsing (its return value is the exit status).
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

namespace quench::cli {

struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_classify_command(CLI::App& app);
Command add_quantize_command(CLI::App& app);
Command add_distill_command(CLI::App& app);
Command add_report_command(CLI::App& app);

struct WeightPrecision;
// --weight-bits, --group-size and --precision, shared by quantize and distill.
void add_weight_precision_options(CLI::App* sub, WeightPrecision& w);

}  // namespace quench::cli
