// zerorlctl as a function: parse argv, run one command, return the exit code.
// main() (zerorlctl_main.cc) wires it to the process; tests call it in-process.
#pragma once

#include <ostream>

#include "cli/ctl_session.h"

namespace zerorl::ctl {

// Runs `zerorlctl argv[1..]`, writing results to `out` and the one error
// message (or usage text) to `err`. `runtime` carries Ctrl-C into streams.
// Returns 0 ok, 1 server error, 2 usage, 3 unreachable, 4 unauthenticated.
int RunZerorlctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err, Runtime* runtime);

}  // namespace zerorl::ctl
