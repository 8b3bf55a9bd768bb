// `zerorl run` — not landed yet.
#include "common/commands.h"

namespace zerorl {

int RunCommand(int, char**) { return NotYetAvailable("run", "issue 7: orchestrator and `zerorl run`"); }

}  // namespace zerorl
