// Curve drawing with cairo (see plot.h).
#include "orchestrator/plot.h"

#include <cairo-svg.h>
#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "orchestrator/metrics_log.h"

namespace zerorl {
namespace {

constexpr double kWidth = 1000, kHeight = 720;  // points (SVG) = pixels (PNG)

struct Series {
  std::string key;
  std::string label;
  double r, g, b;
};

struct Panel {
  std::string title;
  std::vector<Series> series;
};

// The four standard panels, then one per text counter found in the metrics
// (`<name>_per_completion`, orchestrator.text_counters), train and eval.
std::vector<Panel> Panels(const std::vector<zerorl::v1::StepMetrics>& m) {
  std::vector<Panel> panels{
      {"reward (mean)", {{"reward_mean", "train", 0.12, 0.47, 0.71}}},
      {"accuracy",
       {{"accuracy", "train", 0.12, 0.47, 0.71}, {"eval_accuracy", "eval (greedy)", 0.84, 0.15, 0.16}}},
      {"completion length (tokens, mean)",
       {{"completion_len_mean", "train", 0.17, 0.63, 0.17},
        {"eval_completion_len_mean", "eval (greedy)", 0.84, 0.15, 0.16}}},
      {"KL to reference", {{"kl", "k3", 0.58, 0.40, 0.74}}},
  };
  constexpr absl::string_view kSuffix = "_per_completion";
  std::set<std::string> counters;
  for (const auto& r : m) {
    for (const auto& [key, value] : r.values()) {
      if (absl::EndsWith(key, kSuffix) && !absl::StartsWith(key, "eval_")) {
        counters.insert(key.substr(0, key.size() - kSuffix.size()));
      }
    }
  }
  for (const std::string& name : counters) {
    panels.push_back({absl::StrCat(name, " per completion (mean)"),
                      {{absl::StrCat(name, kSuffix), "train", 0.90, 0.55, 0.10},
                       {absl::StrCat("eval_", name, kSuffix), "eval (greedy)", 0.84, 0.15, 0.16}}});
  }
  return panels;
}

std::string Tick(double v) {
  if (v == 0) return "0";
  if (std::fabs(v) >= 1000 || std::fabs(v) < 0.01) return absl::StrFormat("%.2g", v);
  return absl::StrFormat("%.3g", v);
}

void DrawPanel(cairo_t* cr, const Panel& panel, const std::vector<zerorl::v1::StepMetrics>& m, double x0, double y0,
               double w, double h) {
  const double left = 60, right = 15, top = 30, bottom = 35;
  const double px = x0 + left, py = y0 + top, pw = w - left - right, ph = h - top - bottom;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : panel.series) {
    for (const auto& r : m) {
      auto it = r.values().find(s.key);
      if (it == r.values().end() || !std::isfinite(it->second)) continue;
      xmin = std::min<double>(xmin, r.step());
      xmax = std::max<double>(xmax, r.step());
      ymin = std::min(ymin, it->second);
      ymax = std::max(ymax, it->second);
    }
  }
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 14);
  cairo_move_to(cr, px, y0 + 20);
  cairo_show_text(cr, panel.title.c_str());
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 11);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, px, py, pw, ph);
  cairo_stroke(cr);
  if (!std::isfinite(xmin)) {
    cairo_move_to(cr, px + pw / 2 - 30, py + ph / 2);
    cairo_show_text(cr, "no data");
    return;
  }
  if (xmax == xmin) xmax = xmin + 1;
  if (ymax - ymin < 1e-9) {
    ymin -= 0.5 * std::max(1e-3, std::fabs(ymin));
    ymax += 0.5 * std::max(1e-3, std::fabs(ymax));
  }
  const double pad = 0.05 * (ymax - ymin);
  ymin -= pad;
  ymax += pad;
  auto X = [&](double v) { return px + (v - xmin) / (xmax - xmin) * pw; };
  auto Y = [&](double v) { return py + ph - (v - ymin) / (ymax - ymin) * ph; };
  for (int i = 0; i <= 4; ++i) {  // grid and tick labels
    const double yv = ymin + (ymax - ymin) * i / 4, xv = xmin + (xmax - xmin) * i / 4;
    cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
    cairo_move_to(cr, px, Y(yv));
    cairo_line_to(cr, px + pw, Y(yv));
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_move_to(cr, x0 + 5, Y(yv) + 4);
    cairo_show_text(cr, Tick(yv).c_str());
    cairo_move_to(cr, X(xv) - 8, py + ph + 15);
    const std::string xl = xmax - xmin >= 8 ? absl::StrCat(static_cast<int64_t>(std::llround(xv))) : Tick(xv);
    cairo_show_text(cr, xl.c_str());
  }
  cairo_move_to(cr, px + pw / 2 - 12, py + ph + 30);
  cairo_show_text(cr, "step");
  double legend_y = py + 14;
  for (const auto& s : panel.series) {
    bool any = false;
    cairo_set_source_rgb(cr, s.r, s.g, s.b);
    cairo_set_line_width(cr, 2);
    std::vector<std::pair<double, double>> pts;
    for (const auto& r : m) {
      auto it = r.values().find(s.key);
      if (it != r.values().end() && std::isfinite(it->second)) pts.push_back({X(r.step()), Y(it->second)});
    }
    for (size_t i = 0; i < pts.size(); ++i) {
      if (i == 0) {
        cairo_move_to(cr, pts[i].first, pts[i].second);
      } else {
        cairo_line_to(cr, pts[i].first, pts[i].second);
      }
      any = true;
    }
    cairo_stroke(cr);
    for (const auto& p : pts) {  // markers make sparse (eval) series visible
      cairo_arc(cr, p.first, p.second, pts.size() < 60 ? 2.5 : 1.2, 0, 2 * M_PI);
      cairo_fill(cr);
    }
    if (any) {
      cairo_move_to(cr, px + pw - 110, legend_y);
      cairo_line_to(cr, px + pw - 90, legend_y);
      cairo_stroke(cr);
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      cairo_move_to(cr, px + pw - 85, legend_y + 4);
      cairo_show_text(cr, s.label.c_str());
      legend_y += 16;
    }
  }
}

