// `zerorl bench model|reward|buffer|weights|pipeline [flags]`
#include <cstdio>
#include <cstring>

#include "bench/bench.h"
#include "cli/commands.h"

namespace zerorl {

int BenchCommand(int argc, char** argv) {
  static const struct {
    const char* name;
    int (*fn)(int, char**);
    const char* help;
  } kBenches[] = {
      {"model", bench::BenchModel, "train and decode tokens/s against PyTorch"},
      {"reward", bench::BenchReward, "math checks/s and sandboxed executions/s against bare spawns"},
      {"buffer", bench::BenchBuffer, "durable append MB/s against raw RocksDB; query latency"},
      {"weights", bench::BenchWeights, "weight push MB/s against raw TCP"},
      {"pipeline", bench::BenchPipeline, "sync vs async RL samples/s on the same budget (serve mode, pinned cores)"},
  };
  if (argc >= 2) {
    for (const auto& b : kBenches)
      if (std::strcmp(argv[1], b.name) == 0) return b.fn(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "usage: zerorl bench WHAT [flags]\n\n");
  for (const auto& b : kBenches) std::fprintf(stderr, "  %-8s %s\n", b.name, b.help);
  std::fprintf(stderr, "\n`zerorl bench WHAT --help` lists the flags of one benchmark.\n");
  return (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) ? 0 : 2;
}

}  // namespace zerorl
