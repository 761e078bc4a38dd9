#include "tools/cli/progress.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace quench::cli {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = std::llround(seconds);
  char buf[64];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", s / 3600, (s / 60) % 60, s % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

std::string format_progress(const ProgressState& s, int bar_width) {
  const double frac =
      s.steps > 0 ? std::clamp(static_cast<double>(s.step) / static_cast<double>(s.steps), 0.0, 1.0) : 0.0;
  const int filled = static_cast<int>(frac * bar_width);
  std::string bar = "[" + std::string(filled, '#') + std::string(bar_width - filled, '.') + "]";
  char buf[256];
  std::snprintf(buf, sizeof buf, "epoch %lld/%lld %s %lld/%lld loss %.4f acc %.2f%% %.0f %s ETA %s",
                static_cast<long long>(s.epoch), static_cast<long long>(s.epochs), bar.c_str(),
                static_cast<long long>(s.step), static_cast<long long>(s.steps), s.loss, 100.0 * s.accuracy,
                s.images_per_s, s.rate_unit, format_duration(s.eta_s).c_str());
  return buf;
}

ProgressBar::ProgressBar(std::FILE* out, bool tty, double interval_s)
    : out_(out), tty_(tty), interval_s_(interval_s) {}

bool ProgressBar::stderr_is_tty() { return isatty(STDERR_FILENO) == 1; }

void ProgressBar::update(const ProgressState& s, bool force) {
  if (!out_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  const double min_gap = tty_ ? 0.1 : interval_s_;
  if (!force && drawn_once_ && since < min_gap) return;
  last_ = now;
  drawn_once_ = true;
  const std::string line = format_progress(s);
  if (tty_) {
    std::fprintf(out_, "\r\033[K%s", line.c_str());
    bar_visible_ = true;
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

void ProgressBar::message(const std::string& line) {
  if (!out_) return;
  if (tty_ && bar_visible_) std::fputs("\n", out_);  // keep the finished bar as a record
  bar_visible_ = false;
  std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace quench::cli
