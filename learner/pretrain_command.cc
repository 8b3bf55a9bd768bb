// `zerorl pretrain` — not landed yet.
#include "common/commands.h"

namespace zerorl {

int PretrainCommand(int, char**) { return NotYetAvailable("pretrain", "issue 7: the countdown base checkpoint"); }

}  // namespace zerorl
