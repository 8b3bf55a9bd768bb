// `zerorl bench reward` — not landed yet.
#include "bench/bench.h"
#include "common/commands.h"

namespace zerorl::bench {

int BenchReward(int, char**) { return NotYetAvailable("bench reward", "issue 4"); }

}  // namespace zerorl::bench
