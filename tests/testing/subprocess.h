// Test helper: run a child process (the zerorl binary, python3, ...) with its
// stdout piped, read lines with a timeout, signal and reap it. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace zerorl::testing {

class Subprocess {
 public:
  Subprocess() = default;
  ~Subprocess();  // SIGKILLs and reaps a child still running
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  // Starts argv[0] (searched in PATH) with stdout piped to us; stderr is
  // inherited unless `stderr_path` names a file to append it to.
  bool Start(const std::vector<std::string>& argv, const std::string& stderr_path = "",
             const std::vector<std::string>& extra_env = {});
  // Next line of the child's stdout (without '\n'), or nullopt on EOF/timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Reads lines until one starts with `prefix`; returns the rest of that line.
  std::optional<std::string> WaitForLine(const std::string& prefix, std::chrono::milliseconds timeout);
  void Signal(int sig);
  // Waits for exit; returns the exit code, 128+signal when killed, -1 on timeout.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string pending_;
};

// Runs a command to completion; returns exit code and captures stdout (stderr inherited).
int RunCommand(const std::vector<std::string>& argv, std::string* out,
               std::chrono::milliseconds timeout = std::chrono::seconds(120));

// The zerorl binary under test ($ZERORL_BIN) and the source tree ($ZERORL_SOURCE_DIR).
std::string ZerorlBin();
std::string SourceDir();
// A fresh empty directory under the test temp dir.
std::string MakeTempDir(const std::string& name);

}  // namespace zerorl::testing
