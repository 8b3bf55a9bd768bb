// `zerorl bench buffer` — not landed yet.
#include "bench/bench.h"
#include "common/commands.h"

namespace zerorl::bench {

int BenchBuffer(int, char**) { return NotYetAvailable("bench buffer", "issue 5"); }

}  // namespace zerorl::bench
