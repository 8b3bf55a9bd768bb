// `zerorl plot` — not landed yet.
#include "common/commands.h"

namespace zerorl {

int PlotCommand(int, char**) { return NotYetAvailable("plot", "issue 7: metrics and curves"); }

}  // namespace zerorl
