// Loopback TCP ports: picking one that is free now, and probing one.
// For commands that start actors on the local host (`zerorl run`, the
// pipeline benchmark) and for tests that address processes they start.
#pragma once

#include "absl/status/statusor.h"

namespace zerorl {

// A TCP port free on 127.0.0.1 right now (bound and released; another process
// may take it before the caller binds it, so callers bind promptly).
absl::StatusOr<int> FreeLoopbackPort();

// Whether something accepts TCP connections on 127.0.0.1:port.
bool LoopbackAccepts(int port);

}  // namespace zerorl
