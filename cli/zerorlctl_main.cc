// `zerorlctl`: inspect trajectories, steer runs and hot-swap reward specs of a
// zerorl deployment over gRPC. The commands live in cli/ctl_*.cc; this file
// wires the process (signals, stdout/stderr) to RunZerorlctl.
//
// Ctrl-C (SIGINT) or SIGTERM: while a stream is open (`traj tail`) it ends the
// stream cleanly (exit 0); otherwise it ends the process at once (exit 130).
#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "cli/ctl_app.h"

namespace {

zerorl::ctl::Runtime g_runtime;

void OnSignal(int) {
  if (!g_runtime.streaming.load()) _exit(130);
  g_runtime.interrupted.store(true);
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // `zerorlctl traj list | head` ends quietly
  std::ios::sync_with_stdio(true);
  return zerorl::ctl::RunZerorlctl(argc, argv, std::cout, std::cerr, &g_runtime);
}