void Draw(cairo_t* cr, const std::vector<zerorl::v1::StepMetrics>& m, const std::string& title) {
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_set_source_rgb(cr, 0, 0, 0);
  cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
  cairo_set_font_size(cr, 16);
  cairo_move_to(cr, 20, 26);
  cairo_show_text(cr, title.c_str());
  const std::vector<Panel> panels = Panels(m);
  const size_t cols = panels.size() <= 4 ? 2 : 3, rows = (panels.size() + cols - 1) / cols;
  const double top = 40, w = kWidth / cols, h = (kHeight - top) / rows;
  for (size_t i = 0; i < panels.size(); ++i) {
    DrawPanel(cr, panels[i], m, (i % cols) * w, top + (i / cols) * h, w, h);
  }
}

}  // namespace

absl::StatusOr<PlotOutputs> PlotMetrics(const std::vector<zerorl::v1::StepMetrics>& metrics, const std::string& title,
                                        const std::string& prefix) {
  PlotOutputs out{prefix + ".svg", prefix + ".png"};
  {
    cairo_surface_t* svg = cairo_svg_surface_create(out.svg.c_str(), kWidth, kHeight);
    if (cairo_surface_status(svg) != CAIRO_STATUS_SUCCESS) {
      cairo_surface_destroy(svg);
      return absl::PermissionDeniedError(absl::StrCat("cannot write ", out.svg));
    }
    cairo_t* cr = cairo_create(svg);
    Draw(cr, metrics, title);
    cairo_destroy(cr);
    cairo_surface_finish(svg);
    const cairo_status_t st = cairo_surface_status(svg);
    cairo_surface_destroy(svg);
    if (st != CAIRO_STATUS_SUCCESS) return absl::DataLossError(absl::StrCat("writing ", out.svg, " failed"));
  }
  cairo_surface_t* png = cairo_image_surface_create(CAIRO_FORMAT_RGB24, kWidth, kHeight);
  cairo_t* cr = cairo_create(png);
  Draw(cr, metrics, title);
  cairo_destroy(cr);
  const cairo_status_t st = cairo_surface_write_to_png(png, out.png.c_str());
  cairo_surface_destroy(png);
  if (st != CAIRO_STATUS_SUCCESS) return absl::PermissionDeniedError(absl::StrCat("cannot write ", out.png));
  return out;
}

std::vector<std::string> PlotPanelTitles(const std::vector<zerorl::v1::StepMetrics>& metrics) {
  std::vector<std::string> titles;
  for (const Panel& p : Panels(metrics)) titles.push_back(p.title);
  return titles;
}

absl::StatusOr<PlotOutputs> PlotRunDir(const std::string& run_dir) {
  ZRL_ASSIGN_OR_RETURN(auto metrics, ReadMetricsJsonl(run_dir + "/metrics.jsonl"));
  if (metrics.empty()) return absl::FailedPreconditionError(absl::StrCat(run_dir, "/metrics.jsonl has no steps yet"));
  std::string name = metrics.front().run_id();
  if (name.empty()) name = std::filesystem::path(run_dir).filename().string();
  int64_t steps = 0;
  for (const auto& m : metrics) steps += m.values().count("reward_mean") > 0;
  return PlotMetrics(metrics, absl::StrCat("zerorl run ", name, " (", steps, " steps)"), run_dir + "/curves");
}

}  // namespace zerorl
