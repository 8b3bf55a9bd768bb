// Progress bar (see progress.h).
#include "orchestrator/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace zerorl {

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0)) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string FormatProgress(int64_t step, int64_t total, const std::map<std::string, double>& m,
                           double elapsed_s, int64_t steps_done) {
  const int width = 20;
  const int64_t done = step + 1;
  const int filled = total > 0 ? static_cast<int>(std::min<int64_t>(width, done * width / total)) : 0;
  std::string bar(filled, '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  auto get = [&](const char* k) -> const double* {
    auto it = m.find(k);
    return it == m.end() ? nullptr : &it->second;
  };
  std::string out = absl::StrFormat("step %d/%d [%s]", done, total, bar);
  if (auto* v = get("reward_mean")) absl::StrAppend(&out, absl::StrFormat(" reward %.3f", *v));
  if (auto* v = get("accuracy")) absl::StrAppend(&out, absl::StrFormat(" acc %.1f%%", 100 * *v));
  if (auto* v = get("eval_accuracy")) absl::StrAppend(&out, absl::StrFormat(" eval %.1f%%", 100 * *v));
  if (auto* v = get("tokens_per_s")) absl::StrAppend(&out, absl::StrFormat(" %.0f tok/s", *v));
  if (steps_done > 0 && total > done) {
    absl::StrAppend(&out, " ETA ", FormatDuration(elapsed_s / steps_done * (total - done)));
  }
  return out;
}

ProgressBar::ProgressBar(bool enabled, int64_t total_steps, int64_t first_step)
    : enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0),
      total_(total_steps),
      first_step_(first_step),
      start_(std::chrono::steady_clock::now()) {}

void ProgressBar::Update(int64_t step, const std::map<std::string, double>& metrics) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string line = FormatProgress(step, total_, metrics, elapsed, step + 1 - first_step_);
  if (tty_) {
    std::fprintf(stderr, "\r%-100s", line.c_str());
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Note(const std::string& text) {
  if (!enabled_) return;
  if (tty_) {
    std::fprintf(stderr, "\r%-100s", text.substr(0, 100).c_str());
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (enabled_ && tty_ && drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace zerorl
