// zerorlctl's connection to a deployment: global flags, channels, deadlines,
// bearer tokens, where each service lives, and the mapping of failures onto the
// CLI's stable exit codes.
//
// Exit codes (the contract scripts rely on):
//   0 ok, 1 the server answered with an error, 2 usage (bad flags, bad local
//   file), 3 unreachable (UNAVAILABLE, or DEADLINE_EXCEEDED before the channel
//   ever connected), 4 unauthenticated (UNAUTHENTICATED / PERMISSION_DENIED).
// Actions return absl::Status; ExitCodeFor() turns it into the code and the
// message is printed once on stderr by the dispatcher.
//
// Addresses: --addr is the orchestrator (and every service when they share one
// port, as under `zerorl run`). The buffer and reward addresses come from
// --buffer-addr / --reward-addr when given, else from the orchestrator's RunInfo,
// else fall back to --addr. Not thread-safe: one command runs at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace zerorl::ctl {

enum class OutputMode { kTable, kJson, kJsonl };

// The global flags, as parsed (before validation).
struct GlobalFlags {
  std::string addr;         // orchestrator / all-in-one; default: $ZERORL_ADDR, else localhost:50051
  std::string buffer_addr;  // default: RunInfo.buffer_address, else addr
  std::string reward_addr;  // default: RunInfo.reward_address, else addr
  std::string token_file;   // bearer token for admin (and actor) calls; default: $ZERORL_TOKEN_FILE
  bool tls = false;         // TLS with the system roots (or --tls-ca)
  std::string tls_ca;       // PEM CA bundle; implies --tls
  std::string timeout = "10s";
  std::string output = "table";
};

// Process-level signals shared with the running command (tail stops on them).
struct Runtime {
  std::atomic<bool> interrupted{false};  // set by SIGINT/SIGTERM (or a test)
  std::atomic<bool> streaming{false};    // a stream is open: interrupt ends it cleanly
};

// A usage error (exit 2): bad flag values, unreadable local files.
absl::Status UsageError(absl::string_view message);
// The exit code a failed action maps to (0 for OK).
int ExitCodeFor(const absl::Status& status);

class Session {
 public:
  Session(GlobalFlags flags, std::ostream& out, Runtime* runtime);

  // Validates the flags (timeout, output mode, TLS files). Usage errors.
  absl::Status Init();

  std::ostream& out() { return out_; }
  OutputMode output() const { return output_; }
  Runtime* runtime() { return runtime_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  const GlobalFlags& flags() const { return flags_; }

  // A channel to `address` (cached per address).
  std::shared_ptr<grpc::Channel> Channel(const std::string& address);
  // A context with the --timeout deadline; it carries the --token-file token
  // too when the file can be read.
  std::unique_ptr<grpc::ClientContext> Context();
  // A context with the deadline and the bearer token from --token-file (when given).
  absl::StatusOr<std::unique_ptr<grpc::ClientContext>> AdminContext();

  // Where the orchestrator, buffer and reward services are for `run` (may be
  // empty: the first run that names an address). Cached.
  const std::string& OrchestratorAddress() const { return flags_.addr; }
  absl::StatusOr<std::string> BufferAddress(const std::string& run);
  absl::StatusOr<std::string> RewardAddress(const std::string& run);

  // Maps a failed call to `service` at `address` onto a status carrying the
  // exit code and one clear message.
  absl::Status CallError(const grpc::Status& status, absl::string_view service, const std::string& address);

 private:
  absl::StatusOr<std::string> ResolveFromOrchestrator(const std::string& run, bool buffer);

  GlobalFlags flags_;
  std::ostream& out_;
  Runtime* runtime_;
  OutputMode output_ = OutputMode::kTable;
  std::chrono::milliseconds timeout_{10000};
  absl::Status LoadToken();  // --token-file into token_, once
  std::string token_;
  bool token_loaded_ = false;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
  std::map<std::string, std::string> resolved_;  // "b:RUN" / "r:RUN" -> address
};

}  // namespace zerorl::ctl
