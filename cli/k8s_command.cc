// `zerorl k8s` — not landed yet.
#include "common/commands.h"

namespace zerorl {

int K8sCommand(int, char**) { return NotYetAvailable("k8s", "issue 9: Kubernetes"); }

}  // namespace zerorl
