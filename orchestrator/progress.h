// The progress bar of `zerorl run` on stderr:
//   step 12/100 [=====>      ] reward 0.41 acc 38.0% eval 52.0% 1830 tok/s ETA 4m12s
// Redrawn in place with '\r' on a terminal; on a pipe or file one line per step.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace zerorl {

// The bar's text for one step (no '\r' or newline). `elapsed_s` is the time
// the run has spent since it (re)started, over `steps_done` steps.
std::string FormatProgress(int64_t step, int64_t total, const std::map<std::string, double>& metrics,
                           double elapsed_s, int64_t steps_done);

// "4m12s", "1h02m", "37s".
std::string FormatDuration(double seconds);

class ProgressBar {
 public:
  ProgressBar(bool enabled, int64_t total_steps, int64_t first_step);
  // Draws the bar after `step` (0-based) finished with `metrics`.
  void Update(int64_t step, const std::map<std::string, double>& metrics);
  // Shows `text` in the bar's place until the next Update ("waiting for
  // learner at ..."); a line of its own on a pipe.
  void Note(const std::string& text);
  // Ends the line in place (newline on a terminal).
  void Finish();

 private:
  bool enabled_;
  bool tty_;
  int64_t total_;
  int64_t first_step_;
  std::chrono::steady_clock::time_point start_;
  bool drawn_ = false;
};

}  // namespace zerorl
