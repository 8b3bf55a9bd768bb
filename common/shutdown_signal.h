// Waiting for SIGINT/SIGTERM in a process whose libraries start threads
// before main (OpenBLAS's pool): a blocked signal mask does not cover those
// threads, so a signal would take its default action there and kill the
// process. Instead a handler writes the signal number to a self-pipe, and
// WaitForShutdownSignal() reads it. Install once, early in a command.
#pragma once

#include "absl/status/status.h"

namespace zerorl {

absl::Status InstallShutdownSignalHandlers();
// Blocks until SIGINT or SIGTERM arrives, or WakeShutdownWaiter() is called;
// returns the signal number, or 0 for a wake-up.
int WaitForShutdownSignal();
// Makes one WaitForShutdownSignal() return 0 (e.g. the work finished on its own).
void WakeShutdownWaiter();

}  // namespace zerorl
