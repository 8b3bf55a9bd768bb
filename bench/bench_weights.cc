// `zerorl bench weights` — not landed yet.
#include "bench/bench.h"
#include "common/commands.h"

namespace zerorl::bench {

int BenchWeights(int, char**) { return NotYetAvailable("bench weights", "issue 6"); }

}  // namespace zerorl::bench
