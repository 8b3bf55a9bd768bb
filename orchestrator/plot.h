// Training curves with cairo: four panels — reward (mean), accuracy (train, and
// eval where measured), completion length (mean, train and eval), KL — plus one
// per text counter (`<name>_per_completion`, orchestrator.text_counters), from
// a run's metrics.jsonl, drawn to SVG and PNG.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerorl/v1/common.pb.h"

namespace zerorl {

struct PlotOutputs {
  std::string svg;
  std::string png;
};

// Draws `metrics` to `prefix`.svg and `prefix`.png (title shown on top).
absl::StatusOr<PlotOutputs> PlotMetrics(const std::vector<zerorl::v1::StepMetrics>& metrics,
                                        const std::string& title, const std::string& prefix);

// The titles of the panels `metrics` gives, in drawing order.
std::vector<std::string> PlotPanelTitles(const std::vector<zerorl::v1::StepMetrics>& metrics);

// Reads RUN_DIR/metrics.jsonl and draws RUN_DIR/curves.{svg,png}.
absl::StatusOr<PlotOutputs> PlotRunDir(const std::string& run_dir);

}  // namespace zerorl
