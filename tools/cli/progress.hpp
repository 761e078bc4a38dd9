// The training progress bar on stderr: epoch, step/total, loss, accuracy, images/s, ETA. On a terminal
// it redraws one line in place (at most ~10 times a second); otherwise (a log file, a pipe) it prints a
// plain line every `interval` seconds, so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace quench::cli {

struct ProgressState {
  int64_t epoch = 0, epochs = 0;  // 1-based epoch of epochs
  int64_t step = 0, steps = 0;    // steps done in this epoch of steps
  double loss = 0.0, accuracy = 0.0, images_per_s = 0.0, eta_s = 0.0;
  const char* rate_unit = "img/s";  // what images_per_s counts ("seq/s" for text)
};

// "epoch 2/10 [#######.............] 120/469 loss 0.6123 acc 78.12% 1534 img/s ETA 4m12s"
std::string format_progress(const ProgressState& s, int bar_width = 20);
// 75 -> "1m15s", 3725 -> "1h02m05s".
std::string format_duration(double seconds);

class ProgressBar {
 public:
  ProgressBar(std::FILE* out, bool tty, double interval_s = 10.0);
  // True when stderr is a terminal.
  static bool stderr_is_tty();
  // Draws s unless drawn too recently; force draws anyway.
  void update(const ProgressState& s, bool force = false);
  // Prints `line` on its own line (clearing a bar being drawn first).
  void message(const std::string& line);

 private:
  std::FILE* out_;
  bool tty_, bar_visible_ = false;
  double interval_s_;
  std::chrono::steady_clock::time_point last_{};
  bool drawn_once_ = false;
};

}  // namespace quench::cli
