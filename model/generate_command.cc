// `zerorl generate` — not landed yet.
#include "common/commands.h"

namespace zerorl {

int GenerateCommand(int, char**) { return NotYetAvailable("generate", "issue 3: the model"); }

}  // namespace zerorl
