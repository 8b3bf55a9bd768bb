#include "common/shutdown_signal.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace zerorl {
namespace {

int g_pipe[2] = {-1, -1};

void OnSignal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = write(g_pipe[1], &c, 1);
}

}  // namespace

absl::Status InstallShutdownSignalHandlers() {
  if (g_pipe[0] < 0 && pipe2(g_pipe, O_CLOEXEC) != 0)
    return absl::InternalError("cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return absl::OkStatus();
}

int WaitForShutdownSignal() {
  char c = 0;
  while (true) {
    ssize_t n = read(g_pipe[0], &c, 1);
    if (n == 1) return c;
    if (n < 0 && errno == EINTR) continue;
    return SIGTERM;
  }
}

void WakeShutdownWaiter() {
  const char c = 0;
  [[maybe_unused]] ssize_t n = write(g_pipe[1], &c, 1);
}

}  // namespace zerorl
