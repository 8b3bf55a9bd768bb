// `zerorl`: every actor of the system in one binary, chosen by subcommand.
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "common/version.h"

namespace zerorl {

namespace {

int VersionCommand(int, char**) {
  std::printf("zerorl %s\n", kVersion);
  return 0;
}

struct Subcommand {
  const char* name;
  int (*fn)(int, char**);
  const char* usage;
  const char* help;
};

constexpr Subcommand kCommands[] = {
    {"run", RunCommand, "run CONFIG", "run every actor in one process: a whole GRPO run (resumes if interrupted)"},
    {"serve", ServeCommand, "serve ROLE [--config F] [--port N] [--check]",
     "serve one actor (rollout|reward|buffer|learner|orchestrator) over TCP"},
    {"score", ScoreCommand, "score --spec SPEC --in FILE.jsonl [--out FILE]", "score completions offline under a reward spec"},
    {"generate", GenerateCommand, "generate --model DIR --prompt TEXT ...", "sample a completion from an HF checkpoint"},
    {"pretrain", PretrainCommand, "pretrain ...", "train a small base model on synthetic text (the countdown base checkpoint)"},
    {"bench", BenchCommand, "bench model|reward|buffer|weights", "benchmarks with a peer measured in the same run"},
    {"plot", PlotCommand, "plot RUN_DIR", "draw reward, accuracy, length and KL curves to SVG and PNG"},
    {"k8s", K8sCommand, "k8s render --config RUN.yaml", "print Kubernetes manifests for a run"},
    {"version", VersionCommand, "version", "print the version"},
};

void PrintHelp(FILE* out) {
  std::fprintf(out,
               "zerorl %s — R1-Zero-style reinforcement learning for mixture-of-experts models\n\n"
               "usage: zerorl COMMAND [ARGS]\n\ncommands:\n",
               kVersion);
  for (const auto& c : kCommands) std::fprintf(out, "  %-48s %s\n", c.usage, c.help);
  std::fprintf(out, "\n`zerorl COMMAND --help` describes one command. zerorlctl inspects and steers running deployments.\n");
}

}  // namespace
}  // namespace zerorl

int main(int argc, char** argv) {
  using namespace zerorl;
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    PrintHelp(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) return VersionCommand(0, nullptr);
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) == 0) return c.fn(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "zerorl: unknown command \"%s\"\n\n", argv[1]);
  PrintHelp(stderr);
  return 2;
}
