// `zerorl plot RUN_DIR`: draws RUN_DIR/curves.svg and RUN_DIR/curves.png from
// RUN_DIR/metrics.jsonl (reward, accuracy, completion length, KL).
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "orchestrator/plot.h"

namespace zerorl {

int PlotCommand(int argc, char** argv) {
  CLI::App app{"Draw a run's reward, accuracy, completion-length and KL curves to SVG and PNG.", "zerorl plot"};
  std::string run_dir;
  app.add_option("run_dir", run_dir, "the run directory (holds metrics.jsonl)")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  auto out = PlotRunDir(run_dir);
  if (!out.ok()) {
    std::fprintf(stderr, "zerorl plot: %s\n", std::string(out.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n%s\n", out->svg.c_str(), out->png.c_str());
  return 0;
}

}  // namespace zerorl
