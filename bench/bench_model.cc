// `zerorl bench model` — not landed yet.
#include "bench/bench.h"
#include "common/commands.h"

namespace zerorl::bench {

int BenchModel(int, char**) { return NotYetAvailable("bench model", "issue 3"); }

}  // namespace zerorl::bench
