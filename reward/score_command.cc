// `zerorl score` — not landed yet.
#include "common/commands.h"

namespace zerorl {

int ScoreCommand(int, char**) { return NotYetAvailable("score", "issue 4: reward workers"); }

}  // namespace zerorl
